"""The HTTP edge: read a request's credentials, render every outcome as an HTTP answer.

Every listener answers through here (the HTTP gateway, forward-auth, the MCP gateway's
HTTP layer, the control plane's routes), so one refusal is one answer everywhere:

status
    from the refusal's kind (:class:`~zerolane.errors.Refusal`): invalid 400,
    unauthenticated 401, forbidden 403, not found 404, conflict 409, unavailable 503.
    A decision's deny is 400, 401, 403 or 503 (:func:`decision_status`). Refusals a
    listener makes of its own (413, 414, 431, 502, 504) keep their status.
body
    ``{"error", "reason", "message", "reasons", "decision_id"}`` (:func:`error_body`):
    ``error`` a short code (the RFC 6750 / RFC 9449 one of a credential refusal,
    ``invalid_request``, ``forbidden``, ``unavailable``...), ``reason`` the stable
    reason id, ``message`` for people, ``reasons`` every reason of a decision (else
    ``[reason]``), ``decision_id`` the audited decision's id (null when none was made).
``WWW-Authenticate``
    on every 401, and on the 400 of a request that sends its credentials more than once
    (:func:`www_authenticate`): no error code when no credential was sent (RFC 6750
    section 3.1); ``invalid_request`` for repeated credentials; ``invalid_dpop_proof``
    for a proof's refusal (RFC 9449 section 7.1); ``invalid_token`` for the rest, as a
    ``Bearer`` challenge for a certificate-bound token's (``mtls.*``, RFC 8705). The
    description is the reason id; ``algs`` lists the DPoP algorithms accepted. The
    control plane's own credentials (admin, enforcement point) are ``Bearer realm``.
``X-Zerolane-*``
    a refusal names its reason (``X-Zerolane-Reason``) and its decision
    (``X-Zerolane-Decision``) when one was made; a deny that needs a human approval
    names it (``X-Zerolane-Approval``, and ``approval_id`` and ``approval_url``, the
    control plane's path to poll, in the body); an allow names the task and the
    decision (:func:`allow_headers`: forward-auth's answer, the HTTP gateway's
    forwarded request), and a shadow allow the reasons enforcement would have denied it
    with (``X-Zerolane-Shadow``): shadow mode is one more outcome rendered here.

Credentials (:func:`credentials_of`): one ``Authorization`` header, ``DPoP <task
token>`` (or ``Bearer <token>`` with a client certificate, RFC 8705), and at most one
``DPoP`` proof. A request with more than one of either is malformed: 400
``auth.multiple`` / ``dpop.multiple``, ``invalid_request`` (RFC 6750 section 3.1: a
request that repeats a parameter or uses more than one method to send a token).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zerolane.decision import Decision
from zerolane.errors import InvalidInput, Refusal, Unauthenticated, ZerolaneError
from zerolane.tokens.algorithms import DPOP_ALGS_HEADER
from zerolane.tokens.jws import unverified_claims

if TYPE_CHECKING:  # imported by Answer.response: the in-process guard needs no web framework
    from starlette.responses import Response

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: the scheme of a sender-constrained token (RFC 9449 section 7.1)
SCHEME = "dpop"
#: RFC 8705 tokens travel as ``Bearer`` (RFC 6750); accepted only with a client certificate
BEARER = "bearer"
TASK_HEADER = "X-Zerolane-Task"
DECISION_HEADER = "X-Zerolane-Decision"
#: on a shadow allow: the reasons enforcement would have denied it with
SHADOW_HEADER = "X-Zerolane-Shadow"
REASON_HEADER = "X-Zerolane-Reason"
#: the approval a deny ``approval.required`` (``.denied``, ``.used``) is about
APPROVAL_HEADER = "X-Zerolane-Approval"
#: where a task's holder reads its approval (on the control plane): poll it, then retry
APPROVAL_PATH = "/v1/approvals/{}"

#: the status of each kind of refusal
STATUS: Mapping[Refusal, int] = {
    Refusal.INVALID: 400,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.FORBIDDEN: 403,
    Refusal.NOT_FOUND: 404,
    Refusal.CONFLICT: 409,
    Refusal.UNAVAILABLE: 503,
}
#: the kinds a decision's deny may be rendered as (any other: forbidden)
_DENY_STATUS: Mapping[Refusal, int] = {
    Refusal.INVALID: 400,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.FORBIDDEN: 403,
    Refusal.UNAVAILABLE: 503,
}
#: credentials sent more than once (RFC 6750 section 3.1 ``invalid_request``)
REPEATED = frozenset({"auth.multiple", "dpop.multiple"})
#: the body's ``error`` code of a status, when no credential code applies
_ERRORS: Mapping[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    413: "too_large",
    414: "too_large",
    431: "too_large",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}
#: the message of a decision's deny (its reasons say why)
_DENIED: Mapping[int, str] = {
    400: "the request cannot be decided as it was sent",
    401: "the task token or its proof (DPoP, or the client certificate) was refused",
    403: "the request is not allowed for this task",
    503: "the decision could not be made or recorded; refused",
}
#: the message of a deny that needs (or had) a human approval
_APPROVAL = "the request needs a human approval: poll approval_url, then send it again"
#: refusals of the control plane's own Bearer credentials (``zla_...``, ``zlep_...``)
_CONTROL_PLANE_CREDENTIALS = ("admin.", "enforcement_point.")
_UNQUOTABLE = re.compile(r'["\\\x00-\x1f\x7f-\uffff]')
_MAX_DESCRIPTION = 200


def status_of(kind: Refusal) -> int:
    """The HTTP status of a refusal of ``kind``."""
    return STATUS[kind]


def decision_status(decision: Decision) -> int:
    """What an enforcement point answers for ``decision``: 200, or 400 (a request
    that cannot be decided as sent), 401, 403, 503."""
    if decision.allowed:
        return 200
    return _DENY_STATUS.get(decision.refusal or Refusal.FORBIDDEN, 403)


def refusal_of_status(status: int) -> Refusal | None:
    """The kind of a deny from the status ``POST /v1/decide`` names (None: 200, allow);
    anything unexpected is a plain deny."""
    if status == 200:
        return None
    kinds = {400: Refusal.INVALID, 401: Refusal.UNAUTHENTICATED, 503: Refusal.UNAVAILABLE}
    return kinds.get(status, Refusal.FORBIDDEN)


def bearer_of(authorization: str | None) -> str:
    """The token of an ``Authorization: DPoP <token>`` header; ``auth.missing`` without
    one, ``auth.scheme`` for another scheme."""
    if not authorization:
        raise Unauthenticated("auth.missing", "send 'Authorization: DPoP <token>' and a DPoP proof")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != SCHEME:
        raise Unauthenticated(
            "auth.scheme", "tokens here are sender-constrained: use the DPoP scheme, not Bearer"
        )
    token = token.strip()
    if not token:
        raise Unauthenticated("auth.missing", "the Authorization header carries no token")
    return token


def token_of(authorization: str | None, *, client_cert: bytes | None) -> str:
    """The token of ``Authorization: DPoP <token>``, or of ``Bearer <token>`` when the
    request carries a client certificate (a certificate-bound token, RFC 8705) or the
    token says it is unbound (``"bearer": true``: a standard MCP client's, which the
    authenticator accepts only where the deployment allows bearer clients).

    The scheme grants nothing: what the token is bound to decides what must come with it.
    A key-bound token sent as ``Bearer`` without a certificate stays ``auth.scheme``
    (RFC 9449 section 7.2: no downgrade to a bearer token).
    """
    if authorization:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() == BEARER and token and (client_cert or _says_unbound(token)):
            return token
    return bearer_of(authorization)


_MAX_PEEK = 16 * 1024


def _says_unbound(token: str) -> bool:
    """Whether a compact JWS's (unverified) claims say ``"bearer": true``. Only which
    scheme to read it under hangs on this: the authenticator verifies everything."""
    if len(token) > _MAX_PEEK:
        return False
    claims = unverified_claims(token)
    return claims is not None and claims.get("bearer") is True


def credentials_of(
    headers: Iterable[tuple[bytes, bytes]], *, client_cert: bytes | None
) -> tuple[str, str | None]:
    """The task token and the DPoP proof (None: no ``DPoP`` header) of a request's raw
    (ASGI, lowercase-named) headers; ``client_cert``: the request's verified client
    certificate (DER), which lets a ``Bearer`` token through to be checked against it.

    Raises :class:`~zerolane.errors.InvalidInput` ``auth.multiple`` or
    ``dpop.multiple`` for a repeated header, and
    :class:`~zerolane.errors.Unauthenticated` (``auth.missing``, ``auth.scheme``)
    when there is no usable token."""
    authorization: bytes | None = None
    proof: bytes | None = None
    for name, value in headers:
        if name == b"authorization":
            if authorization is not None:
                raise InvalidInput("auth.multiple", "send exactly one Authorization header")
            authorization = value
        elif name == b"dpop":
            if proof is not None:
                raise InvalidInput("dpop.multiple", "send exactly one DPoP proof")
            proof = value
    token = token_of(
        authorization.decode("latin-1") if authorization is not None else None,
        client_cert=client_cert,
    )
    return token, proof.decode("latin-1") if proof is not None else None


def proof_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The DPoP proof of a request whose token comes otherwise (the token endpoint's,
    in its form); :class:`~zerolane.errors.InvalidInput` ``dpop.multiple`` for two."""
    proofs = [value for name, value in headers if name == b"dpop"]
    if len(proofs) > 1:
        raise InvalidInput("dpop.multiple", "send exactly one DPoP proof")
    return proofs[0].decode("latin-1") if proofs else None


