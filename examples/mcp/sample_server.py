"""A sample MCP server for the zerolane MCP gateway: a few report and chat tools.

    .venv/bin/python examples/mcp/sample_server.py                   # stdio (a gateway starts it)
    .venv/bin/python examples/mcp/sample_server.py --http --port 9200   # streamable HTTP, /mcp

``--json`` answers each HTTP POST with one JSON body (the SDK's JSON response mode)
instead of an SSE stream; ``--extra-tools N`` registers N more read-only tools,
``tool_0001`` to ``tool_<N>`` (a listing of scale). Without them it serves as always.

``--log FILE`` appends one JSON line per HTTP request it receives (with its headers)
and per tool call (with its arguments and ``_meta``), so a test can see what reached
it, and what never did.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from starlette.types import ASGIApp, Receive, Scope, Send

REPORTS = {
    "q3": "Q3 revenue grew 12% quarter on quarter; operating margin 18%.",
    "q3-raw": "Ledger extract for Q3 (confidential).",
}
_lock = threading.Lock()
server = MCPServer("sample-reports", instructions="Reports and chat tools for the gateway demo.")
log_path: Path | None = None


def record(event: dict[str, Any]) -> None:
    """Append one event to the log file, when one was given."""
    if log_path is None:
        return
    with _lock, log_path.open("a") as out:
        out.write(json.dumps(event, sort_keys=True, default=str) + "\n")


def _called(ctx: Context, tool: str, arguments: dict[str, Any]) -> None:
    meta = ctx.request_context.meta or {}
    record({"event": "call", "tool": tool, "arguments": arguments, "meta": dict(meta)})


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, title="Read a report"))
def read_report(name: str, ctx: Context) -> str:
    """Return the text of a finance report."""
    _called(ctx, "read_report", {"name": name})
    return REPORTS.get(name, f"no report named {name!r}")


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
def delete_report(name: str, ctx: Context) -> str:
    """Delete a finance report for good."""
    _called(ctx, "delete_report", {"name": name})
    REPORTS.pop(name, None)
    return f"deleted {name}"


@server.tool(
    annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=True)
)
def post_message(channel: str, text: str, ctx: Context) -> str:
    """Post a message to a chat channel."""
    _called(ctx, "post_message", {"channel": channel, "text": text})
    return f"posted to #{channel}"


def add_extra_tools(count: int) -> None:
    """Register ``count`` read-only tools ``tool_0001``.. (each echoes its argument)."""

    def echo_as(name: str) -> Callable[[str], str]:
        def echo(text: str) -> str:
            return f"{name}: {text}"

        return echo

    for number in range(1, count + 1):
        name = f"tool_{number:04d}"
        server.add_tool(
            echo_as(name),
            name=name,
            description=f"Extra read-only tool number {number}.",
            annotations=ToolAnnotations(readOnlyHint=True),
        )


class HeaderLog:
    """ASGI middleware recording each HTTP request's method, path and headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            record({"event": "http", "method": scope["method"], "headers": headers})
        await self.app(scope, receive, send)


def main() -> None:
    global log_path
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP on /mcp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--log", type=Path, help="append requests and calls to this file")
    parser.add_argument(
        "--json", action="store_true", help="answer HTTP POSTs with JSON, not an SSE stream"
    )
    parser.add_argument(
        "--extra-tools", type=int, default=0, metavar="N", help="N more read-only tools"
    )
    options = parser.parse_args()
    log_path = options.log
    add_extra_tools(options.extra_tools)
    if not options.http:
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app(host=options.host, json_response=options.json)
    uvicorn.run(HeaderLog(app), host=options.host, port=options.port, log_level="warning")


if __name__ == "__main__":
    main()
