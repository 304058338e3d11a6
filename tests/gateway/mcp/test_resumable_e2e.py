"""Upstreams that resume their streams (MCP 2025-11-25), end to end through the gateway.

Such a server opens every SSE stream with a priming event (an id and empty data) and
may close a call's stream before its answer, expecting the client to resume it with a
GET and ``Last-Event-ID``. Two of them: the Python SDK's ``MCPServer`` with an event
store (in this process), and the reference server of the official conformance suite
(``../shared/mcp-conformance/everything-server.mjs``, on Node). The agent lists tools
and calls them through the gateway: what its task allows is answered (the tool ran
once), what it does not is refused and never reaches the upstream.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp_types import JSONRPCMessage, TextContent, ToolAnnotations
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.gateway.mcp.conftest import ADMIN, TD, Stack
from tests.gateway.mcp.harness import GatewayServer, mcp_session
from zerolane.cli.background import free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.edge.jsonrpc import FORBIDDEN
from zerolane.gateway.mcp import parse_gateway_config
from zerolane.sdk import Agent, Task
from zerolane.server.deployment import Deployment
from zerolane.tasks.playbooks import parse_playbook

CONFORMANCE = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "mcp-conformance"
) / "everything-server.mjs"
#: makes the conformance server listen on loopback only and say which port it got
LOOPBACK_PRELOAD = """
import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const done = typeof args.at(-1) === "function" ? args.pop() : undefined;
  return listen.call(this, Number(args[0]) || 0, "127.0.0.1", () => {
    process.stdout.write(`zerolane-test listening ${this.address().port}\\n`);
    done?.();
  });
};
"""


class MemoryEventStore(EventStore):
    """Every event of every stream, in memory (what makes the server resumable)."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, JSONRPCMessage | None]] = []
        self._ids = itertools.count()

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        event_id = f"{stream_id}/{next(self._ids)}"
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: str, send_callback: EventCallback
    ) -> str | None:
        found = [i for i, (event_id, _, _) in enumerate(self._events) if event_id == last_event_id]
        if not found:
            return None
        stream = self._events[found[0]][1]
        for event_id, stream_id, message in self._events[found[0] + 1 :]:
            if stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


class Recorder:
    """An ASGI wrapper noting each request's method and headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.requests.append((scope["method"], headers))
        await self.app(scope, receive, send)


class ResumableServer:
    """The Python SDK's ``MCPServer`` with an event store, on a loopback port: its
    ``read_report`` closes its own stream mid-call, as a long-running tool polling does."""

    def __init__(self) -> None:
        import uvicorn

        self.ran: list[tuple[str, str]] = []
        server = MCPServer("resumable-reports")

        @server.tool(annotations=ToolAnnotations(read_only_hint=True))
        async def read_report(name: str, ctx: Context) -> str:
            self.ran.append(("read_report", name))
            await ctx.close_sse_stream()  # the client must resume to get the answer
            await anyio.sleep(0.2)
            return f"{name}: revenue grew"

        @server.tool(annotations=ToolAnnotations(destructive_hint=True))
        async def delete_report(name: str) -> str:
            self.ran.append(("delete_report", name))
            return "deleted"

        app = server.streamable_http_app(event_store=MemoryEventStore(), retry_interval=100)
        self.recorder = Recorder(app)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/mcp"
        config = uvicorn.Config(self.recorder, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ResumableServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the resumable MCP server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def conformance_server(tmp_path: Path) -> Iterator[str]:
    """The conformance suite's reference server on a loopback port: its URL."""
    node = shutil.which("node")
    assert node is not None, "node (20 or later) is needed to run the conformance server"
    preload = tmp_path / "loopback.mjs"
    preload.write_text(LOOPBACK_PRELOAD)
    output = tmp_path / "conformance.log"
    argv = [node, "--import", preload.as_uri(), str(CONFORMANCE)]
    env = {"PATH": os.environ.get("PATH", ""), "PORT": "0", "HOME": str(tmp_path)}
    with output.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while (found := re.search(r"zerolane-test listening (\d+)", output.read_text())) is None:
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the conformance server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{found.group(1)}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def gateway_to(stack: Stack, name: str, url: str) -> Iterator[GatewayServer]:
    """A gateway (on the stack's home) in front of one upstream, ``name`` at ``url``."""
    port = free_port()
    doc = {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "authorization_servers": [stack.cp_url],
        "servers": [{"name": name, "url": url, "destination": f"{name}.{TD}"}],
    }
    enforcement = enforcement_of(stack.deployment)
    with GatewayServer(parse_gateway_config(doc), enforcement) as gateway:
        yield gateway