def one_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of header ``name`` (lowercase) sent at most once (None: not sent);
    :class:`~zerolane.errors.InvalidInput` ``auth.multiple`` for a repeated
    ``Authorization``, ``request.header_repeated`` for another."""
    values = [value for key, value in headers if key == name]
    if len(values) > 1:
        reason = "auth.multiple" if name == b"authorization" else "request.header_repeated"
        raise InvalidInput(reason, f"send exactly one {name.decode('latin-1')} header")
    return values[0].decode("latin-1") if values else None


def bearer_credential(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header (None without one):
    the admin's (``zla_...``) and an enforcement point's (``zlep_...``)."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def challenge_error(reason: str) -> str | None:
    """The RFC 6750 / RFC 9449 error code of a credential refusal (None: no credential
    was sent, ``auth.missing``)."""
    if reason == "auth.missing":
        return None
    if reason in REPEATED:
        return "invalid_request"
    if reason.startswith("dpop."):
        return "invalid_dpop_proof"
    return "invalid_token"


def _quoted(text: str) -> str:
    return '"' + _UNQUOTABLE.sub("_", text)[:_MAX_DESCRIPTION] + '"'


#: what a header value may hold as it is: visible ASCII and spaces
_UNSENDABLE = re.compile(r"[^\x20-\x7e]")


def header_value(text: str) -> str:
    """``text`` as a header value can carry it: a reason may be a policy's ``@id``,
    which Cedar lets hold any character, and a header is Latin-1 with no line breaks
    (an answer that could not be encoded would be a 500 instead of the refusal)."""
    return _UNSENDABLE.sub("_", text)[:_MAX_DESCRIPTION]


def www_authenticate(reason: str, *, resource_metadata: str | None = None) -> list[str]:
    """The ``WWW-Authenticate`` values of a credential refusal for ``reason``.

    ``resource_metadata`` (the MCP gateway, RFC 9728 section 5.1): the URL of the
    protected resource metadata, named in a ``Bearer`` challenge (what MCP clients look
    for) and in the ``DPoP`` one. A certificate-bound token's refusal (``mtls.*``) is a
    ``Bearer`` token's: the error goes on the ``Bearer`` challenge only.
    """
    if reason.startswith(_CONTROL_PLANE_CREDENTIALS):
        return ['Bearer realm="zerolane"']
    error = challenge_error(reason)
    errors = (
        [f"error={_quoted(error)}", f"error_description={_quoted(reason)}"]
        if error is not None
        else []
    )
    metadata = [f"resource_metadata={_quoted(resource_metadata)}"] if resource_metadata else []
    algs = [f"algs={_quoted(DPOP_ALGS_HEADER)}"]
    mtls = reason.startswith("mtls.")
    values: list[str] = []
    if mtls or metadata:
        values.append("Bearer " + ", ".join(errors + metadata))
    if not mtls or metadata:
        values.append("DPoP " + ", ".join((errors if not mtls else []) + algs + metadata))
    return values


def challenged(status: int, reason: str) -> bool:
    """Whether an answer of ``status`` for ``reason`` carries ``WWW-Authenticate``."""
    return status == 401 or (status == 400 and reason in REPEATED)


def error_body(
    status: int,
    reason: str,
    message: str,
    *,
    reasons: Sequence[str] = (),
    decision_id: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The error object of every refusal (see the module doc); ``error``: a code of the
    listener's own protocol instead (the token endpoint's RFC 6749 codes)."""
    if error is None and status == 401:
        error = challenge_error(reason) or "unauthorized"
    elif error is None:
        error = _ERRORS.get(status, "refused")
    return {
        "error": error,
        "reason": reason,
        "message": message,
        "reasons": list(reasons) or [reason],
        "decision_id": decision_id,
    }


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: ``status``, ``headers`` (repeatable names) and a JSON ``body``."""

    status: int
    body: Mapping[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()

    def response(self) -> Response:
        """As a Starlette response (for the listeners built on Starlette)."""
        from starlette.responses import Response  # the server extra's, not the SDK's

        response = Response(self.encoded(), self.status, media_type="application/json")
        response.raw_headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers
        )
        return response


def refusal(
    status: int,
    reason: str,
    message: str,
    *,
    reasons: Sequence[str] = (),
    decision_id: str | None = None,
    resource_metadata: str | None = None,
    error: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Answer:
    """The answer refusing a request with ``status`` for ``reason``: the error body,
    ``Cache-Control: no-store``, the ``X-Zerolane-*`` headers, and the challenge when
    one is due. ``extra``: more members of the body (a validation error's details)."""
    headers = [("Cache-Control", "no-store"), (REASON_HEADER, header_value(reason))]
    if decision_id:
        headers.append((DECISION_HEADER, decision_id))
    if challenged(status, reason):
        values = www_authenticate(reason, resource_metadata=resource_metadata)
        headers.extend(("WWW-Authenticate", value) for value in values)
    body = error_body(
        status, reason, message, reasons=reasons, decision_id=decision_id, error=error
    )
    return Answer(status, {**body, **(extra or {})}, headers)


def error_refusal(
    err: ZerolaneError,
    *,
    decision_id: str | None = None,
    resource_metadata: str | None = None,
) -> Answer:
    """The answer refusing a request with a typed error (its kind gives the status)."""
    return refusal(
        status_of(err.kind),
        err.reason,
        err.message,
        decision_id=decision_id,
        resource_metadata=resource_metadata,
    )


def denial(decision: Decision, *, resource_metadata: str | None = None) -> Answer:
    """The answer of a decision's deny: 400, 401, 403 or 503 with every reason."""
    status = decision_status(decision)
    reasons = decision.reasons or ("decision.deny",)
    approval = decision.approval_id
    answer = refusal(
        status,
        reasons[0],
        _APPROVAL if approval else _DENIED[status],
        reasons=reasons,
        decision_id=decision.decision_id or None,
        resource_metadata=resource_metadata,
        extra={"approval_id": approval, "approval_url": APPROVAL_PATH.format(approval)}
        if approval
        else None,
    )
    if approval:
        answer.headers.append((APPROVAL_HEADER, header_value(approval)))
    return answer


def allow_headers(decision: Decision) -> list[tuple[str, str]]:
    """What names an allowed request's task and decision (``X-Zerolane-Task``,
    ``X-Zerolane-Decision``) and, on a shadow allow, what enforcement would have
    denied it for (``X-Zerolane-Shadow``: its reasons, comma-separated)."""
    headers = [(TASK_HEADER, decision.task_id or ""), (DECISION_HEADER, decision.decision_id)]
    if decision.shadow is not None:
        headers.append((SHADOW_HEADER, header_value(",".join(decision.shadow.reasons))))
    return headers


async def send_answer(send: Send, answer: Answer, *, close: bool = False) -> None:
    """Send ``answer`` on a raw ASGI connection (``close``: with ``Connection: close``,
    when the request's body is left unread)."""
    body = answer.encoded()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers
    )
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
