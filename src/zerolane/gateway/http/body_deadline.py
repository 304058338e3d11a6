"""The deadlines of one request body, read before the decision or streamed upstream.

A client must send its whole body within ``[limits] body_timeout`` seconds of the
first read (chunked bodies and bodies too large to read first included), and never
leave ``[limits] body_idle_timeout`` seconds between two parts of it: a client that
trickles a chunked body in (a byte every few seconds) or stalls mid-way through a large
one holds a connection and a worker no longer than that. Past either,
:class:`BodyTimedOut` (answered 408 ``request.body_timeout``, :data:`BODY_TIMEOUT`).
A part already waiting is taken even at the deadline: only waiting for one is bounded.
"""

from __future__ import annotations

import asyncio

from zerolane.gateway.http.responses import Message, Receive

#: the reason id of a body that did not arrive within its deadlines
BODY_TIMEOUT = "request.body_timeout"


class BodyTimedOut(Exception):
    """The body did not arrive whole within its deadline, or paused too long."""


class BodyDeadline:
    """``receive`` within the deadlines of one body: ``total`` seconds for all of it
    from the first read, ``idle`` seconds at most for each part."""

    def __init__(self, total: float, idle: float) -> None:
        self._total = total
        self._idle = idle
        self._ends: float | None = None

    async def receive(self, receive: Receive) -> Message:
        """The next message of ``receive``; :class:`BodyTimedOut` past a deadline."""
        now = asyncio.get_running_loop().time()
        if self._ends is None:
            self._ends = now + self._total
        left = self._ends - now
        try:
            async with asyncio.timeout(max(0.0, min(self._idle, left))):
                return await receive()
        except TimeoutError:
            if left <= self._idle:
                said = f"the request's body took longer than {self._total:g} s"
            else:
                said = f"no part of the request's body arrived for {self._idle:g} s"
            raise BodyTimedOut(said) from None
