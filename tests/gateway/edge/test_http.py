"""The HTTP edge: credentials read once, and every outcome rendered one way."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from zerolane.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Refusal,
    Unauthenticated,
    Unavailable,
    ZerolaneError,
)
from zerolane.gateway.edge.http import (
    allow_headers,
    bearer_credential,
    bearer_of,
    challenge_error,
    credentials_of,
    decision_status,
    denial,
    error_body,
    error_refusal,
    one_header,
    proof_of,
    refusal,
    refusal_of_status,
    send_answer,
    status_of,
    token_of,
    www_authenticate,
)
from zerolane.tasks.decisions import Decision

METADATA = "https://mcp.example.org/.well-known/oauth-protected-resource/mcp"
ALLOW = Decision("d1", True, (), ("task.request",), "tsk_1", None)
DENY = Decision("d2", False, ("scope.action", "scope.resource"), ("p",), "tsk_1", Refusal.FORBIDDEN)


def _headers(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in pairs]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput, 400),
        (Unauthenticated, 401),
        (Forbidden, 403),
        (NotFound, 404),
        (Conflict, 409),
        (Unavailable, 503),
    ],
)
def test_each_kind_of_error_has_its_status(error: type[ZerolaneError], status: int) -> None:
    assert status_of(error.kind) == status
    assert error_refusal(error("x.y", "why")).status == status


@pytest.mark.parametrize(
    ("refusal_kind", "status"),
    [
        (None, 200),
        (Refusal.UNAUTHENTICATED, 401),
        (Refusal.FORBIDDEN, 403),
        (Refusal.UNAVAILABLE, 503),
        (Refusal.INVALID, 400),  # a path that cannot be decided on, as everywhere
        (Refusal.NOT_FOUND, 403),  # a decision never answers "not found": it denies
        (Refusal.CONFLICT, 403),
    ],
)
def test_a_decision_is_answered_200_401_403_or_503(
    refusal_kind: Refusal | None, status: int
) -> None:
    decision = Decision("d", refusal_kind is None, (), (), None, refusal_kind)
    assert decision_status(decision) == status
    if status in (200, 400, 401, 403, 503):  # what /v1/decide names comes back as it was
        expected = refusal_kind if status != 403 else Refusal.FORBIDDEN
        assert refusal_of_status(status) is expected


@pytest.mark.parametrize(
    ("headers", "reason", "kind"),
    [
        ((("Authorization", "DPoP a"), ("Authorization", "DPoP b")), "auth.multiple", InvalidInput),
        (
            (("Authorization", "DPoP a"), ("DPoP", "p"), ("DPoP", "q")),
            "dpop.multiple",
            InvalidInput,
        ),
        ((("DPoP", "p"),), "auth.missing", Unauthenticated),
        ((("Authorization", "DPoP "),), "auth.missing", Unauthenticated),
        ((("Authorization", "Bearer a"), ("DPoP", "p")), "auth.scheme", Unauthenticated),
    ],
)
def test_a_request_carries_one_token_and_at_most_one_proof(
    headers: tuple[tuple[str, str], ...], reason: str, kind: type[ZerolaneError]
) -> None:
    with pytest.raises(kind) as refused:
        credentials_of(_headers(*headers), client_cert=None)
    assert refused.value.reason == reason
    # the twins: one of each; a Bearer token only with a client certificate
    one = _headers(("Authorization", "DPoP a"), ("DPoP", "p"))
    assert credentials_of(one, client_cert=None) == ("a", "p")
    bearer = _headers(("Authorization", "Bearer a"))
    assert credentials_of(bearer, client_cert=b"der") == ("a", None)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "auth.missing"),
        ("", "auth.missing"),
        ("DPoP", "auth.missing"),
        ("DPoP    ", "auth.missing"),
        ("Bearer abc", "auth.scheme"),
        ("abc", "auth.scheme"),
    ],
)
def test_bearer_of_refuses_anything_but_the_dpop_scheme(header: str | None, reason: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        bearer_of(header)
    assert refused.value.reason == reason


def test_bearer_of_takes_the_token_of_a_dpop_header() -> None:
    assert bearer_of("DPoP abc.def.ghi") == "abc.def.ghi"
    assert bearer_of("dpop  abc ") == "abc"


def test_a_bearer_token_only_with_a_certificate() -> None:
    with pytest.raises(Unauthenticated) as refused:
        token_of("Bearer abc", client_cert=None)
    assert refused.value.reason == "auth.scheme"
    assert token_of("Bearer abc", client_cert=b"der") == "abc"
    assert token_of("DPoP abc", client_cert=b"der") == "abc"
    assert token_of("DPoP abc", client_cert=None) == "abc"


def test_single_headers_and_bearer_credentials() -> None:
    with pytest.raises(InvalidInput) as twice:
        one_header(_headers(("Authorization", "a"), ("Authorization", "b")), b"authorization")
    assert twice.value.reason == "auth.multiple"
    assert one_header(_headers(("Authorization", "Bearer zla_x")), b"authorization") == (
        "Bearer zla_x"
    )
    assert one_header([], b"authorization") is None
    with pytest.raises(InvalidInput) as proofs:
        proof_of(_headers(("DPoP", "p"), ("DPoP", "q")))
    assert proofs.value.reason == "dpop.multiple"
    assert proof_of(_headers(("DPoP", "p"))) == "p"
    assert bearer_credential("Bearer  zla_x ") == "zla_x"
    assert bearer_credential("DPoP zla_x") is None
    assert bearer_credential(None) is None


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("auth.missing", None),
        ("auth.multiple", "invalid_request"),
        ("dpop.multiple", "invalid_request"),
        ("dpop.htu", "invalid_dpop_proof"),
        ("token.expired", "invalid_token"),
        ("auth.scheme", "invalid_token"),
        ("mtls.cert_missing", "invalid_token"),
        ("mtls.cert_malformed", "invalid_token"),
    ],
)
def test_challenge_errors(reason: str, error: str | None) -> None:
    assert challenge_error(reason) == error


def test_challenges() -> None:
    assert www_authenticate("auth.missing") == ['DPoP algs="ES256 EdDSA"']
    assert www_authenticate("dpop.replayed") == [
        'DPoP error="invalid_dpop_proof", error_description="dpop.replayed", algs="ES256 EdDSA"'
    ]
    assert www_authenticate("mtls.cert_mismatch") == [
        'Bearer error="invalid_token", error_description="mtls.cert_mismatch"'
    ]
    assert www_authenticate("admin.credential") == ['Bearer realm="zerolane"']
    # a reason is an id: nothing in it can break out of the quoted string
    [odd] = www_authenticate('token."x"\n,y')
    assert 'error_description="token._x__,y"' in odd


def test_challenges_naming_the_resource_metadata() -> None:
    """The MCP gateway (RFC 9728 section 5.1): a Bearer challenge too, what MCP clients
    look for, both naming the metadata URL."""
    bearer, dpop = www_authenticate("auth.missing", resource_metadata=METADATA)
    assert bearer == f'Bearer resource_metadata="{METADATA}"'
    assert dpop == f'DPoP algs="ES256 EdDSA", resource_metadata="{METADATA}"'
    _, dpop = www_authenticate("dpop.replayed", resource_metadata=METADATA)
    assert dpop == (
        'DPoP error="invalid_dpop_proof", error_description="dpop.replayed", '
        f'algs="ES256 EdDSA", resource_metadata="{METADATA}"'
    )
    bearer, dpop = www_authenticate("mtls.cert_mismatch", resource_metadata=METADATA)
    assert bearer == (
        'Bearer error="invalid_token", error_description="mtls.cert_mismatch", '
        f'resource_metadata="{METADATA}"'
    )
    assert dpop == f'DPoP algs="ES256 EdDSA", resource_metadata="{METADATA}"'  # not its error


def _header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def test_a_refusal_has_the_one_error_shape_and_its_headers() -> None:
    answer = refusal(400, "auth.multiple", "send exactly one Authorization header")
    assert answer.status == 400
    assert answer.body == {
        "error": "invalid_request",
        "reason": "auth.multiple",
        "message": "send exactly one Authorization header",
        "reasons": ["auth.multiple"],
        "decision_id": None,
    }
    assert _header(answer.headers, "X-Zerolane-Reason") == ["auth.multiple"]
    assert _header(answer.headers, "Cache-Control") == ["no-store"]
    assert _header(answer.headers, "WWW-Authenticate") == [
        'DPoP error="invalid_request", error_description="auth.multiple", algs="ES256 EdDSA"'
    ]
    # the twins: a 400 about something else, and a 403, are not challenged
    assert _header(refusal(400, "request.path", "x").headers, "WWW-Authenticate") == []
    assert _header(refusal(403, "route.unmapped", "x").headers, "WWW-Authenticate") == []


def test_a_deny_names_every_reason_and_its_decision() -> None:
    answer = denial(DENY)
    assert answer.status == 403
    assert answer.body == {
        "error": "forbidden",
        "reason": "scope.action",
        "message": "the request is not allowed for this task",
        "reasons": ["scope.action", "scope.resource"],
        "decision_id": "d2",
    }
    assert _header(answer.headers, "X-Zerolane-Decision") == ["d2"]
    unauthenticated = denial(
        Decision("d3", False, ("dpop.replayed",), (), None, Refusal.UNAUTHENTICATED)
    )
    assert (unauthenticated.status, unauthenticated.body["error"]) == (401, "invalid_dpop_proof")
    assert _header(unauthenticated.headers, "WWW-Authenticate") == www_authenticate("dpop.replayed")
    failed = denial(ALLOW.failed_closed("audit.write"))
    assert (failed.status, failed.body["error"], failed.body["reason"]) == (
        503,
        "unavailable",
        "audit.write",
    )
    assert allow_headers(ALLOW) == [("X-Zerolane-Task", "tsk_1"), ("X-Zerolane-Decision", "d1")]


def test_a_listeners_own_protocol_may_name_the_error_code() -> None:
    body = error_body(400, "exchange.grant_type", "x", error="unsupported_grant_type")
    assert (body["error"], body["reason"]) == ("unsupported_grant_type", "exchange.grant_type")
    assert error_body(413, "request.too_large", "x")["error"] == "too_large"
    assert error_body(401, "auth.missing", "x")["error"] == "unauthorized"


def test_an_answer_is_sent_on_raw_asgi_and_as_a_starlette_response() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    answer = refusal(401, "auth.missing", "send a token", resource_metadata=METADATA)
    asyncio.run(send_answer(send, answer, close=True))
    start, body = sent
    assert start["status"] == 401
    names = [name for name, _ in start["headers"]]
    assert names.count(b"www-authenticate") == 2
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"]) == answer.body
    response = answer.response()
    assert response.status_code == 401
    assert [v for n, v in response.raw_headers if n == b"www-authenticate"] == [
        v.encode() for v in www_authenticate("auth.missing", resource_metadata=METADATA)
    ]
    assert json.loads(bytes(response.body)) == answer.body


@pytest.mark.parametrize(
    ("policy_id", "header"),
    [
        ("forbid-écrire-€", "forbid-_crire-_"),
        ("forbid-x\r\nSet-Cookie: a=b", "forbid-x__Set-Cookie: a=b"),
        ("forbid-payroll-export", "forbid-payroll-export"),  # the twin: sent as it is
    ],
)
def test_a_deny_by_any_policy_id_is_answered(policy_id: str, header: str) -> None:
    """A policy's @id may hold any character; it names the deny in X-Zerolane-Reason. The
    header carries what a header can (no line break, Latin-1), the body the @id itself:
    the answer is the 403, never a 500 from a value that cannot be sent."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    decision = Decision("d1", False, (policy_id,), (policy_id,), "tsk_1", Refusal.FORBIDDEN)
    answer = denial(decision)
    asyncio.run(send_answer(send, answer))
    start, body = sent
    assert start["status"] == 403
    assert (b"x-zerolane-reason", header.encode()) in start["headers"]
    assert json.loads(body["body"])["reason"] == policy_id
    assert answer.response().status_code == 403
