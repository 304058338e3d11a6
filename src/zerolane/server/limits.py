"""ASGI middleware refusing request bodies over a size limit (413, never a 500).

Control-plane bodies are small, so the body is read (up to the limit) before the app
sees it: a declared ``Content-Length`` over the limit is refused at once, and a chunked
body is refused as soon as it passes the limit.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zerolane.gateway.access_log import record_error
from zerolane.gateway.edge.http import refusal, send_answer

MAX_BODY = 64 * 1024
logger = logging.getLogger("zerolane.server")


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    record_error(scope, "request.too_large")
    message = f"request bodies are limited to {limit} bytes"
    await send_answer(send, refusal(413, "request.too_large", message), close=True)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and not 0 <= declared <= self.limit:
            await _refuse(scope, send, self.limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client hung up: nobody to answer
                logger.info(
                    "client left before its request body was complete (%s %r): ignored",
                    scope.get("method"),
                    scope.get("path"),
                )
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _refuse(scope, send, self.limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
