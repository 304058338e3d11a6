"""The HTTP/1.1 protocol every zerolane listener is served with: uvicorn's httptools
parser, holding request heads to the listener's limits, with the request target
handed on exactly as the client sent it.

Every protocol here holds a request head to the listener's ``[http]`` limits
(:mod:`zerolane.gateway.http.header_limits`): its bytes are counted before the
parser buffers them; a head over a limit is answered 414 or 431, one that takes
longer than ``header_timeout_seconds`` 408, in JSON (``{"error", "reason"}``), and
the connection is closed: the app never sees the request. :func:`with_limits` makes
a protocol class with a listener's limits for ``uvicorn.Config(http=...)``.

What this relies on in uvicorn's private ``HttpToolsProtocol``, beyond the parser
callbacks it implements: ``data_received`` feeds the parser and answers an error it
raises (one raised in a callback too) with ``send_400_response``; ``url`` is the raw
target; ``cycle`` is the request being answered and holds the very ``scope`` dict;
``server_state.default_headers`` and ``STATUS_LINE``. uvicorn offers no public hook
for any of it, so pyproject.toml pins the range this was written against (0.54) and
``tests/gateway/test_protocol.py`` drives each of these on a fake transport: an
upgrade that changes one fails a test, not a listener
(``tests/gateway/test_header_limits.py`` has the end-to-end behaviour).

uvicorn's httptools protocol parses the request target and keeps only its path: an
absolute-form target (``GET http://other-host/x``) or one with a ``#fragment`` would
reach the gateway looking like a plain path, and be decided as one. The gateway
decides on exactly the target it is given, so :class:`RawTargetHttpToolsProtocol`
puts the raw target back (split at the first ``?`` as uvicorn's h11 protocol does);
the gateway's path checks then refuse any target that is not a plain origin-form
path.

The trailers of a chunked body (headers after its last chunk) are buffered whole by
httptools before it reports them, like a head's headers: the bytes of reads that fall
inside a chunk's framing (after a chunk header, before its data, its end or the
message's end) are counted, and past ``max_headers_bytes`` refused as 431 the same
way, so a trailer that never ends cannot grow in memory.

Served over TLS, the TLS protocols here also fill the ASGI TLS extension
(``scope["extensions"]["tls"]``, spec version 0.2) with the client certificate the
handshake verified, which uvicorn does not do itself: ``client_cert_chain`` holds the
leaf as PEM (Python's ``ssl`` exposes only the leaf before 3.13); the other keys are
None. A server that fills the extension itself is left alone.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from zerolane.gateway.edge.http import error_body
from zerolane.gateway.http.header_limits import (
    HEADER_TIMEOUT,
    HEADERS_TOO_LARGE,
    HeadCount,
    HeadMeter,
    HeadRefused,
)
from zerolane.settings.listener import HttpLimits

#: how long a refused connection is still read (and what arrives dropped) before it closes
LINGER_SECONDS = 1.0


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, holding each request head to :attr:`limits`.

    A head is counted from the connection's opening, and from the first byte after
    the previous request, until the parser reports its headers complete. A refusal
    is written only when no response is in flight on the connection (a request
    pipelined behind one being answered just has its connection closed).
    """

    limits: ClassVar[HttpLimits] = HttpLimits()

    _meter: HeadMeter
    _count: HeadCount
    _in_head = True  # the next bytes belong to a request head
    _head_started = False  # a byte of the current head arrived
    _head_timer: asyncio.TimerHandle | None = None
    _refusal: HeadRefused | None = None
    _framing = False  # inside a chunk's framing: after its header, before data or end
    _chunk_events = 0  # chunk headers, data and ends the parser reported so far
    _framing_bytes = 0  # bytes of reads wholly inside the current framing (trailers)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._meter = HeadMeter(self.limits)
        self._count = HeadCount(self.limits)
        self._arm_head_timer()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: the connection is closing
        if self._in_head:
            self._head_started = True
            self._arm_head_timer()
            try:
                self._meter.feed(data)
            except HeadRefused as refusal:
                self._refuse(refusal)
                return
            super().data_received(data)
            return
        framing, events = self._framing, self._chunk_events
        super().data_received(data)
        if framing and self._framing and events == self._chunk_events:
            self._framing_bytes += len(data)  # a read that was trailers (or framing) only
            if self._framing_bytes > self.limits.max_headers_bytes and self._refusal is None:
                limit = self.limits.max_headers_bytes
                self._refuse(
                    HeadRefused(
                        431, HEADERS_TOO_LARGE, f"the trailers are larger than {limit} bytes"
                    )
                )

    def on_chunk_header(self) -> None:
        self._framing, self._framing_bytes = True, 0
        self._chunk_events += 1

    def on_body(self, body: bytes) -> None:
        self._framing = False
        self._chunk_events += 1
        super().on_body(body)

    def on_chunk_complete(self) -> None:
        self._framing = False
        self._chunk_events += 1

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._count.reset()
        self._in_head = self._head_started = True
        self._arm_head_timer()  # pipelined: this head began inside an earlier read

    def on_url(self, url: bytes) -> None:
        self._check(self._count.target, url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._check(self._count.header, name, value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = self._head_started = False
        self._cancel_head_timer()
        self._meter.reset()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._framing = False
        super().on_message_complete()
        self._in_head = True  # the next byte begins the next request's head
        self._meter.reset()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers an error raised while parsing with a 400: a limit a parser
        # callback raised (see _check) is answered as that limit's refusal instead
        if self._refusal is not None:
            self._write_refusal(self._refusal)
        else:
            super().send_400_response(msg)

    def _check(self, check: Callable[..., None], *parts: bytes) -> None:
        """Run a :class:`HeadCount` check in a parser callback: a refusal is kept and
        raised on, which stops the parser (uvicorn then calls send_400_response)."""
        try:
            check(*parts)
        except HeadRefused as refusal:
            self._refusal = refusal
            self._cancel_head_timer()
            raise

    def _refuse(self, refusal: HeadRefused) -> None:
        self._refusal = refusal
        self._cancel_head_timer()
        self._write_refusal(refusal)

    def _write_refusal(self, refusal: HeadRefused) -> None:
        """Answer ``refusal`` (unless a response is in flight) and close."""
        cycle = self.cycle
        if not self.transport.is_closing() and (cycle is None or cycle.response_complete):
            fields = error_body(refusal.status, refusal.reason, refusal.message)
            body = json.dumps(fields).encode()
            head = [STATUS_LINE[refusal.status]]
            for name, value in self.server_state.default_headers:
                head.extend([name, b": ", value, b"\r\n"])
            head.append(
                b"content-type: application/json\r\ncache-control: no-store\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            )
            self.transport.write(b"".join(head) + body)
            if self.transport.can_write_eof():
                # closing at once with the client's bytes unread would reset the
                # connection, and the client could lose the answer: end our side, drop
                # what still arrives for a moment, then close
                self.transport.write_eof()
                self.loop.call_later(LINGER_SECONDS, self.transport.close)
                return
        self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout_seconds, self._head_timed_out
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refusal is not None or not self._in_head:
            return
        seconds = f"{self.limits.header_timeout_seconds:g}"
        refusal = HeadRefused(
            408, HEADER_TIMEOUT, f"the request's headers took longer than {seconds} s"
        )
        if self._head_started:
            self._refuse(refusal)
        else:  # not a byte sent: nothing to answer, just close
            self._refusal = refusal
            self.transport.close()


P = TypeVar("P", bound=HeadLimitedHttpToolsProtocol)


def with_limits(protocol: type[P], limits: HttpLimits) -> type[P]:
    """``protocol`` holding request heads to ``limits`` (uvicorn makes one protocol
    object per connection from the class it is given)."""
    return cast(type[P], type(protocol.__name__, (protocol,), {"limits": limits}))


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection; None when it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


class TlsScopeHttpToolsProtocol(HeadLimitedHttpToolsProtocol):
    """The head-limited protocol, adding the ASGI TLS extension to every request."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)  # one handshake per connection

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            extensions = scope.setdefault("extensions", {})
            extensions.setdefault("tls", dict(self._tls))


class RawTargetHttpToolsProtocol(TlsScopeHttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # the ASGI cycle holds this very dict and only starts on the loop's next turn
        raw_path, _, query = self.url.partition(b"?")
        self.scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        self.scope["query_string"] = query
