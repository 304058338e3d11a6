"""Links (one MCP client session per agent session, raw JSON-RPC relayed) against real
servers: the Python SDK's servers over streamable HTTP (in this process) and over stdio
(a script), and the conformance suite's reference server (Node).

What a request's stream carries reaches its ``on_message`` in order before its answer,
what the server sends unprompted reaches ``on_unsolicited``, the server's requests are
answered with ``respond``, a cancelled caller cancels upstream, and a session the
server lost (or a process that exited) closes the link.
"""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp
import anyio
import mcp_types as types
import pytest
from mcp import MCPError
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.gateway.mcp.harness import SESSION, StubReply, StubRequest, StubUpstream, stub_mcp
from tests.gateway.mcp.test_resumable_e2e import CONFORMANCE, conformance_server
from tests.gateway.mcp.test_streamable import event, priming
from zerolane.cli.background import free_port
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.link import Link, connect
from zerolane.gateway.mcp.streamable import SESSION_HEADER, HttpSession, NotDelivered
from zerolane.gateway.mcp.upstream import NotServing

#: sampling and logging are deprecated in the SDK's newest revision (2026-07-28), not in the
#: 2025-11-25 one the gateway speaks; the in-process servers use them
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

CAPABILITIES = {"sampling": {}, "elicitation": {}, "roots": {"listChanged": True}}
SAMPLED = {
    "role": "assistant",
    "content": {"type": "text", "text": "forty-two"},
    "model": "test-model",
    "stopReason": "endTurn",
}


class Inbox:
    """The messages one callback received, in order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def methods(self) -> list[str]:
        return [m.get("method", "?") for m in self.messages]

    async def wait_for(self, method: str, seconds: float = 10) -> dict[str, Any]:
        with anyio.fail_after(seconds):
            while True:
                for message in self.messages:
                    if message.get("method") == method:
                        return message
                await anyio.sleep(0.01)


class Bodies:
    """An ASGI wrapper keeping every JSON-RPC message POSTed to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def tap() -> Message:
            event = await receive()
            if event["type"] == "http.request":
                chunks.append(event.get("body", b""))
                if not event.get("more_body", False):
                    self.messages.append(json.loads(b"".join(chunks)))
            return event

        await self.app(scope, tap, send)


@contextmanager
def served(app: ASGIApp) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port: its MCP endpoint's URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the MCP server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class PythonServer:
    """The Python SDK's ``MCPServer`` with tools that report progress and log, ask the
    client to sample, and wait until cancelled."""

    def __init__(self) -> None:
        self.events: list[str] = []
        server = MCPServer("link-tests")

        @server.tool()
        async def steps(ctx: Context) -> str:
            request_id = ctx.request_context.request_id
            await ctx.report_progress(1, 2, "one")
            await ctx.session.send_log_message("info", "halfway", related_request_id=request_id)
            await ctx.report_progress(2, 2, "two")
            return "done"

        @server.tool()
        async def ask(ctx: Context) -> str:
            message = types.SamplingMessage(
                role="user", content=types.TextContent(type="text", text="the answer?")
            )
            result = await ctx.session.create_message(
                [message], max_tokens=10, related_request_id=ctx.request_context.request_id
            )
            assert isinstance(result.content, types.TextContent)
            return f"sampled: {result.content.text}"

        @server.tool()
        async def wait() -> str:
            self.events.append("waiting")
            try:
                await anyio.sleep(30)
            except anyio.get_cancelled_exc_class():
                self.events.append("cancelled")
                raise
            return "waited"

        self.bodies = Bodies(server.streamable_http_app())


