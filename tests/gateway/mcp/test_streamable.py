"""The gateway's streamable HTTP client, against a scripted upstream: answers as JSON or
SSE, the server's own requests, errors, and what counts as never delivered."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
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
from zerolane.gateway.mcp.streamable import HttpSession, NotDelivered, http_session, sse_messages
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


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def messages(*parts: bytes) -> list[bytes]:
    async def main() -> list[bytes]:
        return [data async for data in sse_messages(chunks_of(*parts))]

    return anyio.run(main)


def test_sse_lines_end_with_crlf_lf_or_cr() -> None:
    assert messages(b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r", b"\n\r\n") == [
        b"a",
        b"b",
        b"c",
        b"d",
    ]


def test_sse_data_lines_join_and_other_events_are_skipped() -> None:
    stream = b"id: 1\ndata:x\ndata: y\n\nevent: ping\ndata: no\n\nretry: 5\n: c\n\ndata: z\n\n"
    assert messages(stream) == [b"x\ny", b"z"]
    assert messages(b"data: unfinished") == []  # no blank line: never dispatched


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


def test_an_sse_event_of_empty_data_lines_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty ``data:`` lines grow the event too (each adds a line feed): no endless growth."""
    monkeypatch.setattr("zerolane.gateway.mcp.streamable.MAX_MESSAGE_BYTES", 1000)
    with pytest.raises(MCPError, match="too large"):
        messages(b"data:\n" * 2000)


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
