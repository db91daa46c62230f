#!/usr/bin/env python3
"""Real MCP servers for mcpfleet's probe tests, built on the official Python SDK (PyPI `mcp`).

Runs under either SDK generation: `mcp` 2.x (serves the stateless 2026-07-28 revision and the 2025 handshake;
installed into .venv from requirements-test.txt) and `mcp` 1.x (the handshake only; .venv-mcp1, made by
scripts/test.sh). Nothing here speaks MCP itself: the SDK's own server and transports answer every request;
this script only chooses their options and what `tools/list` does.

    python scripts/mcp_servers.py [--transport streamable-http|sse|stdio] [--json-response] [--stateless]
                                  [--tools a,b] [--behaviour list|error|hang|paged|tools] [--port N]

On a loopback port (--port, default: one the system picks) it prints one line on stdout once the server accepts
requests, `READY <url>` (the MCP endpoint: .../mcp, or .../sse for the SSE transport), then serves until it is
killed or its stdin closes (so a test that dies takes its servers with it). With `--transport stdio` it speaks MCP
on stdin/stdout instead (the SDK's stdio transport, as `mcpfleet bridge` runs such servers), prints nothing else
on stdout, and serves the `tools` behaviour.

Behaviours of `tools/list`:
  list    the tools of --tools (default: search_documents,get_document)
  error   fails with a JSON-RPC error (the handler raises)
  hang    never answers (for probe timeouts)
  paged   250 tools (tool_000 … tool_249), 100 per page with `nextCursor` (pagination)
  tools   real tools, for the bridge's tests and benchmark (any transport; the default for stdio):
          echo(message) returns it; whoami() the server's process id; say(text) writes text on stderr;
          count(steps) reports progress `steps` times; block(path) answers once the file `path` exists;
          crash(code) ends the process with that exit status
"""


import argparse
import asyncio
import importlib.metadata
import os
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
    p.add_argument("--transport", choices=["streamable-http", "sse", "stdio"], default="streamable-http")
    p.add_argument("--json-response", action="store_true", help="answer POSTs with application/json, not SSE")
    p.add_argument("--stateless", action="store_true", help="issue no Mcp-Session-Id")
    p.add_argument("--tools", default="search_documents,get_document", help="comma-separated tool names")
    p.add_argument("--behaviour", choices=["list", "error", "hang", "paged", "tools"], default=None)
    p.add_argument("--name", default=None, help="server name (default: mcp-test-<behaviour>)")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    if args.transport != "streamable-http" and (args.json_response or args.stateless):
        p.error("--json-response and --stateless apply to streamable-http only")
    if args.behaviour is None:
        args.behaviour = "tools" if args.transport == "stdio" else "list"
    if args.transport == "stdio" and args.behaviour != "tools":
        p.error("--transport stdio serves the tools behaviour")
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


def tools_server(args: argparse.Namespace, name: str) -> Any:
    """The high-level server of the SDK in use with the `tools` behaviour's tools."""
    if SDK_MAJOR >= 2:
        from mcp.server.mcpserver import Context, MCPServer

        server = MCPServer(name, version=SDK_VERSION)
    else:
        from mcp.server.fastmcp import Context, FastMCP

        server = FastMCP(name, json_response=args.json_response, stateless_http=args.stateless)
        server._mcp_server.version = SDK_VERSION

    @server.tool()
    def echo(message: str) -> str:
        """Returns the message."""
        return message

    @server.tool()
    def whoami() -> str:
        """The server's process id."""
        return str(os.getpid())

    @server.tool()
    def say(text: str) -> str:
        """Writes the text on stderr."""
        print(text, file=sys.stderr, flush=True)
        return "said"

    @server.tool()
    async def count(steps: int, ctx: Context) -> str:
        """Reports progress `steps` times."""
        for i in range(steps):
            await ctx.report_progress(i + 1, steps)
        return f"counted {steps}"

    @server.tool()
    async def block(path: str) -> str:
        """Answers once the file `path` exists."""
        print(f"blocking until {path} exists", file=sys.stderr, flush=True)
        while not os.path.exists(path):
            await asyncio.sleep(0.02)
        return "released"

    @server.tool()
    def crash(code: int = 3) -> str:
        """Ends the process with exit status `code`."""
        print(f"crashing with status {code}", file=sys.stderr, flush=True)
        os._exit(code)

    return server


def tools_app(args: argparse.Namespace, name: str) -> Any:
    server = tools_server(args, name)
    if SDK_MAJOR >= 2:
        return server.streamable_http_app(json_response=args.json_response, stateless_http=args.stateless)
    return server.streamable_http_app()


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
    if args.transport == "stdio":
        server = tools_server(args, name)
        await server.run_stdio_async()
        return
    if args.behaviour == "tools":
        if args.transport != "streamable-http":
            raise SystemExit("the tools behaviour is served over stdio or streamable-http")
        app = tools_app(args, name)
    else:
        app = app_v2(args, name) if SDK_MAJOR >= 2 else app_v1(args, name)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Responses go out in pieces: without TCP_NODELAY (inherited by the accepted connections) every exchange on a
    # kept-alive connection waits for the client's delayed ACK, some 40 ms, which would swamp any latency measured
    # against this server (the bridge benchmark's baseline).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    path = "/sse" if args.transport == "sse" else "/mcp"
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = ReadyServer(config, f"http://127.0.0.1:{port}{path}")
    exit_when_stdin_closes(server)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
