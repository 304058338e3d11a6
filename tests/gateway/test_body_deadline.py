"""A body's deadlines (issue 13): all of it within ``[limits] body_timeout`` (a small
body read before the decision) or ``body_stream_timeout`` (a chunked or large one
streamed upstream after it), no pause longer than ``body_idle_timeout`` between two
parts. A client trickling
a chunked body in, or stalling mid-way through a large one, is answered 408
``request.body_timeout``, nothing whole reaches the upstream (its request is cut off),
and the refusal is audited with its task; the same bodies sent promptly go through.
Real clients over raw sockets."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tests.gateway.conftest import Stack, build_request, gateway_toml
from zerolane.cli.background import free_port
from zerolane.cli.gateway import BackgroundGateway
from zerolane.gateway.config import load_gateway_config
from zerolane.gateway.http import GatewayApp
from zerolane.gateway.http.body_deadline import BODY_TIMEOUT, BodyDeadline, BodyTimedOut
from zerolane.gateway.http.body_digest import bind_body
from zerolane.gateway.refusals import KIND, RefusalAudit

# ---- the deadlines themselves ------------------------------------------------------------


def paced(messages: Sequence[dict[str, Any]], pauses: Sequence[float]) -> Any:
    """A ``receive`` giving each message after its pause."""
    queue = list(zip(messages, pauses, strict=True))

    async def receive() -> dict[str, Any]:
        message, pause = queue.pop(0)
        if pause:
            await asyncio.sleep(pause)
        return message

    return receive


def part(body: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_pause_longer_than_the_idle_deadline_is_refused() -> None:
    async def main() -> None:
        deadline = BodyDeadline(total=30, idle=0.05)
        stalled = paced([part(b"a", True), part(b"b")], [0, 1])
        assert await deadline.receive(stalled) == part(b"a", True)
        said = "no part of the request's body arrived for 0.05 s"
        with pytest.raises(BodyTimedOut, match=re.escape(said)):
            await deadline.receive(stalled)
        # the twin: the same parts without the pause
        prompt, twin = (
            BodyDeadline(total=30, idle=0.05),
            paced([part(b"a", True), part(b"b")], [0, 0]),
        )
        assert [await prompt.receive(twin), await prompt.receive(twin)] == [
            part(b"a", True),
            part(b"b"),
        ]

    asyncio.run(main())


def test_parts_each_in_time_still_have_the_whole_bodys_deadline() -> None:
    async def main() -> None:
        deadline = BodyDeadline(total=0.1, idle=10)
        trickle = paced([part(b"x", True)] * 20, [0.02] * 20)

        async def read_all() -> None:
            for _ in range(20):
                await deadline.receive(trickle)

        said = "the request's body took longer than 0.1 s"
        with pytest.raises(BodyTimedOut, match=re.escape(said)):
            await read_all()

    asyncio.run(main())


def test_a_part_already_there_is_taken_at_the_deadline() -> None:
    async def main() -> None:
        deadline = BodyDeadline(total=0.01, idle=0.01)
        ready = paced([part(b"a", True), part(b"b")], [0, 0])
        assert await deadline.receive(ready) == part(b"a", True)
        await asyncio.sleep(0.05)  # past the whole body's deadline
        assert await deadline.receive(ready) == part(b"b")  # waiting: nothing to wait for

    asyncio.run(main())


def test_a_small_body_read_first_has_the_idle_deadline_too() -> None:
    async def main() -> None:
        stalled = paced([part(b"ab", True), part(b"c")], [0, 1])
        with pytest.raises(BodyTimedOut, match=re.escape("for 0.05 s")):
            await bind_body(stalled, 3, True, 30, 0.05)
        prompt = paced([part(b"ab", True), part(b"c")], [0, 0])
        bound = await bind_body(prompt, 3, True, 30, 0.05)
        assert bound is not None
        assert bound.body == b"abc"

    asyncio.run(main())


# ---- over sockets, through a gateway -----------------------------------------------------

TOTAL, IDLE = 1.5, 0.5
LARGE = 100_000  # over the 64 KiB read before the decision: streamed


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[tuple[RefusalAudit, int]]:
    """A gateway on the session's home with short body deadlines."""
    port = free_port()
    folder = stack.home.parent / f"gw-deadline-{port}"
    limits = f"body_timeout = {TOTAL}\nbody_stream_timeout = {TOTAL}\nbody_idle_timeout = {IDLE}"
    config = gateway_toml(folder, stack.upstream.port, port, limits=limits)
    deployment = stack.gateway_deployment
    refusals = RefusalAudit(deployment.audit, deployment.clock)
    app = GatewayApp(
        load_gateway_config(config), deployment.decider, listener="deadline-gw", refusals=refusals
    )
    with BackgroundGateway(app, port=port):
        yield refusals, port
    refusals.close()


