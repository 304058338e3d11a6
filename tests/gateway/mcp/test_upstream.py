"""The gateway's upstream connection: one long-lived session, shared and reused, reopened
when it dies, a call sent again only when it never got there, closed on shutdown."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import TextContent

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.harness import (
    SAMPLE,
    SESSION,
    HttpUpstream,
    StubReply,
    StubRequest,
    StubUpstream,
    calls,
    read_log,
    sse,
    stub_mcp,
)
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.errors import Unavailable
from zerolane.gateway.mcp import create_gateway_app
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.upstream import Upstream


async def read(upstream: Upstream) -> str:
    result = await upstream.call_tool("read_report", {"name": "q3"}, {})
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def running(upstream: Upstream, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``upstream`` (started, then stopped cleanly) around ``body``."""

    async def main() -> Any:
        async with anyio.create_task_group() as group:
            await group.start(upstream.run)
            try:
                return await body()
            finally:
                upstream.stop()  # run() ends by itself once the session is closed

    return anyio.run(main)


def http_posts(log: Path) -> list[dict[str, Any]]:
    return [e for e in read_log(log) if e["event"] == "http" and e["method"] == "POST"]


def test_sequential_and_concurrent_calls_share_one_session(tmp_path: Path) -> None:
    log = tmp_path / "web.jsonl"
    with HttpUpstream(log) as server:
        upstream = Upstream(UpstreamConfig(name="web", destination="web", url=server.url))

        async def body() -> list[str]:
            texts = [await read(upstream) for _ in range(5)]
            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(read, upstream)
            return texts

        texts = running(upstream, body)
    assert all("Q3 revenue" in text for text in texts)
    assert upstream.sessions_opened == 1
    assert len(calls(log, "read_report")) == 15
    posts = http_posts(log)
    opening = [p for p in posts if "mcp-session-id" not in p["headers"]]
    assert len(opening) == 1  # one initialize, for all fifteen calls
    sessions = {p["headers"].get("mcp-session-id") for p in posts} - {None}
    assert len(sessions) == 1
    deletes = [e for e in read_log(log) if e["event"] == "http" and e["method"] == "DELETE"]
    assert [d["headers"]["mcp-session-id"] for d in deletes] == list(sessions)  # stop() ended it


def test_a_restarted_http_upstream_gets_a_new_session_and_the_call_once(tmp_path: Path) -> None:
    """The restarted server answers 404 for the old session: the call never ran, so it
    is sent again, once, on a new session; the caller sees no error."""
    log = tmp_path / "web.jsonl"
    first = HttpUpstream(log)
    upstream = Upstream(UpstreamConfig(name="web", destination="web", url=first.url))

    async def main() -> list[str]:
        async with anyio.create_task_group() as group:
            with first:
                await group.start(upstream.run)
                texts = [await read(upstream)]
            # (the blocking start below would keep the loop from seeing the old
            # connection close, which a serving gateway sees at once)
            await anyio.sleep(0.2)
            second = HttpUpstream(log)
            second.port, second.url = first.port, first.url
            with second:
                texts.append(await read(upstream))
                upstream.stop()
        return texts

    assert all("Q3 revenue" in text for text in anyio.run(main))
    assert upstream.sessions_opened == 2
    assert len(calls(log, "read_report")) == 2  # one call each: none was sent twice


def test_an_upstream_that_stays_down_fails_closed(tmp_path: Path) -> None:
    log = tmp_path / "web.jsonl"
    server = HttpUpstream(log)
    upstream = Upstream(
        UpstreamConfig(name="web", destination="web", url=server.url), wait_seconds=1
    )

    async def body() -> None:
        with server:
            assert "Q3 revenue" in await read(upstream)
        with pytest.raises(Unavailable) as caught:  # no connection: retried once, in vain
            await read(upstream)
        assert caught.value.reason == "upstream.unavailable"

    running(upstream, body)
    assert len(calls(log, "read_report")) == 1


