"""The gateway's streamable HTTP client, against a scripted upstream: answers as JSON or
SSE, the server's own requests, errors, and what counts as never delivered."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import pytest
from mcp import MCPError
from mcp_types import CONNECTION_CLOSED, TextContent

from tests.gateway.mcp.harness import (
    SESSION,
    StubReply,
    StubRequest,
    StubUpstream,
    jsonrpc,
    sse,
    stub_mcp,
)
from zerolane.cli.background import free_port
from zerolane.gateway.mcp.streamable import HttpSession, NotDelivered, http_session
from zerolane.gateway.mcp.upstream import CLIENT_INFO

RESULT = {"content": [{"type": "text", "text": "Q3 revenue"}], "isError": False}


def answered(request: StubRequest, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request.message["id"], "result": result or RESULT}


async def with_session(url: str, use: Callable[[HttpSession], Awaitable[Any]]) -> Any:
    """What ``use`` returns, or raises (outside the session's task group)."""
    failed: Exception | None = None
    outcome = None
    async with http_session() as http, anyio.create_task_group() as tasks:
        session = HttpSession(url, http, tasks, CLIENT_INFO)
        try:
            await session.initialize()
            outcome = await use(session)
        except Exception as err:
            failed = err
        await session.close()
    if failed is not None:
        raise failed
    return outcome


def run(handler: Callable[[StubRequest], Awaitable[StubReply | None]], use: Any) -> Any:
    """Serve ``handler`` (the stub MCP server's tools/call) and ``use`` a session of it."""

    async def main() -> tuple[Any, StubUpstream]:
        async with StubUpstream(stub_mcp(handler)) as stub:
            return await with_session(stub.url, use), stub

    return anyio.run(main)


def text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return str(block.text)


def test_an_sse_answer_after_notifications_and_a_ping_of_the_server() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
        ping = {"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}
        sample = {"jsonrpc": "2.0", "id": "srv-2", "method": "sampling/createMessage"}
        events = b"".join(
            [b": a comment\r\n\r\n", *sse(note, ping, sample), *sse(answered(request))]
        )
        # split anywhere, a CR and its LF in two chunks included
        return StubReply(chunks=[events[i : i + 7] for i in range(0, len(events), 7)])

    async def use(session: HttpSession) -> Any:
        return [await session.call_tool("read_report", {"name": "q3"}, {"k": "v"}) for _ in "ab"]

    results, stub = run(on_call, use)
    assert [text(r) for r in results] == ["Q3 revenue", "Q3 revenue"]
    made = stub.calls("tools/call")
    assert made[0]["params"] == {
        "name": "read_report",
        "arguments": {"name": "q3"},
        "_meta": {"k": "v"},
    }
    replies = [r.message for r in stub.requests if "result" in r.message or "error" in r.message]
    assert {"jsonrpc": "2.0", "id": "srv-1", "result": {}} in replies  # ping answered
    refused = next(r for r in replies if r["id"] == "srv-2")  # sampling is not relayed
    assert refused["error"]["code"] == -32601
    posts = [r for r in stub.requests if r.method == "POST"][1:]  # all but initialize
    assert {r.headers.get("mcp-session-id") for r in posts} == {SESSION}
    assert {r.headers.get("mcp-protocol-version") for r in posts} == {"2025-06-18"}
    assert all("authorization" not in r.headers for r in stub.requests)
    assert stub.requests[-1].method == "DELETE"  # closed: the session is ended upstream


def test_sequential_calls_reuse_one_connection() -> None:
    """The rest of each SSE stream is read after its answer, so the connection is kept."""

    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=sse(answered(request)), end_after=0.005)

    async def use(session: HttpSession) -> None:
        for _ in range(10):
            await session.call_tool("read_report", {}, None)
            await anyio.sleep(0.02)  # the drain runs beside the caller, as between calls

    _, stub = run(on_call, use)
    assert len(stub.calls("tools/call")) == 10
    # initialize (then its notification on the same connection), ten calls, the DELETE
    assert stub.connections == 1


def test_an_error_answer_is_an_mcp_error() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        error = {"code": -32602, "message": "bad arguments", "data": {"field": "name"}}
        body = json.dumps({"jsonrpc": "2.0", "id": request.message["id"], "error": error})
        return StubReply(
            status=200, headers={"content-type": "application/json"}, body=body.encode()
        )

    async def use(session: HttpSession) -> None:
        await session.call_tool("read_report", {}, None)

    with pytest.raises(MCPError) as caught:
        run(on_call, use)
    assert (caught.value.code, caught.value.error.message) == (-32602, "bad arguments")


def test_a_404_for_the_session_is_not_delivered() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(status=404)

    async def use(session: HttpSession) -> None:
        await session.call_tool("read_report", {}, None)

    with pytest.raises(NotDelivered) as caught:
        run(on_call, use)
    assert caught.value.reason == "session"


def test_no_connection_is_not_delivered() -> None:
    async def main() -> None:
        url = f"http://127.0.0.1:{free_port()}/mcp"  # nobody listens there
        await with_session(url, lambda session: session.list_tools())

    with pytest.raises(NotDelivered) as caught:
        anyio.run(main)
    assert caught.value.reason == "connect"


def test_a_dropped_request_may_have_run_so_it_is_not_not_delivered() -> None:
    async def on_call(request: StubRequest) -> None:
        return None  # received, then the connection is dropped without an answer

    async def use(session: HttpSession) -> None:
        await session.call_tool("read_report", {}, None)

    with pytest.raises(aiohttp.ClientError):
        run(on_call, use)


def test_a_stream_that_ends_without_the_answer_is_a_closed_connection() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}
        return StubReply(chunks=sse(note))

    async def use(session: HttpSession) -> None:
        await session.call_tool("read_report", {}, None)

    with pytest.raises(MCPError) as caught:
        run(on_call, use)
    assert caught.value.code == CONNECTION_CLOSED


