"""The gateway's own SSE streams to agents (2025-11-25): priming events, ids, resumption.

A call whose answer is streamed opens with a priming event (an id, a ``retry``, empty
data) and numbers its events. An agent whose connection drops mid-call resumes the
stream with a GET carrying ``Last-Event-ID`` and gets the rest: the events after that
id, then the answer; the call ran once upstream. An id the session does not know, or
another task's session, resumes nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.harness import GatewayServer
from tests.gateway.mcp.test_resumable_e2e import gateway_to, playbook, task_for
from zerolane.cli.background import free_port
from zerolane.gateway.mcp.transport import MAX_WORKING, prefers_sse
from zerolane.sdk import Task

pytestmark = pytest.mark.e2e

SSE_FIRST = "text/event-stream, application/json"
JSON_FIRST = "application/json, text/event-stream"


@contextmanager
def slow_server(ran: list[str]) -> Iterator[str]:
    """An MCP server whose ``slow_report`` reports progress twice, 0.4 s apart."""
    server = MCPServer("slow-reports")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def slow_report(name: str, ctx: Context) -> str:
        ran.append(name)
        await ctx.report_progress(1, 2)
        await anyio.sleep(0.4)
        await ctx.report_progress(2, 2)
        await anyio.sleep(0.2)
        return f"{name}: done"

    port = free_port()
    config = uvicorn.Config(
        server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert time.monotonic() < deadline, "the slow MCP server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        running.should_exit = True
        thread.join(timeout=15)


class Agent:
    """A raw streamable HTTP client signing each request with its task."""

    def __init__(self, url: str, task: Task) -> None:
        self.url, self.task = url, task
        self.session_id = ""

    def headers(self, method: str, accept: str = JSON_FIRST) -> dict[str, str]:
        headers = {**self.task.headers(method, self.url), "Accept": accept}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    def open(self) -> None:
        hello = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        }
        reply = httpx.post(self.url, json=hello, headers=self.headers("POST"))
        assert reply.status_code == 200, reply.text
        self.session_id = reply.headers["mcp-session-id"]
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert httpx.post(self.url, json=done, headers=self.headers("POST")).status_code == 202


def call(name: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "slow_report",
            "arguments": {"name": name},
            "_meta": {"progressToken": "p"},
        },
    }


def events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """The SSE events of ``lines`` (fields by name; data lines joined)."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        event[field] = event[field] + "\n" + value if field in event else value


@pytest.fixture
def slow_task(stack: Stack) -> Iterator[tuple[str, Task, list[str], GatewayServer]]:
    ran: list[str] = []
    playbook(stack.deployment, "slow-calls", "slow", ["slow_report"])
    with (
        slow_server(ran) as upstream,
        gateway_to(stack, "slow", upstream) as gateway,
        stack.agent() as agent,
    ):
        task = task_for(agent, gateway, "slow-calls", ["mcp:slow/slow_report"])
        yield gateway.url, task, ran, gateway
        task.complete()


