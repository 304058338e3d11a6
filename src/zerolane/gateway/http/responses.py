"""The gateway's own responses: JSON errors, and 401s per RFC 6750 / RFC 9449."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ALGS = "ES256 EdDSA"
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
MESSAGES = {
    400: "the request is malformed or ambiguous",
    401: "a valid task token and its proof (DPoP, or the client certificate) are required",
    403: "the request is not allowed for this task",
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
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """``{"error", "reason", "decision_id"}`` with ``status``."""
    body = {"error": MESSAGES.get(status, "refused"), "reason": reason, "decision_id": decision_id}
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if close:
        headers.append((b"connection", b"close"))
    headers.extend(extra or ())
    await send_bytes(send, status, json.dumps(body).encode(), headers)


def www_authenticate(reason: str, *, credentials_sent: bool) -> tuple[bytes, bytes]:
    """The challenge for a 401: no error code when no usable credential was sent
    (RFC 6750 section 3.1), ``invalid_dpop_proof`` for proof problems (RFC 9449
    section 7.1), else ``invalid_token``; the description is the reason id. A refused
    certificate-bound token (``mtls.*``, RFC 8705) is challenged with ``Bearer``."""
    if credentials_sent and reason.startswith("mtls."):
        described = _UNSAFE.sub("_", reason)
        value = f'Bearer error="invalid_token", error_description="{described}"'
        return b"www-authenticate", value.encode()
    if not credentials_sent:
        value = f'DPoP algs="{ALGS}"'
    else:
        error = "invalid_dpop_proof" if reason.startswith("dpop.") else "invalid_token"
        described = _UNSAFE.sub("_", reason)
        value = f'DPoP error="{error}", error_description="{described}", algs="{ALGS}"'
    return b"www-authenticate", value.encode()