def test_an_answer_for_another_request_is_refused() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        return jsonrpc({"id": 999}, RESULT)

    async def use(session: HttpSession) -> None:
        await session.call_tool("read_report", {}, None)

    with pytest.raises(MCPError, match="another request"):
        run(on_call, use)


def test_a_reply_to_the_servers_ping_that_cannot_connect_is_not_not_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The call reached the server (its stream is open): a failure to send the answer to
    the server's own ping must not make the call look never delivered (sent again)."""
    post = HttpSession._post

    async def no_connection_for_replies(
        self: HttpSession, message: dict[str, Any]
    ) -> aiohttp.ClientResponse:
        if "method" not in message:
            raise NotDelivered("connect", "refused")
        return await post(self, message)

    monkeypatch.setattr(HttpSession, "_post", no_connection_for_replies)

    async def on_call(request: StubRequest) -> StubReply:
        ping = {"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}
        return StubReply(chunks=[*sse(ping), *sse(answered(request))])

    async def use(session: HttpSession) -> None:
        await session.call_tool("read_report", {}, None)

    with pytest.raises(MCPError, match="reply to the upstream failed") as caught:
        run(on_call, use)
    assert not isinstance(caught.value, NotDelivered)
    assert caught.value.code == CONNECTION_CLOSED  # the session is renewed, the call not


def test_a_reply_to_the_server_waits_for_a_connection_only_so_long() -> None:
    """The stream holds a connection while the reply needs another: with the pool full
    (here of one; of 100 under load) the reply must not wait for ever, holding the pool."""

    async def on_call(request: StubRequest) -> StubReply:
        ping = {"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}
        return StubReply(chunks=[*sse(ping), *sse(answered(request))], end_after=30)

    async def main() -> Any:
        async with StubUpstream(stub_mcp(on_call)) as stub:
            connector = aiohttp.TCPConnector(limit=1)
            async with (
                aiohttp.ClientSession(connector=connector) as http,
                anyio.create_task_group() as tasks,
            ):
                session = HttpSession(stub.url, http, tasks, CLIENT_INFO)
                await session.initialize()
                with anyio.fail_after(5):
                    result = await session.call_tool("read_report", {}, None)
            return result

    assert text(anyio.run(main)) == "Q3 revenue"


def test_the_answer_to_a_notification_is_read_only_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body answering a notification is bounded like any answer (no endless buffering)."""
    monkeypatch.setattr("zerolane.gateway.mcp.streamable.MAX_MESSAGE_BYTES", 1000)
    inner = stub_mcp(lambda request: pytest.fail("no call is made"))

    async def handle(request: StubRequest) -> StubReply | None:
        if request.message.get("method") == "notifications/initialized":
            return StubReply(status=202, body=b"x" * 5000)
        return await inner(request)

    async def main() -> None:
        async with StubUpstream(handle) as stub:
            await with_session(stub.url, lambda session: session.list_tools())

    with pytest.raises(MCPError, match="too large"):
        anyio.run(main)


# --- resumable streams (2025-11-25): priming events, resuming with Last-Event-ID ------


def event(message: dict[str, Any], event_id: str) -> bytes:
    return f"event: message\nid: {event_id}\ndata: {json.dumps(message)}\n\n".encode()


def priming(event_id: str, retry_ms: int | None = 10) -> bytes:
    """What a resumable server sends first on a stream (an id and empty data)."""
    retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"id: {event_id}\n{retry}data: \n\n".encode()


class BrokenReply(StubReply):
    """Its chunks are sent, then the connection breaks (the stream never ends)."""


class BreakingUpstream(StubUpstream):
    @staticmethod
    async def _answer(writer: Any, reply: StubReply) -> None:
        if not isinstance(reply, BrokenReply):
            await StubUpstream._answer(writer, reply)
            return
        head = "HTTP/1.1 200 X\r\ncontent-type: text/event-stream\r\n"
        writer.write(f"{head}transfer-encoding: chunked\r\n\r\n".encode())
        for chunk in reply.chunks or []:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
        writer.close()


StubHandler = Callable[[StubRequest], Awaitable[StubReply | None]]


def run_resumable(on_call: StubHandler, on_get: StubHandler, use: Any) -> Any:
    """Like :func:`run`, the server's GETs (resuming a stream) answered by ``on_get``."""
    inner = stub_mcp(on_call)

    async def handle(request: StubRequest) -> StubReply | None:
        return await (on_get if request.method == "GET" else inner)(request)

    async def main() -> tuple[Any, StubUpstream]:
        async with BreakingUpstream(handle) as stub:
            failed: Exception | None = None
            try:
                outcome = await with_session(stub.url, use)
            except Exception as err:
                failed, outcome = err, None
            return (failed or outcome), stub

    return anyio.run(main)


def call_once(session: HttpSession) -> Any:
    return session.call_tool("read_report", {}, None)


def gets(stub: StubUpstream) -> list[StubRequest]:
    return [r for r in stub.requests if r.method == "GET"]


async def no_get(request: StubRequest) -> StubReply:
    raise AssertionError("no GET is made")


def test_a_priming_event_before_the_answer_is_no_message() -> None:
    """The bug: the priming event was parsed as a message ("invalid JSON") for ever."""

    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=[priming("p1"), event(answered(request), "p2")])

    result, stub = run_resumable(on_call, no_get, call_once)
    assert text(result) == "Q3 revenue"
    assert gets(stub) == []


def test_a_stream_closed_after_its_priming_event_is_resumed_never_sent_again() -> None:
    """The server closes the call's stream early (SEP-1699 polling): the gateway waits the
    server's ``retry``, then resumes with a GET and ``Last-Event-ID`` (again when that
    stream is closed early too); the call is not sent again (a tool never runs twice)."""
    sent: list[tuple[float, StubRequest]] = []
    asked: list[float] = []

    async def on_call(request: StubRequest) -> StubReply:
        sent.append((anyio.current_time(), request))
        return StubReply(chunks=[priming("p1", retry_ms=300)])

    async def on_get(request: StubRequest) -> StubReply:
        asked.append(anyio.current_time())
        if request.headers["last-event-id"] == "p1":  # polling: closed again, no answer yet
            return StubReply(chunks=[priming("p2", retry_ms=10)])
        return StubReply(chunks=[event(answered(sent[0][1]), "p3")])

    result, stub = run_resumable(on_call, on_get, call_once)
    assert text(result) == "Q3 revenue"
    assert len(stub.calls("tools/call")) == 1
    resumed = gets(stub)
    assert [r.headers["last-event-id"] for r in resumed] == ["p1", "p2"]
    for get in resumed:
        assert get.headers["mcp-session-id"] == SESSION
        assert get.headers["mcp-protocol-version"] == "2025-06-18"
        assert get.headers["accept"] == "text/event-stream"
        assert get.body == b""
    assert asked[0] - sent[0][0] >= 0.3  # the server's retry was honoured


def test_a_stream_broken_after_an_event_id_is_resumed() -> None:
    """Not only a stream the server ends: one whose connection breaks is resumed too."""
    sent: list[StubRequest] = []

    async def on_call(request: StubRequest) -> StubReply:
        sent.append(request)
        note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}
        return BrokenReply(chunks=[priming("p1"), event(note, "p2")])

    async def on_get(request: StubRequest) -> StubReply:
        assert request.headers["last-event-id"] == "p2"  # after the last whole event
        return StubReply(chunks=[event(answered(sent[0]), "p3")])

    result, stub = run_resumable(on_call, on_get, call_once)
    assert text(result) == "Q3 revenue"
    assert len(stub.calls("tools/call")) == 1
    assert len(gets(stub)) == 1


