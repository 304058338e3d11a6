"""What gateway/http/protocol.py relies on in uvicorn's private ``HttpToolsProtocol``.

The protocol subclasses uvicorn's httptools protocol (pyproject pins the uvicorn range
it was written against). These tests drive it on a fake transport, without a server,
and fail on an upgrade that changes any of the behaviour it builds on: the parser
callbacks it wraps, ``data_received`` answering a callback's error through
``send_400_response``, ``url`` holding the raw target, ``cycle`` being the request in
flight and holding the very ``scope`` dict, ``server_state.default_headers`` and
``STATUS_LINE``. The end-to-end behaviour is in ``test_header_limits.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from zerolane.gateway.http.protocol import (
    HeadLimitedHttpToolsProtocol,
    RawTargetHttpToolsProtocol,
)


class FakeTransport(asyncio.Transport):
    """A plain-TCP transport that keeps what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.eof_written = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the app is never run in these tests")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def _connect(
    cls: type[HttpToolsProtocol], loop: asyncio.AbstractEventLoop, **state: Any
) -> tuple[HttpToolsProtocol, FakeTransport]:
    server_state = ServerState()
    server_state.default_headers = state.get("default_headers", [])
    config = uvicorn.Config(_app, log_level="critical")
    protocol = cls(config=config, server_state=server_state, app_state={}, _loop=loop)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_the_callbacks_and_members_the_protocol_builds_on_exist() -> None:
    for name in (
        "connection_made",
        "connection_lost",
        "data_received",
        "send_400_response",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_body",
        "on_message_complete",
    ):
        assert callable(getattr(HttpToolsProtocol, name)), name
    for status, phrase in [(400, b"Bad Request"), (408, b"Request Timeout")]:
        assert STATUS_LINE[status] == b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    assert STATUS_LINE[414].startswith(b"HTTP/1.1 414 ")
    assert STATUS_LINE[431].startswith(b"HTTP/1.1 431 ")


def test_an_error_raised_in_a_parser_callback_is_answered_by_send_400_response(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """HeadLimitedHttpToolsProtocol._check raises from on_url/on_header to stop the
    parser, and answers the refusal from send_400_response."""
    answered: list[str] = []

    class Refusing(HttpToolsProtocol):
        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() == b"x-refuse":
                raise ValueError("refused in a callback")
            super().on_header(name, value)

        def send_400_response(self, msg: str) -> None:
            answered.append(msg)
            super().send_400_response(msg)

    protocol, transport = _connect(Refusing, loop)
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: h\r\nX-Refuse: 1\r\n\r\n")
    assert len(answered) == 1
    assert transport.written.startswith(STATUS_LINE[400])
    assert transport.closed
    assert protocol.cycle is None  # the request never started

    twin, twin_transport = _connect(Refusing, loop)
    twin.data_received(b"GET /a HTTP/1.1\r\nHost: h\r\nX-Fine: 1\r\n\r\n")
    assert len(answered) == 1
    assert not twin_transport.written
    assert not twin_transport.closed
    assert twin.cycle is not None
    assert not twin.cycle.response_complete


def test_url_is_the_raw_target_and_the_cycle_holds_the_scope_dict(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """RawTargetHttpToolsProtocol puts ``url`` back into the scope after uvicorn made
    the cycle: that works only while the cycle holds the very same dict."""
    protocol, _ = _connect(RawTargetHttpToolsProtocol, loop)
    assert protocol.cycle is None  # no request yet: a refusal may be written
    target = b"http://user:pw@other.example/x/../y?q=1#frag"
    protocol.data_received(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert protocol.url == target
    cycle = protocol.cycle
    assert cycle is not None
    assert cycle.scope is protocol.scope
    assert cycle.scope["raw_path"] == b"http://user:pw@other.example/x/../y"
    assert cycle.scope["query_string"] == b"q=1#frag"
    assert not cycle.response_complete  # a response in flight: no refusal is written


def test_a_refusal_is_written_with_the_servers_default_headers(
    loop: asyncio.AbstractEventLoop,
) -> None:
    protocol, transport = _connect(
        HeadLimitedHttpToolsProtocol, loop, default_headers=[(b"server", b"uvicorn")]
    )
    limit = HeadLimitedHttpToolsProtocol.limits.max_request_line_bytes
    protocol.data_received(b"GET /" + b"a" * limit + b" HTTP/1.1\r\n")
    head, _, body = bytes(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(STATUS_LINE[414])
    assert b"\r\nserver: uvicorn\r\n" in head
    assert json.loads(body)["reason"] == "request.line_too_long"
    assert transport.eof_written
    assert protocol.cycle is None

    twin, twin_transport = _connect(HeadLimitedHttpToolsProtocol, loop)
    twin.data_received(b"GET /" + b"a" * (limit - 20) + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert not twin_transport.written
    assert twin.cycle is not None
