"""What the sync and async SDK clients share: keys, request bodies, results, errors."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.tokens.rfc8693 import FORM_TYPE, JWT_TYPE, ExchangeRequest, exchange_form
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

DEFAULT_TIMEOUT = 10.0


class ZerolaneApiError(Exception):
    """The control plane refused a call: ``status`` and the stable ``reason`` id."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class ApprovalRequired(ZerolaneApiError):
    """An enforcement point answered 403 ``approval.required``: a policy asks a person
    to approve this exact request (its arguments included). ``approval_id`` names it;
    wait for it (``task.wait_for_approval(approval_id)``), then send the identical
    request again: it is allowed once."""

    def __init__(self, approval_id: str, message: str, approval_url: str | None = None) -> None:
        super().__init__(403, "approval.required", message)
        self.approval_id = approval_id
        self.approval_url = approval_url


def approval_required(response: httpx.Response) -> ApprovalRequired | None:
    """The :class:`ApprovalRequired` a response of an enforcement point means, if any."""
    if response.status_code != 403:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("reason") != "approval.required":
        return None
    approval_id = body.get("approval_id")
    if not isinstance(approval_id, str) or not approval_id:
        return None
    url = body.get("approval_url")
    message = str(body.get("message") or "the request needs a human approval")
    return ApprovalRequired(approval_id, message, url if isinstance(url, str) else None)


#: statuses an approval leaves ``pending`` for (``wait_for_approval`` returns on them)
APPROVAL_SETTLED = frozenset({"approved", "denied", "used", "expired"})


@dataclass(frozen=True, slots=True)
class DecisionResult:
    allowed: bool
    reasons: tuple[str, ...]
    policies: tuple[str, ...]
    task_id: str | None
    decision_id: str
    status: int
    #: a deny ``approval.required`` names the approval to wait for
    approval_id: str | None = None
    #: a shadow allow (``decision`` ``shadow``): the reasons enforcement would have
    #: denied it with, and what was in shadow mode; empty for a plain allow or a deny
    would_deny: tuple[str, ...] = ()
    shadow: tuple[str, ...] = ()


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
    #: ``DPoP`` (bound to the agent's key) or ``Bearer`` (bound to its client
    #: certificate, RFC 8705: sent over mutual TLS, with no proof)
    token_type: str = "DPoP"  # noqa: S105 (the scheme name, not a secret)

    @property
    def certificate_bound(self) -> bool:
        return self.token_type.lower() == "bearer"


@dataclass(frozen=True, slots=True)
class X509Svid:
    """An X.509-SVID issued to this agent: its chain (PEM, leaf first), the trust
    domain's X.509 authorities (PEM) and its expiry. The key is the agent's own."""

    chain_pem: str
    bundle_pem: str
    expires_at: int


def csr_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """A PKCS#10 request for ``key`` (its names are ignored: the SPIFFE ID is attested)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def x509_of(body: Mapping[str, Any]) -> X509Svid | None:
    chain = body.get("x509_svid")
    if not isinstance(chain, str) or not chain:
        return None
    return X509Svid(chain, str(body.get("x509_bundle") or ""), int(body["x509_expires_at"]))


def client_tls_context(
    key: ec.EllipticCurvePrivateKey,
    svid: X509Svid,
    verify: bool | str | ssl.SSLContext = True,
) -> ssl.SSLContext:
    """A TLS context presenting ``svid`` (with ``key``) as the client certificate.

    ``verify``: an ``ssl.SSLContext`` to start from, a CA file for the server's
    certificate, True (the system's CAs) or False (no server check: tests only).
    """
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
    else:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # ssl loads a client certificate only from files: a private folder, removed at once
    with tempfile.TemporaryDirectory(prefix="zerolane-mtls-") as folder:
        cert_file, key_file = Path(folder) / "svid.pem", Path(folder) / "svid.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        cert_file.write_text(svid.chain_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


def bearer_headers(token: str) -> dict[str, str]:
    """``Authorization: Bearer <token>`` for a certificate-bound token (no proof)."""
    return {"Authorization": f"Bearer {token}"}


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
            # every zerolane refusal has a message; a proxy's error may have neither
            str(fields.get("message") or fields.get("error", response.text[:200])),
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
        str(body["task_id"]),
        str(body["token"]),
        int(body["expires_at"]),
        body["scope"],
        str(body.get("token_type") or "DPoP"),
    )


def exchange_request(
    url: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    subject_token: str,
    subject_token_type: str,
    actor_token: str,
    proven_token: str | None,
    authorization_details: Sequence[Mapping[str, Any]] | None = None,
    audience: Sequence[str] | None = None,
    ttl: int | None = None,
    max_calls: int | None = None,
    intent: str | None = None,
    playbook: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The form body and headers of an RFC 8693 token exchange at ``url``
    (``POST /v1/token``). The DPoP proof is by ``key`` and bound to ``proven_token``
    (the parent task token, or the agent's SVID); ``None`` for a certificate-bound
    parent token, which the connection's certificate proves instead."""
    request = ExchangeRequest(
        subject_token=subject_token,
        subject_token_type=subject_token_type,
        actor_token=actor_token,
        actor_token_type=JWT_TYPE,
        authorization_details=[dict(d) for d in authorization_details]
        if authorization_details
        else None,
        audience=tuple(audience or ()),
        ttl=ttl,
        max_calls=max_calls,
        intent=intent,
        playbook=playbook,
    )
    headers = {"Content-Type": FORM_TYPE}
    if proven_token is not None:
        headers["DPoP"] = make_proof(key, method="POST", url=url, access_token=proven_token)
    return urlencode(exchange_form(request)).encode(), headers


def exchanged_grant_of(body: Mapping[str, Any]) -> TaskGrant:
    """The task grant of an RFC 8693 token response (``POST /v1/token``)."""
    return TaskGrant(
        str(body["task_id"]),
        str(body["access_token"]),
        int(body["expires_at"]),
        body["task"]["scope"],
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
    *,
    proof: bool = True,
) -> dict[str, Any]:
    """``proof`` False: a certificate-bound token (the connection carries the cert)."""
    request: dict[str, Any] = {"method": method.upper(), "url": url}
    request.update({k: v for k, v in mapping.items() if v is not None})
    body: dict[str, Any] = {"token": token, "request": request}
    if proof:
        body["dpop"] = make_proof(key, method=method, url=url, access_token=token)
    if audience is not None:
        body["audience"] = audience
    return body


def decision_of(body: Mapping[str, Any]) -> DecisionResult:
    return DecisionResult(
        allowed=body["decision"] in ("allow", "shadow"),
        reasons=tuple(body["reasons"]),
        policies=tuple(body["policies"]),
        task_id=body.get("task_id"),
        decision_id=str(body["decision_id"]),
        status=int(body["status"]),
        approval_id=body.get("approval_id"),
        would_deny=tuple(body.get("would_deny") or ()),
        shadow=tuple(body.get("shadow") or ()),
    )
