"""The gateway's own responses over raw ASGI: bytes as they are, and refusals as the
enforcement edge renders them (:mod:`zerolane.gateway.edge.http`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from zerolane.gateway.edge.http import refusal, send_answer

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: what a refusal the gateway makes of its own, before or after deciding, says
MESSAGES = {
    400: "the request is malformed or ambiguous",
    401: "a valid task token and its proof (DPoP, or the client certificate) are required",
    403: "the request is not allowed for this task",
    408: "the request's body did not arrive in time",
    413: "the request body is too large",
    502: "the upstream failed",
    503: "the decision could not be made or recorded; refused",
    504: "the upstream did not answer in time",
}


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(
    send: Send,
    status: int,
    reason: str,
    decision_id: str | None = None,
    *,
    message: str | None = None,
    close: bool = False,
) -> None:
    """The edge's refusal for ``status`` and ``reason`` (``message``: what it says,
    else the status's own)."""
    text = message or MESSAGES.get(status, "refused")
    await send_answer(send, refusal(status, reason, text, decision_id=decision_id), close=close)