class Subscribable:
    """A low-level SDK server whose resources can be subscribed to; its ``touch`` tool
    sends ``notifications/resources/updated`` for each subscribed URI (unsolicited)."""

    def __init__(self) -> None:
        self.subscribed: list[str] = []

        async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
            self.subscribed.append(str(params.uri))
            return types.EmptyResult()

        async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            schema = {"type": "object"}
            return types.ListToolsResult(tools=[types.Tool(name="touch", input_schema=schema)])

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            for uri in self.subscribed:
                await ctx.session.send_resource_updated(uri)
            return types.CallToolResult(content=[types.TextContent(type="text", text="ok")])

        server = Server(
            "subscribable",
            on_subscribe_resource=subscribe,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )
        self.app = server.streamable_http_app()


def http(url: str) -> UpstreamConfig:
    return UpstreamConfig(name="web", destination="web", url=url)


@asynccontextmanager
async def link_to(
    config: UpstreamConfig, on_unsolicited: Callable[[dict[str, Any]], Awaitable[None]]
) -> AsyncIterator[Link]:
    async with connect(
        config, pool=None, capabilities=CAPABILITIES, on_unsolicited=on_unsolicited
    ) as link:
        yield link


async def listening(link: Link) -> None:
    """Until the link's GET stream is open (the server can send unprompted)."""
    with anyio.fail_after(10):
        await cast(HttpSession, link).listening.wait()


async def until(done: Callable[[], bool], seconds: float = 10) -> None:
    """Until ``done()`` (a server in another thread changed something)."""
    with anyio.fail_after(seconds):
        for _ in itertools.count():
            if done():
                return
            await anyio.sleep(0.01)