def playbook(deployment: Deployment, name: str, server: str, tools: list[str]) -> None:
    """A playbook letting a task call ``tools`` of ``server`` (and nothing else)."""
    doc = {
        "name": name,
        "description": f"Call {', '.join(tools)} of {server} through the MCP gateway.",
        "actions": [f"mcp:{server}/{tool}" for tool in tools],
        "resources": [f"mcp/{server}/*"],
        "destinations": [f"{server}.{TD}"],
        "data_ceiling": "confidential",
        "max_ttl": "15m",
        "max_calls": 20,
        "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
    }
    deployment.playbooks.apply(parse_playbook(doc, "test"), ADMIN)


def through(
    url: str, task: Task, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[Any]]:
    """The tools the task is shown, and each call's result or the MCPError refusing it."""

    async def main() -> tuple[list[str], list[Any]]:
        async with mcp_session(url, task) as session:
            tools = sorted(tool.name for tool in (await session.list_tools()).tools)
            outcomes: list[Any] = []
            for name, arguments in calls:
                try:
                    outcomes.append(await session.call_tool(name, arguments))
                except MCPError as err:
                    outcomes.append(err)
            return tools, outcomes

    return anyio.run(main)


def text_of(result: Any) -> str:
    assert not isinstance(result, MCPError), result
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def refusal(outcome: Any) -> MCPError:
    assert isinstance(outcome, MCPError), outcome
    assert outcome.code == FORBIDDEN
    return outcome


def task_for(agent: Agent, gateway: GatewayServer, name: str, actions: list[str]) -> Task:
    """A task of playbook ``name`` asking for ``actions``, for ``gateway``."""
    return agent.open_task(
        playbook=name,
        intent=f"Call tools through the MCP gateway ({name})",
        authorization_details=[{"type": "zerolane_task", "actions": actions}],
        audience=[gateway.url],
    )


def test_the_python_sdk_server_with_an_event_store_is_reached_and_resumed(stack: Stack) -> None:
    playbook(stack.deployment, "resumable-reader", "resumable", ["read_report"])
    with (
        ResumableServer() as upstream,
        gateway_to(stack, "resumable", upstream.url) as gateway,
        stack.agent() as agent,
        task_for(agent, gateway, "resumable-reader", ["mcp:resumable/read_report"]) as task,
    ):
        tools, (read, delete) = through(
            gateway.url, task, [("read_report", {"name": "q3"}), ("delete_report", {"name": "q3"})]
        )
    assert tools == ["read_report"]  # the upstream was connected and listed
    assert text_of(read) == "q3: revenue grew"
    assert refusal(delete).data["reasons"] == ["scope.action"]
    assert upstream.ran == [("read_report", "q3")]  # once; the refused call never reached it
    resumed = [  # GETs resuming a stream (each agent session also opens its own GET stream)
        headers
        for method, headers in upstream.recorder.requests
        if method == "GET" and "last-event-id" in headers
    ]
    assert len(resumed) == 1  # the call's stream, closed early, was resumed
    assert resumed[0]["last-event-id"]


def test_the_conformance_reference_server_is_reached_through_the_gateway(
    stack: Stack, tmp_path: Path
) -> None:
    """The official conformance suite's reference server primes every stream (retry 5 s)
    and closes ``test_reconnection``'s stream mid-call; it must be there to run this."""
    assert CONFORMANCE.exists(), f"the conformance server is missing: {CONFORMANCE}"
    allowed = ["test_simple_text", "test_reconnection"]
    playbook(stack.deployment, "conformance-caller", "conformance", allowed)
    actions = [f"mcp:conformance/{tool}" for tool in allowed]
    with (
        conformance_server(tmp_path) as url,
        gateway_to(stack, "conformance", url) as gateway,
        stack.agent() as agent,
        task_for(agent, gateway, "conformance-caller", actions) as task,
    ):
        tools, (simple, reconnected, other) = through(
            gateway.url,
            task,
            [("test_simple_text", {}), ("test_reconnection", {}), ("test_error_handling", {})],
        )
        log = (tmp_path / "conformance.log").read_text()
    assert tools == sorted(allowed)  # listed: the rest is not the task's to call
    assert text_of(simple) == "This is a simple text response for testing."
    assert "properly reconnected" in text_of(reconnected)  # its stream was resumed
    assert log.count("Client reconnecting with Last-Event-ID") == 1
    assert log.count("Starting test_reconnection tool") == 1  # ran once, never sent again
    assert refusal(other).data["reasons"] == ["scope.action"]