def children_running(marker: str) -> list[int]:
    """This process's children whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and marker in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_dead_stdio_server_is_started_again_and_closed_on_stop(tmp_path: Path) -> None:
    log = tmp_path / "stdio.jsonl"
    config = UpstreamConfig(
        name="tools",
        destination="tools",
        command=sys.executable,
        args=(str(SAMPLE), "--log", str(log)),
    )
    upstream = Upstream(config)

    async def body() -> list[int]:
        assert "Q3 revenue" in await read(upstream)
        assert "Q3 revenue" in await read(upstream)
        (first,) = children_running(str(log))
        os.kill(first, signal.SIGKILL)
        await anyio.sleep(0.5)  # the session notices its server is gone
        assert first not in children_running(str(log))
        assert "Q3 revenue" in await read(upstream)  # never written: started again, sent
        return children_running(str(log))

    alive = running(upstream, body)
    assert len(alive) == 1
    assert upstream.sessions_opened == 2
    assert len(calls(log, "read_report")) == 3
    assert children_running(str(log)) == []  # stop() stopped the server


def test_a_call_dropped_after_it_was_sent_is_not_sent_again() -> None:
    """The upstream got the call, then the connection broke: it may have run, so the
    call fails closed (and the session is reopened for the next one)."""
    dropped: list[int] = []

    async def on_call(request: StubRequest) -> StubReply | None:
        if not dropped:
            dropped.append(1)
            return None  # received, never answered
        return StubReply(
            chunks=sse({"jsonrpc": "2.0", "id": request.message["id"], "result": {"content": []}})
        )

    async def main() -> tuple[StubUpstream, Upstream]:
        async with StubUpstream(stub_mcp(on_call)) as stub:
            upstream = Upstream(UpstreamConfig(name="stub", destination="stub", url=stub.url))

            async def body() -> None:
                with pytest.raises(Unavailable):
                    await upstream.call_tool("read_report", {}, {})
                assert (await upstream.call_tool("read_report", {}, {})).content == []

            async with anyio.create_task_group() as group:
                await group.start(upstream.run)
                try:
                    await body()
                finally:
                    upstream.stop()
            return stub, upstream

    stub, upstream = anyio.run(main)
    assert len(stub.calls("tools/call")) == 2  # the dropped one once, then the next call
    assert upstream.sessions_opened == 2


def test_the_gateway_opens_its_upstream_sessions_at_start_and_ends_them_on_shutdown(
    stack: Stack,
) -> None:
    async def on_call(request: StubRequest) -> StubReply:
        raise AssertionError("no call is made")

    async def main() -> tuple[StubUpstream, list[str]]:
        async with StubUpstream(stub_mcp(on_call)) as stub:
            server = UpstreamConfig(name="stub", destination="stub", url=stub.url)
            config = dataclasses.replace(stack.config, servers=(server,))
            app = create_gateway_app(config, enforcement_of(stack.deployment))
            async with app.router.lifespan_context(app):
                during = [r.method for r in stub.requests]
            return stub, during

    stub, during = anyio.run(main)
    assert during == ["POST", "POST", "POST"]  # initialize, initialized, tools/list
    assert [r.method for r in stub.requests] == [*during, "DELETE"]
    assert stub.requests[-1].headers["mcp-session-id"] == SESSION


def test_a_call_the_upstream_trickles_forever_is_cut_off_at_its_deadline() -> None:
    """A server that keeps the answer's stream open (a slow-loris upstream) would hold
    the call and a pooled connection for ever: past ``call_timeout`` the call fails
    closed, is never sent again, and the next call gets a fresh session."""
    stalled: list[int] = []

    async def on_call(request: StubRequest) -> StubReply | None:
        if not stalled:
            stalled.append(1)
            keepalive = b": still working\n\n"
            return StubReply(chunks=[keepalive] * 3, end_after=30)  # never answers
        return StubReply(
            chunks=sse({"jsonrpc": "2.0", "id": request.message["id"], "result": {"content": []}})
        )

    async def main() -> tuple[StubUpstream, Upstream, float]:
        async with StubUpstream(stub_mcp(on_call)) as stub:
            config = UpstreamConfig(name="stub", destination="stub", url=stub.url, call_timeout=0.5)
            upstream = Upstream(config)
            elapsed = 0.0

            async def body() -> None:
                nonlocal elapsed
                started = anyio.current_time()
                with pytest.raises(Unavailable) as cut:
                    await upstream.call_tool("read_report", {}, {})
                elapsed = anyio.current_time() - started
                assert cut.value.reason == "upstream.timeout"
                # the twin: an upstream that answers is answered within the deadline
                assert (await upstream.call_tool("read_report", {}, {})).content == []

            async with anyio.create_task_group() as group:
                await group.start(upstream.run)
                try:
                    await body()
                finally:
                    upstream.stop()
            return stub, upstream, elapsed

    stub, upstream, elapsed = anyio.run(main)
    assert 0.4 < elapsed < 5
    assert len(stub.calls("tools/call")) == 2  # the stalled one once, never again
    assert upstream.sessions_opened == 2


def primed(handler: Callable[[StubRequest], Awaitable[StubReply | None]]) -> Any:
    """``handler`` as a resumable server answers: every JSON answer becomes an SSE stream
    opened with a priming event (an id and empty data), as the MCP SDKs send them."""

    async def handle(request: StubRequest) -> StubReply | None:
        reply = await handler(request)
        if reply is None or reply.headers.get("content-type") != "application/json":
            return reply
        headers = {k: v for k, v in reply.headers.items() if k != "content-type"}
        opening = b"id: s1-0\nretry: 10\ndata: \n\n"
        return StubReply(
            headers=headers, chunks=[opening, b"id: s1-1\ndata: " + reply.body + b"\n\n"]
        )

    return handle


def test_an_upstream_that_primes_its_streams_is_connected() -> None:
    """The bug: the priming event was taken for a message (invalid JSON) on ``initialize``,
    so the upstream was never connected and its tools never listed."""

    async def on_call(request: StubRequest) -> StubReply:
        answer = {"jsonrpc": "2.0", "id": request.message["id"], "result": {"content": []}}
        return StubReply(chunks=[b"id: c-0\ndata:\n\n", *sse(answer)])

    async def main() -> tuple[StubUpstream, Upstream, Any]:
        async with StubUpstream(primed(stub_mcp(on_call))) as stub:
            config = UpstreamConfig(name="stub", destination="stub", url=stub.url)
            upstream = Upstream(config, wait_seconds=2)
            result = running_async(upstream, lambda: upstream.call_tool("read_report", {}, {}))
            return stub, upstream, await result

    stub, upstream, result = anyio.run(main)
    assert result.content == []
    assert [tool.name for tool in upstream.tools] == ["read_report"]
    assert upstream.sessions_opened == 1
    assert len(stub.calls("tools/call")) == 1
    assert all(r.method != "GET" for r in stub.requests)  # nothing to resume


def test_a_call_whose_stream_cannot_be_resumed_fails_closed_and_is_not_sent_again() -> None:
    """The server closes the call's stream after its priming event but refuses to resume
    it: the call fails (``upstream.closed``, saying why), is never sent again, and the next
    call gets a new session; its twin, a stream that can be resumed, is answered."""
    sent: list[StubRequest] = []

    async def on_call(request: StubRequest) -> StubReply:
        sent.append(request)
        return StubReply(chunks=[b"id: c-0\nretry: 10\ndata: \n\n"])  # closed at once

    inner = stub_mcp(on_call)
    resumable: list[bool] = [False]

    async def handle(request: StubRequest) -> StubReply | None:
        if request.method != "GET":
            return await inner(request)
        if not resumable[0]:
            return StubReply(status=405)
        answer = {"jsonrpc": "2.0", "id": sent[-1].message["id"], "result": {"content": []}}
        return StubReply(chunks=[b"id: c-1\ndata: " + json.dumps(answer).encode() + b"\n\n"])

    async def main() -> tuple[StubUpstream, Upstream]:
        async with StubUpstream(handle) as stub:
            upstream = Upstream(UpstreamConfig(name="stub", destination="stub", url=stub.url))

            async def body() -> None:
                with pytest.raises(Unavailable) as caught:
                    await upstream.call_tool("read_report", {}, {})
                assert caught.value.reason == "upstream.closed"
                assert "refused to resume the response stream" in caught.value.message
                resumable[0] = True
                assert (await upstream.call_tool("read_report", {}, {})).content == []

            await running_async(upstream, body)
            return stub, upstream

    stub, upstream = anyio.run(main)
    assert len(stub.calls("tools/call")) == 2  # one each: the refused one never again
    assert [r.headers["last-event-id"] for r in stub.requests if r.method == "GET"] == ["c-0"] * 2
    assert upstream.sessions_opened == 2


async def running_async(upstream: Upstream, body: Callable[[], Awaitable[Any]]) -> Any:
    """:func:`running` inside a running event loop."""
    async with anyio.create_task_group() as group:
        await group.start(upstream.run)
        try:
            return await body()
        finally:
            upstream.stop()