def call(name: str, token: str | int | None = None, **arguments: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return params


def text(answer: dict[str, Any]) -> str:
    assert "result" in answer, answer
    return str(answer["result"]["content"][0]["text"])


# --- streamable HTTP, the Python SDK's server -----------------------------------------


def test_progress_and_logs_of_a_call_reach_on_message_in_order_before_the_answer() -> None:
    upstream = PythonServer()
    unsolicited, mine = Inbox(), Inbox()

    async def main() -> dict[str, Any]:
        async with link_to(http(url), unsolicited) as link:
            assert link.result["serverInfo"]["name"] == "link-tests"
            assert link.name == "web"
            return await link.request("tools/call", call("steps", "tok-1"), mine)

    with served(upstream.bodies) as url:
        answer = anyio.run(main)
    assert text(answer) == "done"
    assert mine.methods() == [
        "notifications/progress",
        "notifications/message",
        "notifications/progress",
    ]
    progress = [m["params"] for m in mine.messages if m["method"] == "notifications/progress"]
    assert [(p["progressToken"], p["progress"]) for p in progress] == [("tok-1", 1), ("tok-1", 2)]
    assert mine.messages[1]["params"]["data"] == "halfway"
    sent = next(m for m in upstream.bodies.messages if m.get("method") == "tools/call")
    assert answer["id"] == sent["id"]  # the link's own id; the caller puts the agent's back
    initialize = upstream.bodies.messages[0]
    assert initialize["params"]["capabilities"] == CAPABILITIES  # the agent's, relayed
    assert unsolicited.messages == []


def test_a_sampling_request_in_a_calls_stream_is_answered_with_respond() -> None:
    upstream = PythonServer()
    links: list[Link] = []
    asked = Inbox()

    async def on_message(message: dict[str, Any]) -> None:
        await asked(message)
        if message.get("method") == "sampling/createMessage":
            await links[0].respond({"jsonrpc": "2.0", "id": message["id"], "result": SAMPLED})

    async def main() -> dict[str, Any]:
        async with link_to(http(url), Inbox()) as link:
            links.append(link)
            return await link.request("tools/call", call("ask"), on_message)

    with served(upstream.bodies) as url:
        answer = anyio.run(main)
    assert text(answer) == "sampled: forty-two"
    assert asked.methods() == ["sampling/createMessage"]
    request = asked.messages[0]
    assert request["params"]["messages"][0]["content"]["text"] == "the answer?"
    reply = next(m for m in upstream.bodies.messages if m.get("result") == SAMPLED)
    assert reply["id"] == request["id"]  # the server's own id


def test_a_cancelled_caller_cancels_the_request_upstream() -> None:
    upstream = PythonServer()

    async def main() -> None:
        async with link_to(http(url), Inbox()) as link:
            with anyio.move_on_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(link.request, "tools/call", call("wait"), Inbox())
                    await until(lambda: "waiting" in upstream.events)
                    group.cancel_scope.cancel()
            await until(lambda: "cancelled" in upstream.events)

    with served(upstream.bodies) as url:
        anyio.run(main)
    sent = next(m for m in upstream.bodies.messages if m.get("method") == "tools/call")
    notes = [m for m in upstream.bodies.messages if m.get("method") == "notifications/cancelled"]
    assert [n["params"]["requestId"] for n in notes] == [sent["id"]]
    assert upstream.events == ["waiting", "cancelled"]


def test_a_session_the_server_lost_closes_the_link() -> None:
    """The server answers 404 for a session it no longer knows (here: deleted behind the
    link's back): the request never reached it, the link is closed for good."""
    upstream = PythonServer()

    async def main() -> tuple[NotDelivered, NotDelivered, bool]:
        async with link_to(http(url), Inbox()) as link:
            session = cast(HttpSession, link)
            assert session.session_id is not None
            assert not link.closed
            async with (
                aiohttp.ClientSession() as other,
                other.delete(url, headers={SESSION_HEADER: session.session_id}) as deleted,
            ):
                assert deleted.status < 300
            with pytest.raises(NotDelivered) as first:
                await link.request("tools/list", None, Inbox())
            closed = link.closed
            with pytest.raises(NotDelivered) as second:
                await link.request("tools/list", None, Inbox())
            return first.value, second.value, closed

    with served(upstream.bodies) as url:
        first, second, closed = anyio.run(main)
    assert closed
    assert first.reason in ("session", "closed")  # the GET stream may have noticed first
    assert second.reason == "closed"
    # the first reached the HTTP server, which refused it for the session (not run); the
    # second never left the link
    assert len([m for m in upstream.bodies.messages if m.get("method") == "tools/list"]) <= 1


def test_a_resource_update_after_subscribing_arrives_unsolicited() -> None:
    upstream = Subscribable()
    unsolicited = Inbox()

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with link_to(http(url), unsolicited) as link:
            await listening(link)
            params = {"uri": "file:///reports/q3.md"}
            subscribed = await link.request("resources/subscribe", params, Inbox())
            await link.request("tools/call", call("touch"), Inbox())
            return subscribed, await unsolicited.wait_for("notifications/resources/updated")

    with served(upstream.app) as url:
        subscribed, update = anyio.run(main)
    assert subscribed["result"] == {}
    assert update["params"]["uri"] == "file:///reports/q3.md"


def test_an_upstream_that_is_not_there_is_not_serving() -> None:
    async def main() -> None:
        config = http(f"http://127.0.0.1:{free_port()}/mcp")
        async with connect(config, pool=None, capabilities={}, on_unsolicited=Inbox()):
            pytest.fail("connected to nobody")

    with pytest.raises(NotServing, match="MCP upstream web is not serving"):
        anyio.run(main)


def test_the_get_stream_is_reopened_after_its_last_event_and_its_pings_answered() -> None:
    """What the server sends unprompted (its GET stream) reaches on_unsolicited, one
    failure of on_unsolicited not ending it; the link answers the server's ping itself;
    a stream that ends is reopened with Last-Event-ID after ``retry``; 405: none."""
    gets: list[StubRequest] = []
    unsolicited = Inbox()

    async def on_unsolicited(message: dict[str, Any]) -> None:
        await unsolicited(message)
        if len(unsolicited.messages) == 1:
            raise RuntimeError("the agent is gone")

    async def on_get(request: StubRequest) -> StubReply:
        gets.append(request)
        if len(gets) > 1:
            return StubReply(status=405, headers={"allow": "POST, DELETE"})
        ping = {"jsonrpc": "2.0", "id": "srv-9", "method": "ping"}
        changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        updated = {"jsonrpc": "2.0", "method": "notifications/resources/list_changed"}
        chunks = [priming("g1", retry_ms=10), event(ping, "g2"), event(changed, "g3")]
        return StubReply(chunks=[*chunks, event(updated, "g4")])

    async def no_call(request: StubRequest) -> StubReply:
        raise AssertionError("no call is made")

    inner = stub_mcp(no_call)

    async def handle(request: StubRequest) -> StubReply | None:
        return await (on_get if request.method == "GET" else inner)(request)

    async def main() -> StubUpstream:
        async with StubUpstream(handle) as stub, link_to(http(stub.url), on_unsolicited):
            await until(lambda: len(gets) == 2)
        return stub

    stub = anyio.run(main)
    assert unsolicited.methods() == [
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
    ]
    assert [g.headers.get("last-event-id") for g in gets] == [None, "g4"]
    for get in gets:
        assert get.headers["accept"] == "text/event-stream"
        assert get.headers["mcp-session-id"] == SESSION
    replies = [r.message for r in stub.requests if r.method == "POST" and "method" not in r.message]
    assert replies == [{"jsonrpc": "2.0", "id": "srv-9", "result": {}}]
    assert stub.requests[-1].method == "DELETE"  # the link ended its session


# --- the conformance suite's reference server (Node) ----------------------------------


def test_the_reference_server_relays_progress_logs_sampling_and_elicitation(
    tmp_path: Path,
) -> None:
    """It sends progress and log messages in the call's stream, and its sampling and
    elicitation requests on the GET stream (unsolicited): each answered with respond."""
    assert CONFORMANCE.exists(), f"the conformance server is missing: {CONFORMANCE}"
    links: list[Link] = []
    unsolicited = Inbox()
    answers = {
        # its tool reads the result with the schema of the request (method included)
        "sampling/createMessage": {**SAMPLED, "method": "sampling/createMessage"},
        "elicitation/create": {"action": "accept", "content": {"response": "yes"}},
    }

    async def on_unsolicited(message: dict[str, Any]) -> None:
        await unsolicited(message)
        if message.get("method") in answers and "id" in message:
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": answers[message["method"]]}
            await links[0].respond(reply)

    progress, logs = Inbox(), Inbox()

    async def main() -> list[dict[str, Any]]:
        async with link_to(http(url), on_unsolicited) as link:
            links.append(link)
            await listening(link)
            return [
                await link.request("tools/call", call("test_tool_with_progress", 7), progress),
                await link.request("tools/call", call("test_tool_with_logging"), logs),
                await link.request("tools/call", call("test_sampling", prompt="hi"), Inbox()),
                await link.request("tools/call", call("test_elicitation", message="ok?"), Inbox()),
            ]

    with conformance_server(tmp_path) as url:
        with_progress, with_logging, sampled, elicited = anyio.run(main)
    assert text(with_progress) == "7"
    assert [m["params"]["progress"] for m in progress.messages] == [0, 50, 100]
    assert {m["params"]["progressToken"] for m in progress.messages} == {7}
    assert text(with_logging) == "Tool with logging executed successfully"
    assert [m["params"]["data"] for m in logs.messages] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]
    assert text(sampled) == "LLM response: forty-two"
    assert text(elicited) == 'User response: action=accept, content={"response":"yes"}'
    asked = [m["method"] for m in unsolicited.messages if "id" in m]
    assert asked == ["sampling/createMessage", "elicitation/create"]


