#!/usr/bin/env python3
"""Real MCP servers for mcpfleet's probe tests, built on the official Python SDK (PyPI `mcp`).

Runs under either SDK generation: `mcp` 2.x (serves the stateless 2026-07-28 revision and the 2025 handshake;
installed into .venv from requirements-test.txt) and `mcp` 1.x (the handshake only; .venv-mcp1, made by
scripts/test.sh). Nothing here speaks MCP itself: the SDK's own server and transports answer every request;
this script only chooses their options and what `tools/list` does.

    python scripts/mcp_servers.py [--transport streamable-http|sse] [--json-response] [--stateless]
                                  [--tools a,b] [--behaviour list|error|hang|paged] [--port N]

On a loopback port (--port, default: one the system picks) it prints one line on stdout once the server accepts
requests, `READY <url>` (the MCP endpoint: .../mcp, or .../sse for the SSE transport), then serves until it is
killed or its stdin closes (so a test that dies takes its servers with it).

Behaviours of `tools/list`:
  list    the tools of --tools (default: search_documents,get_document)
  error   fails with a JSON-RPC error (the handler raises)
  hang    never answers (for probe timeouts)
  paged   250 tools (tool_000 … tool_249), 100 per page with `nextCursor` (pagination)
"""


import argparse
import asyncio
import importlib.metadata
import socket
import sys
import threading
from typing import Any

import uvicorn

SDK_VERSION = importlib.metadata.version("mcp")
SDK_MAJOR = int(SDK_VERSION.split(".")[0])
PAGE = 100
PAGED_TOOLS = 250


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=["streamable-http", "sse"], default="streamable-http")
    p.add_argument("--json-response", action="store_true", help="answer POSTs with application/json, not SSE")
    p.add_argument("--stateless", action="store_true", help="issue no Mcp-Session-Id")
    p.add_argument("--tools", default="search_documents,get_document", help="comma-separated tool names")
    p.add_argument("--behaviour", choices=["list", "error", "hang", "paged"], default="list")
    p.add_argument("--name", default=None, help="server name (default: mcp-test-<behaviour>)")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    if args.transport == "sse" and (args.json_response or args.stateless):
        p.error("--json-response and --stateless apply to streamable-http only")
    return args


def tool_names(args: argparse.Namespace) -> list[str]:
    if args.behaviour == "paged":
        return [f"tool_{i:03d}" for i in range(PAGED_TOOLS)]
    return [t for t in args.tools.split(",") if t]


async def tools_page(args: argparse.Namespace, cursor: str | None) -> tuple[list[str], str | None]:
    """The names of one page of tools/list and the next cursor; fails or hangs as --behaviour says."""
    if args.behaviour == "error":
        raise RuntimeError("the tool registry is unavailable")
    if args.behaviour == "hang":
        await asyncio.Event().wait()
    names = tool_names(args)
    if args.behaviour != "paged":
        return names, None
    start = int(cursor or 0)
    end = start + PAGE
    return names[start:end], (str(end) if end < len(names) else None)


def app_v2(args: argparse.Namespace, name: str) -> Any:
    import mcp.types as types
    from mcp.server.lowlevel import Server

    async def on_list_tools(_ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        names, next_cursor = await tools_page(args, params.cursor if params else None)
        tools = [types.Tool(name=n, description=f"{n} (test tool)", input_schema={"type": "object"}) for n in names]
        return types.ListToolsResult(tools=tools, next_cursor=next_cursor)

    if args.transport == "sse":
        # mcp 2.x builds the SSE app on its high-level server only; its lowlevel server takes the handler.
        from mcp.server.mcpserver import MCPServer

        server = MCPServer(name, version=SDK_VERSION)
        server._lowlevel_server = Server(name, version=SDK_VERSION, on_list_tools=on_list_tools)
        return server.sse_app()
    server = Server(name, version=SDK_VERSION, on_list_tools=on_list_tools)
    return server.streamable_http_app(json_response=args.json_response, stateless_http=args.stateless)


def app_v1(args: argparse.Namespace, name: str) -> Any:
    import mcp.types as types
    from mcp.server.fastmcp import FastMCP

    server = FastMCP(name, json_response=args.json_response, stateless_http=args.stateless)
    server._mcp_server.version = SDK_VERSION

    @server._mcp_server.list_tools()
    async def on_list_tools(request: types.ListToolsRequest) -> types.ListToolsResult:
        cursor = request.params.cursor if request.params else None
        names, next_cursor = await tools_page(args, cursor)
        tools = [types.Tool(name=n, description=f"{n} (test tool)", inputSchema={"type": "object"}) for n in names]
        return types.ListToolsResult(tools=tools, nextCursor=next_cursor)

    return server.sse_app() if args.transport == "sse" else server.streamable_http_app()


class ReadyServer(uvicorn.Server):
    """Prints the ready line once uvicorn has started (lifespan done, socket serving)."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            print(f"READY {self.url}", flush=True)


def exit_when_stdin_closes(server: uvicorn.Server) -> None:
    """Stops the server when stdin reaches its end: the test that started it is gone."""
    loop = asyncio.get_running_loop()

    def watch() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    threading.Thread(target=watch, daemon=True).start()


async def main() -> None:
    args = parse_args()
    name = args.name or f"mcp-test-{args.behaviour}"
    app = app_v2(args, name) if SDK_MAJOR >= 2 else app_v1(args, name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    path = "/sse" if args.transport == "sse" else "/mcp"
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = ReadyServer(config, f"http://127.0.0.1:{port}{path}")
    exit_when_stdin_closes(server)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
