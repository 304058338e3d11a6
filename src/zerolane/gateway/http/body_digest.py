"""The digest a human approval binds an HTTP request by (:mod:`zerolane.tasks.approvals`):
its method, path and query as received and its body
(:func:`~zerolane.decision.request_digest`).

A request without a body is bound with the digest of no bytes. A small body (a declared
``Content-Length`` up to :data:`~zerolane.gateway.http.forward.SMALL_BODY`, which the
forwarder buffers anyway) is read before the decision, its SHA-256 computed and the
same bytes replayed to the forwarder: the upstream gets exactly the bytes approved. A
chunked or larger body is streamed as before and bound by nothing: a request a policy
asks approval for is then denied ``approval.unbound`` (fail closed).

The gateway reads it only once the request's token and proof are verified, and within
``[limits] body_timeout`` seconds, no part of it more than ``body_idle_timeout`` after
the one before (:mod:`zerolane.gateway.http.body_deadline`): a client that sends its
body slower than that holds nothing longer (:class:`BodyTimedOut`; answered 408).
"""

from __future__ import annotations

from dataclasses import dataclass

from zerolane.errors import InvalidInput
from zerolane.gateway.http.body_deadline import BODY_TIMEOUT, BodyDeadline, BodyTimedOut
from zerolane.gateway.http.forward import SMALL_BODY
from zerolane.gateway.http.responses import Message, Receive
from zerolane.tasks.approvals import body_digest

__all__ = ["BODY_TIMEOUT", "EMPTY", "BodyTimedOut", "BoundBody", "bind_body"]

EMPTY = body_digest(b"")


@dataclass(frozen=True, slots=True)
class BoundBody:
    """The body's digest (None: not bound), the ``receive`` to forward it from, and its
    bytes when it was read (what an approver is shown of it, masked:
    :func:`zerolane.tasks.approval_preview.http_preview`)."""

    digest: str | None
    receive: Receive
    body: bytes | None = None


async def bind_body(
    receive: Receive,
    declared: int | None,
    has_body: bool,
    seconds: float,
    idle: float | None = None,
) -> BoundBody | None:
    """Bind the request's body (see the module doc); None when the client left before
    its body was complete. Raises ``InvalidInput`` (``request.body_length``) for a body
    longer than its ``Content-Length``, :class:`BodyTimedOut` for one not read whole
    within ``seconds``, or with a pause of more than ``idle`` seconds (None: ``seconds``)
    between two parts. A body not read here (chunked, or larger) is streamed upstream
    after the decision, within the same deadlines (:mod:`zerolane.gateway.http.forward`)."""
    if not has_body:
        return BoundBody(EMPTY, receive, b"")
    if declared is None or declared > SMALL_BODY:
        return BoundBody(None, receive)
    body = await _read(BodyDeadline(seconds, idle or seconds), receive, declared)
    if body is None:
        return None
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return BoundBody(body_digest(body), replay, body)


async def _read(deadline: BodyDeadline, receive: Receive, declared: int) -> bytes | None:
    """The whole body, at most ``declared`` bytes, within ``deadline``; None when the
    client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await deadline.receive(receive)
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > declared:
            raise InvalidInput("request.body_length", "the body is longer than its Content-Length")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
