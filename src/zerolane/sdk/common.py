"""What the sync and async SDK clients share: keys, request bodies, results, errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.tokens.rfc9449 import make_proof, proof_jwk

DEFAULT_TIMEOUT = 10.0


class ZerolaneApiError(Exception):
    """The control plane refused a call: ``status`` and the stable ``reason`` id."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class DecisionResult:
    allowed: bool
    reasons: tuple[str, ...]
    policies: tuple[str, ...]
    task_id: str | None
    decision_id: str
    status: int


@dataclass(frozen=True, slots=True)
class Svid:
    token: str
    spiffe_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class TaskGrant:
    task_id: str
    token: str
    expires_at: int
    scope: Mapping[str, Any]


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key; it never leaves the process."""
    return ec.generate_private_key(ec.SECP256R1())


def check(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 2xx response, else :class:`ZerolaneApiError`."""
    try:
        body = response.json()
    except ValueError:
        body = None  # not JSON (a proxy's page, say): never a result, even with a 2xx
    if response.status_code >= 400:
        fields = body if isinstance(body, dict) else {}
        raise ZerolaneApiError(
            response.status_code,
            str(fields.get("reason", "http.error")),
            str(fields.get("error", response.text[:200])),
        )
    if not isinstance(body, dict):
        raise ZerolaneApiError(response.status_code, "response.invalid", "expected a JSON object")
    return body


def attest_body(
    join_token: str,
    key: ec.EllipticCurvePrivateKey,
    audience: Sequence[str] | None,
    ttl: int | None,
    spiffe_id: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"join_token": join_token, "public_jwk": proof_jwk(key)}
    if audience is not None:
        body["audience"] = list(audience)
    if ttl is not None:
        body["ttl"] = ttl
    if spiffe_id is not None:
        body["spiffe_id"] = spiffe_id
    return body


def svid_of(body: Mapping[str, Any]) -> Svid:
    return Svid(str(body["svid"]), str(body["spiffe_id"]), int(body["expires_at"]))


def open_body(
    playbook: str,
    intent: str,
    authorization_details: Sequence[Mapping[str, Any]] | None,
    ttl: int | None,
    max_calls: int | None,
    on_behalf_of: str | None,
    audience: Sequence[str] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"playbook": playbook, "intent": intent}
    optional = {
        "authorization_details": list(authorization_details) if authorization_details else None,
        "ttl": ttl,
        "max_calls": max_calls,
        "on_behalf_of": on_behalf_of,
        "audience": list(audience) if audience else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def grant_of(body: Mapping[str, Any]) -> TaskGrant:
    return TaskGrant(
        str(body["task_id"]), str(body["token"]), int(body["expires_at"]), body["scope"]
    )


def dpop_headers(
    key: ec.EllipticCurvePrivateKey, token: str, method: str, url: str
) -> dict[str, str]:
    """``Authorization: DPoP <token>`` and a fresh proof for this method and URL."""
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": make_proof(key, method=method, url=url, access_token=token),
    }


def decide_body(
    key: ec.EllipticCurvePrivateKey,
    token: str,
    method: str,
    url: str,
    mapping: Mapping[str, str | None],
    audience: str | None,
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method.upper(), "url": url}
    request.update({k: v for k, v in mapping.items() if v is not None})
    body: dict[str, Any] = {
        "token": token,
        "dpop": make_proof(key, method=method, url=url, access_token=token),
        "request": request,
    }
    if audience is not None:
        body["audience"] = audience
    return body


def decision_of(body: Mapping[str, Any]) -> DecisionResult:
    return DecisionResult(
        allowed=body["decision"] == "allow",
        reasons=tuple(body["reasons"]),
        policies=tuple(body["policies"]),
        task_id=body.get("task_id"),
        decision_id=str(body["decision_id"]),
        status=int(body["status"]),
    )