def test_a_dropped_stream_is_resumed_with_the_rest_and_the_answer(
    slow_task: tuple[str, Task, list[str], GatewayServer],
) -> None:
    url, task, ran, _ = slow_task
    agent = Agent(url, task)
    agent.open()
    seen: list[dict[str, str]] = []
    with httpx.stream("POST", url, json=call("q3"), headers=agent.headers("POST", SSE_FIRST)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for event in events(r.iter_lines()):
            seen.append(event)
            if event.get("data"):
                break  # the first progress notification: then the agent goes away
    priming, first = seen
    assert priming["data"] == ""  # a point to resume from, not a message
    assert priming["retry"] == "1000"
    assert json.loads(first["data"])["method"] == "notifications/progress"
    stream, _, number = first["id"].rpartition(":")
    assert priming["id"] == f"{stream}:0"
    assert number == "1"

    resumed = agent.headers("GET", "text/event-stream")
    resumed["Last-Event-ID"] = first["id"]
    with httpx.stream("GET", url, headers=resumed) as r:
        assert r.status_code == 200
        rest = [json.loads(e["data"]) for e in events(r.iter_lines()) if e.get("data")]
    assert [m.get("method") for m in rest] == ["notifications/progress", None]
    assert rest[0]["params"]["progress"] == 2
    assert rest[1]["id"] == 7
    assert rest[1]["result"]["content"][0]["text"] == "q3: done"
    assert ran == ["q3"]  # the call ran once: the drop did not cancel or repeat it

    # the same stream, from the start: every event again (a fresh proof: one per request)
    resumed = {**agent.headers("GET", "text/event-stream"), "Last-Event-ID": f"{stream}:0"}
    with httpx.stream("GET", url, headers=resumed) as r:
        again = [json.loads(e["data"]) for e in events(r.iter_lines()) if e.get("data")]
    assert len(again) == 3
    assert again[-1]["id"] == 7


def test_an_unknown_event_id_or_another_tasks_session_resumes_nothing(
    stack: Stack, slow_task: tuple[str, Task, list[str], GatewayServer]
) -> None:
    url, task, _, gateway = slow_task
    agent = Agent(url, task)
    agent.open()
    with httpx.stream("POST", url, json=call("q4"), headers=agent.headers("POST", SSE_FIRST)) as r:
        ids = [e["id"] for e in events(r.iter_lines()) if "id" in e]
    last = ids[-1]
    for made_up in ("nope:1", last.rpartition(":")[0] + ":x", "", "a" * 2000):
        headers = {**agent.headers("GET", "text/event-stream"), "Last-Event-ID": made_up}
        reply = httpx.get(url, headers=headers)
        assert (reply.status_code, reply.json()["reason"]) == (400, "mcp.event_unknown")
    with stack.agent() as other_agent:
        other = Agent(url, task_for(other_agent, gateway, "slow-calls", ["mcp:slow/slow_report"]))
        other.session_id = agent.session_id  # someone else's session id
        headers = {**other.headers("GET", "text/event-stream"), "Last-Event-ID": last}
        reply = httpx.get(url, headers=headers)
        assert (reply.status_code, reply.json()["reason"]) == (404, "mcp.session_unknown")
        other.task.complete()
    # the twin: the owner resumes the ended stream and gets its answer
    headers = {**agent.headers("GET", "text/event-stream"), "Last-Event-ID": ids[0]}
    with httpx.stream("GET", url, headers=headers) as r:
        answers = [json.loads(e["data"]) for e in events(r.iter_lines()) if e.get("data")]
    assert answers[-1]["id"] == 7


def test_a_json_first_agent_gets_json_unless_something_comes_first(
    slow_task: tuple[str, Task, list[str], GatewayServer],
) -> None:
    url, task, _, _ = slow_task
    agent = Agent(url, task)
    agent.open()
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    reply = httpx.post(url, json=listing, headers=agent.headers("POST"))
    assert reply.headers["content-type"] == "application/json"
    assert [t["name"] for t in reply.json()["result"]["tools"]] == ["slow_report"]
    # progress comes before the answer: streamed even to a JSON-first agent
    with httpx.stream("POST", url, json=call("q5"), headers=agent.headers("POST")) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [json.loads(e["data"]) for e in events(r.iter_lines()) if e.get("data")]
    assert [m.get("method") for m in data] == ["notifications/progress"] * 2 + [None]


@pytest.mark.parametrize(
    ("accept", "sse"),
    [
        (SSE_FIRST, True),
        (JSON_FIRST, False),
        ("application/json", False),
        ("text/event-stream", True),
        ("application/json;q=0.5, text/event-stream", True),
        ("text/event-stream;q=0, application/json", False),
        ("text/event-stream;q=bad, application/json", False),
        ("*/*", False),
    ],
)
def test_the_answer_form_follows_the_agents_preference(accept: str, sse: bool) -> None:
    assert prefers_sse(accept) is sse


def test_a_session_runs_a_bounded_number_of_requests_at_once(
    slow_task: tuple[str, Task, list[str], GatewayServer],
) -> None:
    url, task, _, gateway = slow_task
    agent = Agent(url, task)
    agent.open()
    session = gateway.sessions.peek(agent.session_id)
    assert session is not None
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    session.working = MAX_WORKING  # as if that many were running
    busy = httpx.post(url, json=listing, headers=agent.headers("POST"))
    assert (busy.status_code, busy.json()["reason"]) == (503, "mcp.busy")
    session.working = MAX_WORKING - 1  # the twin: one slot left
    reply = httpx.post(url, json=listing, headers=agent.headers("POST"))
    assert reply.status_code == 200
    assert session.working == MAX_WORKING - 1  # given back once answered