# --- stdio ----------------------------------------------------------------------------

STDIO_SERVER = textwrap.dedent(
    """
    import os
    import anyio
    from mcp.server.mcpserver import Context, MCPServer

    server = MCPServer("stdio-link-tests")

    @server.tool()
    async def steps(label: str, ctx: Context) -> str:
        request_id = ctx.request_context.request_id
        for step in range(1, 4):
            await ctx.report_progress(step, 3, label)
            await ctx.session.send_log_message("info", f"{label} {step}")
            await anyio.sleep(0.02)
        return f"{label} done"

    @server.tool()
    async def wait(ctx: Context) -> str:
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await ctx.session.send_log_message("info", "cancelled")
            raise
        return "waited"

    @server.tool()
    def exit() -> str:
        os._exit(0)

    server.run()
    """
)


def stdio(tmp_path: Path) -> UpstreamConfig:
    script = tmp_path / "server.py"
    script.write_text(STDIO_SERVER)
    return UpstreamConfig(
        name="local", destination="local", command=sys.executable, args=(str(script),)
    )


def test_stdio_progress_goes_to_the_request_whose_token_it_names(tmp_path: Path) -> None:
    unsolicited = Inbox()
    inboxes = {"a": Inbox(), "b": Inbox()}
    answers: dict[str, dict[str, Any]] = {}

    async def one(link: Link, label: str) -> None:
        params = call("steps", f"token-{label}", label=label)
        answers[label] = await link.request("tools/call", params, inboxes[label])

    async def main() -> None:
        async with link_to(stdio(tmp_path), unsolicited) as link:
            assert link.result["serverInfo"]["name"] == "stdio-link-tests"
            async with anyio.create_task_group() as group:
                group.start_soon(one, link, "a")
                group.start_soon(one, link, "b")

    anyio.run(main)
    for label, inbox in inboxes.items():
        assert text(answers[label]) == f"{label} done"
        assert inbox.methods() == ["notifications/progress"] * 3
        params = [m["params"] for m in inbox.messages]
        assert [(p["progressToken"], p["progress"]) for p in params] == [
            (f"token-{label}", 1),
            (f"token-{label}", 2),
            (f"token-{label}", 3),
        ]
    logs = [m["params"]["data"] for m in unsolicited.messages]  # no request's own: relayed
    assert sorted(logs) == sorted(f"{label} {step}" for label in "ab" for step in (1, 2, 3))


