"""What the MCP gateway tests run: the sample upstream, the gateway, an agent's MCP client,
and a scripted upstream (:class:`StubUpstream`) for what the sample server never does.

The agent side signs every HTTP request the MCP client makes with a fresh DPoP proof
(``task.mcp_auth()``, an ``httpx2.Auth``: the SDK's streamable HTTP client sends its
requests through it).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from zerolane.cli.background import free_port
from zerolane.gateway.mcp import Enforcement, GatewayConfig, create_gateway_app
from zerolane.gateway.mcp.sessions import Sessions
from zerolane.sdk import Task

SAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mcp" / "sample_server.py"


@asynccontextmanager
async def mcp_session(url: str, task: Task) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session through the gateway, as ``task``."""
    async with (
        httpx2.AsyncClient(auth=task.mcp_auth(), timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def read_log(path: Path) -> list[dict[str, Any]]:
    """The sample server's events (requests received, calls made)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def calls(path: Path, tool: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in read_log(path) if e["event"] == "call" and (tool is None or e["tool"] == tool)
    ]


class HttpUpstream:
    """The sample server as a streamable HTTP subprocess on a loopback port."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HttpUpstream:
        argv = [sys.executable, str(SAMPLE), "--http", "--port", str(self.port)]
        self.process = subprocess.Popen([*argv, "--log", str(self.log)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the sample MCP server did not start")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


class GatewayServer:
    """The gateway app served by uvicorn in a daemon thread."""

    def __init__(self, config: GatewayConfig, enforcement: Enforcement) -> None:
        import uvicorn

        app = create_gateway_app(config, enforcement)
        self.sessions: Sessions = app.state.sessions  # the agent sessions it holds
        settings = uvicorn.Config(app, host=config.host, port=config.port, log_level="warning")
        self.server = uvicorn.Server(settings)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = config.public_url
        self.url = config.endpoint

    def __enter__(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the MCP gateway did not start")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class StubRequest:
    """One HTTP request a :class:`StubUpstream` received."""

    method: str
    headers: dict[str, str]  # names lowercased
    body: bytes

    @property
    def message(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body) if self.body else {}
        return found


@dataclass
class StubReply:
    """An HTTP answer: ``chunks`` are sent one by one, chunked (an SSE stream)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    end_after: float = 0.0  # seconds between the last chunk and the end of the stream


#: a handler answers a request, or returns None to drop the connection unanswered
StubHandler = Callable[[StubRequest], Awaitable[StubReply | None]]

SESSION = "stub-session-1"
STUB_TOOLS = [{"name": "read_report", "inputSchema": {"type": "object"}}]


def jsonrpc(message: dict[str, Any], result: dict[str, Any]) -> StubReply:
    body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
    return StubReply(headers={"content-type": "application/json"}, body=body)


def sse(*messages: dict[str, Any], sep: bytes = b"\r\n") -> list[bytes]:
    """SSE events carrying ``messages`` (one chunk each)."""
    events = [[b"event: message", b"data: " + json.dumps(m).encode(), b"", b""] for m in messages]
    return [sep.join(lines) for lines in events]


def stub_mcp(on_call: StubHandler) -> StubHandler:
    """A minimal MCP server (2025-06-18, one session, one tool): ``on_call`` answers
    its ``tools/call`` requests; a request for another session gets 404."""

    async def handle(request: StubRequest) -> StubReply | None:
        message = request.message
        method = message.get("method")
        if request.method == "DELETE":
            return StubReply(status=200)
        if method != "initialize" and request.headers.get("mcp-session-id") != SESSION:
            return StubReply(status=404)
        if method == "initialize":
            reply = jsonrpc(
                message,
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "stub", "version": "1"},
                },
            )
            reply.headers["mcp-session-id"] = SESSION
            return reply
        if "id" not in message or "method" not in message:  # a notification or a reply
            return StubReply(status=202)
        if method == "tools/list":
            return jsonrpc(message, {"tools": STUB_TOOLS})
        return await on_call(request)

    return handle


class StubUpstream:
    """A scripted HTTP/1.1 server on a loopback port (keep-alive; asyncio streams)."""

    def __init__(self, handler: StubHandler) -> None:
        self.handler = handler
        self.requests: list[StubRequest] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The JSON-RPC requests received for ``method``."""
        found = [r.message for r in self.requests if r.method == "POST"]
        return [m for m in found if m.get("method") == method]

    async def __aenter__(self) -> StubUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/mcp"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ")[0]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = StubRequest(method, headers, body)
                self.requests.append(request)
                reply = await self.handler(request)
                if reply is None:  # drop it: the request was received, never answered
                    return
                await self._answer(writer, reply)
        finally:
            writer.close()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, reply: StubReply) -> None:
        status = f"HTTP/1.1 {reply.status} X\r\n"
        headers = dict(reply.headers)
        if reply.chunks is None:
            headers["content-length"] = str(len(reply.body))
        else:
            headers["transfer-encoding"] = "chunked"
            headers.setdefault("content-type", "text/event-stream")
        head = status + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1"))
        if reply.chunks is None:
            writer.write(reply.body)
        else:
            for chunk in reply.chunks:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
            await asyncio.sleep(reply.end_after)
            writer.write(b"0\r\n\r\n")
        await writer.drain()
