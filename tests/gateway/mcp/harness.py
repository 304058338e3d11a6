"""What the MCP gateway tests run: the sample upstream, the gateway, an agent's MCP client.

The agent side signs every HTTP request the MCP client makes with a fresh DPoP proof
(``task.mcp_auth()``, an ``httpx2.Auth``: the SDK's streamable HTTP client sends its
requests through it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from zerolane.cli.background import free_port
from zerolane.gateway.mcp import Enforcement, GatewayConfig, create_gateway_app
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