def test_a_stream_the_server_will_not_resume_fails_closed_without_sending_again() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=[priming("p1")])

    async def on_get(request: StubRequest) -> StubReply:
        return StubReply(status=405, headers={"allow": "POST, DELETE"})

    failed, stub = run_resumable(on_call, on_get, call_once)
    assert isinstance(failed, MCPError)
    assert not isinstance(failed, NotDelivered)
    assert failed.code == CONNECTION_CLOSED
    assert "refused to resume the response stream (HTTP 405" in failed.error.message
    assert len(stub.calls("tools/call")) == 1
    assert len(gets(stub)) == 1


def test_a_session_gone_while_resuming_is_a_closed_connection_not_undelivered() -> None:
    """The call reached the server before its session ended: it may have run."""

    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=[priming("p1")])

    async def on_get(request: StubRequest) -> StubReply:
        return StubReply(status=404)

    failed, stub = run_resumable(on_call, on_get, call_once)
    assert isinstance(failed, MCPError)
    assert not isinstance(failed, NotDelivered)
    assert failed.code == CONNECTION_CLOSED
    assert "no longer knows the session" in failed.error.message
    assert len(stub.calls("tools/call")) == 1


def test_a_retry_longer_than_the_bound_is_not_waited_for() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=[priming("p1", retry_ms=3_600_000)])

    async def use(session: HttpSession) -> Any:
        with anyio.fail_after(5):
            return await call_once(session)

    failed, stub = run_resumable(on_call, no_get, use)
    assert isinstance(failed, MCPError)
    assert failed.code == CONNECTION_CLOSED
    assert "asks to wait 3600 s" in failed.error.message
    assert gets(stub) == []