def test_stdio_cancelled_caller_cancels_upstream(tmp_path: Path) -> None:
    unsolicited = Inbox()

    async def main() -> None:
        async with link_to(stdio(tmp_path), unsolicited) as link:
            with anyio.move_on_after(0.5):
                await link.request("tools/call", call("wait"), Inbox())
            await unsolicited.wait_for("notifications/message")

    anyio.run(main)
    assert [m["params"]["data"] for m in unsolicited.messages] == ["cancelled"]


def test_a_stdio_process_that_exits_closes_the_link(tmp_path: Path) -> None:
    async def main() -> tuple[MCPError, NotDelivered, bool]:
        async with link_to(stdio(tmp_path), Inbox()) as link:
            with pytest.raises(MCPError) as lost:
                await link.request("tools/call", call("exit"), Inbox())
            closed = link.closed
            with pytest.raises(NotDelivered) as after:
                await link.request("tools/list", None, Inbox())
            return lost.value, after.value, closed

    lost, after, closed = anyio.run(main)
    assert lost.code == types.CONNECTION_CLOSED
    assert not isinstance(lost, NotDelivered)
    assert closed
    assert after.reason == "closed"


def test_a_stdio_server_that_does_not_start_is_not_serving(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import sys\nsys.exit('no configuration found')\n")
    config = UpstreamConfig(
        name="local", destination="local", command=sys.executable, args=(str(script),)
    )

    async def main() -> None:
        async with connect(config, pool=None, capabilities={}, on_unsolicited=Inbox()):
            pytest.fail("a process that exited served")

    with pytest.raises(NotServing, match="no configuration found"):
        anyio.run(main)
