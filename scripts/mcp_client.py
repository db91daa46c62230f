#!/usr/bin/env python3
"""An MCP client on the official Python SDK (PyPI `mcp`), for mcpfleet's bridge tests.

Runs under either SDK generation: `mcp` 2.x (.venv; `--mode auto` asks `server/discover` first and takes the
stateless 2026-07-28 revision when the server offers it, `--mode legacy` does the 2025 `initialize` handshake,
`--mode 2026-07-28` adopts that revision without asking) and `mcp` 1.x (.venv-mcp1; the handshake only, whatever
`--mode` says).

    python scripts/mcp_client.py URL [--mode auto|legacy|2026-07-28] [--call NAME] [--arguments JSON]

It lists the tools, calls one when asked (collecting its progress notifications), and prints one JSON line:
{"sdk", "protocolVersion", "server", "tools", "result", "isError", "progress"}. It exits 1 with the error on stderr
when anything fails.
"""

import argparse
import asyncio
import importlib.metadata
import json
import sys
from typing import Any

SDK_VERSION = importlib.metadata.version("mcp")
SDK_MAJOR = int(SDK_VERSION.split(".")[0])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--mode", default="auto", help="auto, legacy or 2026-07-28 (mcp 2.x)")
    p.add_argument("--call", default=None, help="a tool to call")
    p.add_argument("--arguments", default="{}", help="the tool's arguments, as JSON")
    return p.parse_args()


def texts(result: Any) -> list[str]:
    return [c.text for c in result.content if getattr(c, "text", None) is not None]


async def call(args: argparse.Namespace, call_tool: Any, out: dict[str, Any]) -> None:
    """Calls --call with --arguments through `call_tool` (either SDK's), recording its text and progress."""
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    result = await call_tool(args.call, json.loads(args.arguments), progress_callback=on_progress)
    is_error = result.is_error if SDK_MAJOR >= 2 else result.isError
    out.update(result=texts(result), isError=is_error, progress=progress)


async def run_v2(args: argparse.Namespace) -> dict[str, Any]:
    from mcp import Client

    out: dict[str, Any] = {"sdk": SDK_VERSION}
    async with Client(args.url, mode=args.mode) as client:
        out["protocolVersion"] = client.protocol_version
        out["server"] = client.server_info.name if client.server_info else None
        out["tools"] = [t.name for t in (await client.list_tools()).tools]
        if args.call:
            await call(args, client.call_tool, out)
    return out


async def run_v1(args: argparse.Namespace) -> dict[str, Any]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    out: dict[str, Any] = {"sdk": SDK_VERSION}
    async with streamablehttp_client(args.url) as (read, write, _session_id):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["protocolVersion"] = init.protocolVersion
            out["server"] = init.serverInfo.name
            out["tools"] = [t.name for t in (await session.list_tools()).tools]
            if args.call:
                await call(args, session.call_tool, out)
    return out


def main() -> None:
    args = parse_args()
    try:
        out = asyncio.run(run_v2(args) if SDK_MAJOR >= 2 else run_v1(args))
    except Exception as e:  # noqa: BLE001 - the test reads the reason
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        raise SystemExit(1) from e
    print(json.dumps(out))


if __name__ == "__main__":
    main()