def test_resuming_gives_up_after_attempts_that_bring_nothing_new() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=[priming("p1")])

    async def on_get(request: StubRequest) -> StubReply:
        return StubReply(chunks=[b": nothing new\n\n"])  # ends again, no new event

    failed, stub = run_resumable(on_call, on_get, call_once)
    assert isinstance(failed, MCPError)
    assert failed.code == CONNECTION_CLOSED
    assert "could not be resumed (3 attempts)" in failed.error.message
    assert [r.headers["last-event-id"] for r in gets(stub)] == ["p1"] * 3
    assert len(stub.calls("tools/call")) == 1


def test_an_event_id_that_cannot_be_a_header_is_not_sent_back() -> None:
    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=["id: caf\u00e9\ndata:\n\n".encode()])

    failed, stub = run_resumable(on_call, no_get, call_once)
    assert isinstance(failed, MCPError)
    assert failed.code == CONNECTION_CLOSED
    assert "cannot be sent back" in failed.error.message
    assert gets(stub) == []


def test_a_server_that_keeps_closing_its_stream_is_resumed_only_so_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each resumed stream brings a new priming event and ends: polling, but never an
    answer. The resumptions in all are bounded (here 4), the call is not sent again."""
    monkeypatch.setattr("zerolane.gateway.mcp.streamable.MAX_RESUMES", 4)
    ids = iter(range(2, 100))

    async def on_call(request: StubRequest) -> StubReply:
        return StubReply(chunks=[priming("p1", retry_ms=0)])

    async def on_get(request: StubRequest) -> StubReply:
        return StubReply(chunks=[priming(f"p{next(ids)}", retry_ms=0)])

    failed, stub = run_resumable(on_call, on_get, call_once)
    assert isinstance(failed, MCPError)
    assert failed.code == CONNECTION_CLOSED
    assert "resumed 4 times without an answer" in failed.error.message
    assert [r.headers["last-event-id"] for r in gets(stub)] == ["p1", "p2", "p3", "p4"]
    assert len(stub.calls("tools/call")) == 1


def test_a_resuming_get_the_server_fails_is_tried_again() -> None:
    """A 5xx (or no connection) for the GET is a failed attempt, tried again after the
    wait; a 4xx is a refusal (above)."""
    sent: list[StubRequest] = []
    failed_once: list[StubRequest] = []

    async def on_call(request: StubRequest) -> StubReply:
        sent.append(request)
        return StubReply(chunks=[priming("p1", retry_ms=0)])

    async def on_get(request: StubRequest) -> StubReply:
        if not failed_once:
            failed_once.append(request)
            return StubReply(status=503)
        return StubReply(chunks=[event(answered(sent[0]), "p2")])

    result, stub = run_resumable(on_call, on_get, call_once)
    assert text(result) == "Q3 revenue"
    assert [r.headers["last-event-id"] for r in gets(stub)] == ["p1", "p1"]
    assert len(stub.calls("tools/call")) == 1