def _send(port: int, head: bytes, parts: Sequence[bytes], pause: float) -> tuple[int, Any]:
    """Send ``head``, then each part after ``pause`` seconds, until the gateway answers
    (it may answer before every part is sent); its status and JSON body."""
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        sock.settimeout(pause or 0.01)
        for data in parts:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                chunk = b""
            else:
                answer += chunk
                break  # answered (or closed) before the body was sent whole
            try:
                sock.sendall(data)
            except OSError:
                break
        sock.settimeout(20)
        while chunk := sock.recv(65536):
            answer += chunk
    top, _, body = bytes(answer).partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in top.lower():
        body = _unchunk(body)
    return int(top.split()[1]), json.loads(body)


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2 :]
    return bytes(out)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _head(stack: Stack, task: Any, port: int, framing: tuple[str, str]) -> bytes:
    url = f"http://127.0.0.1:{port}/finance/upload"
    headers = list(task.headers("POST", url).items())
    return build_request("POST", "/finance/upload", [*headers, framing])


def _refused(stack: Stack, refusals: RefusalAudit, start: int, task_id: str) -> list[Any]:
    refusals.flush(10)
    events = [json.loads(r.body) for r in stack.gateway_deployment.stores.read_events(start, 10**6)]
    return [e for e in events if e["kind"] == KIND and e["subject"] == task_id]


CHUNKED = ("Transfer-Encoding", "chunked")


def test_a_chunked_body_trickled_in_is_cut_at_the_whole_bodys_deadline(
    stack: Stack, gateway: tuple[RefusalAudit, int]
) -> None:
    refusals, port = gateway
    start = stack.gateway_deployment.audit.tail(1)[0].seq
    complete = stack.upstream.complete()
    with stack.task() as task:
        # the attack: a byte every 0.2 s, each in time (idle 0.5 s), never ending
        parts = [_chunk(b"a")] * int(TOTAL / 0.2 * 4)
        status, body = _send(port, _head(stack, task, port, CHUNKED), parts, 0.2)
        assert (status, body["reason"]) == (408, BODY_TIMEOUT)
        assert body["message"] == f"the request's body took longer than {TOTAL:g} s"
        assert body["decision_id"]  # decided on its head, allowed: then cut
        assert stack.upstream.complete() == complete  # nothing whole reached it
        # the legitimate twin: the same body, promptly, in the same parts
        twin_parts = [_chunk(b"a")] * 10 + [b"0\r\n\r\n"]
        status, echoed = _send(port, _head(stack, task, port, CHUNKED), twin_parts, 0)
        assert status == 200, echoed
        assert echoed["body_length"] == 10
        task_id = task.task_id
    [refused] = _refused(stack, refusals, start, task_id)
    assert refused["reason"] == BODY_TIMEOUT
    assert refused["details"]["status"] == 408
    assert refused["details"]["listener"] == "deadline-gw"


def test_a_body_stalled_mid_way_is_cut_at_the_idle_deadline(
    stack: Stack, gateway: tuple[RefusalAudit, int]
) -> None:
    refusals, port = gateway
    start = stack.gateway_deployment.audit.tail(1)[0].seq
    complete = stack.upstream.complete()
    data = b"z" * LARGE
    length = ("Content-Length", str(LARGE))
    with stack.task() as task:
        for framing, first in ((CHUNKED, _chunk(data[:70_000])), (length, data[:70_000])):
            head = _head(stack, task, port, framing)
            status, body = _send(port, head + first, [], 0)  # then nothing
            assert (status, body["reason"]) == (408, BODY_TIMEOUT)
            assert body["message"] == f"no part of the request's body arrived for {IDLE:g} s"
            assert body["decision_id"]  # streamed: decided on its head, then cut
        assert stack.upstream.complete() == complete
        # the legitimate twins: the same bodies whole
        whole = {CHUNKED: _chunk(data) + b"0\r\n\r\n", length: data}
        for framing, sent in whole.items():
            status, echoed = _send(port, _head(stack, task, port, framing) + sent, [], 0)
            assert status == 200, echoed
            assert echoed["body_length"] == LARGE
        task_id = task.task_id
    refused = _refused(stack, refusals, start, task_id)
    assert [e["reason"] for e in refused] == [BODY_TIMEOUT, BODY_TIMEOUT]


@pytest.fixture(scope="module")
def upload_gateway(stack: Stack) -> Iterator[int]:
    """A gateway whose streamed bodies have longer than its small bodies."""
    port = free_port()
    folder = stack.home.parent / f"gw-upload-{port}"
    limits = f"body_timeout = 0.3\nbody_stream_timeout = 5\nbody_idle_timeout = {IDLE}"
    config = gateway_toml(folder, stack.upstream.port, port, limits=limits)
    app = GatewayApp(load_gateway_config(config), stack.gateway_deployment.decider)
    with BackgroundGateway(app, port=port):
        yield port


def test_a_streamed_upload_has_its_own_deadline(stack: Stack, upload_gateway: int) -> None:
    port = upload_gateway
    with stack.task() as task:
        # an upload streamed for about 1.2 s: longer than body_timeout (a small body's
        # deadline), within body_stream_timeout, never idle for long: it goes through
        parts = [_chunk(b"u" * 1000)] * 6 + [b"0\r\n\r\n"]
        status, echoed = _send(port, _head(stack, task, port, CHUNKED), parts, 0.2)
        assert status == 200, echoed
        assert echoed["body_length"] == 6000
        # a small body read before the decision still has body_timeout: 0.3 s
        head = _head(stack, task, port, ("Content-Length", "10"))
        status, body = _send(port, head, [b"01234", b"56789"], 0.45)
        assert (status, body["reason"]) == (408, BODY_TIMEOUT)
        assert body["message"] == "the request's body took longer than 0.3 s"
