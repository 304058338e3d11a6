"""Forwarding an allowed request upstream over one shared keep-alive aiohttp session.

Bodies stream both ways in chunks, so memory stays flat whatever their size; each
direction has a size limit. A request body over the limit is refused with 413 (before
forwarding when ``Content-Length`` says so, else as soon as the stream passes it); a
response over the limit is refused with 502 when announced, else cut off by closing
the connection. The session keeps no cookies and decompresses nothing.

A request body streamed upstream (chunked, or larger than :data:`SMALL_BODY`) keeps the
deadlines of a streamed body (:mod:`zerolane.gateway.http.body_deadline`: ``[limits]
body_stream_timeout`` for all of it, ``body_idle_timeout`` between two parts): past one, the
upstream request is cut off (its connection closed, so the upstream never sees a
complete body), the client is answered 408 ``request.body_timeout`` when no answer has
started (else its connection is cut too), and the refusal is reported through
:attr:`Outgoing.refused` (the app audits it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from zerolane.gateway.access_log import AccessNote
from zerolane.gateway.config import Limits
from zerolane.gateway.http.body_deadline import BODY_TIMEOUT, BodyDeadline, BodyTimedOut
from zerolane.gateway.http.metrics import GatewayMetrics
from zerolane.gateway.http.responses import Receive, Send, send_error
from zerolane.gateway.normalize import response_headers

logger = logging.getLogger("zerolane.gateway")

#: bodies up to this size (declared by Content-Length) are read before forwarding
SMALL_BODY = 64 * 1024
#: responses larger than this (or of unknown length) watch for the client leaving
WATCH_AFTER = 1 << 20
#: headers aiohttp would otherwise add on its own
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class UpstreamAborted(Exception):
    """The upstream failed after the response started: the connection is cut off."""


class _RequestTooLarge(Exception):
    pass


class _ResponseTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


@dataclass(slots=True)
class _BodyState:
    received: int = 0
    done: bool = False
    too_large: bool = False
    timed_out: str | None = None  # a deadline of the body passed: what it says
    gone: bool = False
    forwarding: bool = False  # the upstream request has started (a streamed body)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What goes upstream: method, absolute URL (already validated), headers."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    #: the declared body length, ``None`` for chunked, 0 for no body
    length: int | None
    upstream: str
    decision_id: str
    #: the request's access line (its reason, when forwarding fails)
    note: AccessNote | None = None
    #: told of a refusal of the client's request made while forwarding it (its body
    #: too slow: the reason id and 408, answered, or the connection cut when an early
    #: answer of the upstream had started), so that it is audited
    refused: Callable[[str, int], None] | None = None


def _client_left(state: _BodyState, out: Outgoing) -> None:
    """Log a client that hung up mid-upload: an ordinary event, so no traceback.

    A body read before forwarding never went upstream; a streamed one did, and the
    upstream request is cut off with it (aiohttp closes that connection), so the
    upstream never sees a complete body. The decision, already audited, stands for
    the call it spent.
    """
    logger.info(
        "client left before its request body was complete: %s (decision %s)",
        "the upstream request was cut off" if state.forwarding else "nothing forwarded",
        out.decision_id,
    )


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (or the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Forwarder:
    def __init__(self, limits: Limits, metrics: GatewayMetrics) -> None:
        self._limits = limits
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=limits.upstream_timeout, sock_read=limits.upstream_timeout
        )

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=self._limits.upstream_connections, ttl_dns_cache=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                timeout=self._timeout,
                requote_redirect_url=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def forward(self, out: Outgoing, receive: Receive, send: Send) -> None:
        """Send ``out`` upstream with the client's body; stream the answer back."""
        await self.start()
        assert self._session is not None
        state = _BodyState()
        started = False
        try:
            data = await self._body(out.length, receive, state)
            state.forwarding = True
            async with self._session.request(
                out.method,
                URL(out.url, encoded=True),
                headers=out.headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers=SKIP_AUTO_HEADERS,
            ) as response:
                declared = response.content_length
                if declared is not None and declared > self._limits.max_response_body:
                    raise _ResponseTooLarge
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": response_headers(response.raw_headers),
                    }
                )
                started = True
                watch = state.done and (declared is None or declared > WATCH_AFTER)
                await self._stream(response, receive, send, watch, state)
        except Exception as err:
            if state.timed_out is not None and out.refused is not None:
                out.refused(BODY_TIMEOUT, 408)
            if not state.gone:
                if started:
                    self._metrics.upstream_errors.labels(out.upstream, "aborted").inc()
                    raise UpstreamAborted(f"{out.upstream}: response cut off") from err
                await self._fail(err, state, send, out)
                return
        if state.gone:  # the client hung up mid-upload: nobody is left to answer
            _client_left(state, out)

    async def _body(
        self, length: int | None, receive: Receive, state: _BodyState
    ) -> bytes | AsyncIterator[bytes] | None:
        if length == 0:
            state.done = True
            return None
        if length is not None and length <= SMALL_BODY:
            chunks = [chunk async for chunk in self._chunks(receive, state)]
            return b"".join(chunks)
        return self._chunks(receive, state)

    async def _chunks(self, receive: Receive, state: _BodyState) -> AsyncIterator[bytes]:
        limit = self._limits.max_request_body
        deadline = BodyDeadline(self._limits.body_stream_timeout, self._limits.body_idle_timeout)
        while True:
            try:
                message = await deadline.receive(receive)
            except BodyTimedOut as err:
                state.timed_out = str(err)
                raise
            if message["type"] != "http.request":
                state.gone = True
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            state.received += len(chunk)
            if state.received > limit:
                state.too_large = True
                raise _RequestTooLarge
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                state.done = True
                return

    async def _stream(
        self,
        response: aiohttp.ClientResponse,
        receive: Receive,
        send: Send,
        watch: bool,
        state: _BodyState,
    ) -> None:
        limit = self._limits.max_response_body
        sent = 0
        gone = asyncio.ensure_future(_disconnected(receive)) if watch else None
        try:
            async for chunk in response.content.iter_any():
                sent += len(chunk)
                if sent > limit:
                    raise _ResponseTooLarge
                if state.gone or (gone is not None and gone.done()):
                    return  # the client left: stop reading the upstream
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if gone is not None:
                gone.cancel()

    async def _fail(self, err: Exception, state: _BodyState, send: Send, out: Outgoing) -> None:
        if state.timed_out is not None:  # the client's fault: no upstream error
            if out.note is not None:
                out.note.reason = BODY_TIMEOUT
            said = state.timed_out
            await send_error(send, 408, BODY_TIMEOUT, out.decision_id, message=said, close=True)
            return
        if state.too_large:
            if out.note is not None:
                out.note.reason = "request.too_large"
            await send_error(send, 413, "request.too_large", out.decision_id, close=True)
            return
        if isinstance(err, _ResponseTooLarge):
            kind, status, reason = "too_large", 502, "upstream.too_large"
        elif isinstance(err, TimeoutError):
            kind, status, reason = "timeout", 504, "upstream.timeout"
        else:
            kind, status, reason = "error", 502, "upstream.error"
            if not isinstance(err, aiohttp.ClientError):
                logger.warning("forwarding to %s failed: %s", out.upstream, type(err).__name__)
        self._metrics.upstream_errors.labels(out.upstream, kind).inc()
        if out.note is not None:
            out.note.reason = reason
        await send_error(send, status, reason, out.decision_id, close=not state.done)
