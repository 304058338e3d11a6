"""JWT-SVIDs (SPIFFE JWT-SVID spec): issue and verify.

Headers are exactly ``alg`` (ES256), ``kid`` and ``typ`` (``JWT``). Claims: ``sub``
(the SPIFFE ID), ``aud`` (required, a list), ``exp``, ``iat``, ``jti``, and ``cnf.jkt``
(RFC 7638 thumbprint of the workload's key) when the workload presented one, so later
requests can be bound to that key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zerolane.errors import Unauthenticated
from zerolane.identity.keyring import Keyring
from zerolane.identity.spiffe_id import SpiffeIdError, parse_workload_id
from zerolane.tokens import jws
from zerolane.types import Clock

TYP = "JWT"
_ALLOWED_HEADERS = frozenset({"alg", "kid", "typ"})
LEEWAY = 5.0


@dataclass(frozen=True, slots=True)
class IssuedSvid:
    token: str
    spiffe_id: str
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int
    jti: str
    jkt: str | None


def issue(
    keyring: Keyring,
    clock: Clock,
    *,
    spiffe_id: str,
    audience: Sequence[str],
    ttl: int,
    jkt: str | None = None,
) -> IssuedSvid:
    now = int(clock.now())
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "sub": spiffe_id,
        "aud": list(audience),
        "iat": now,
        "exp": now + ttl,
        "jti": jti,
    }
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    token = keyring.sign(claims, typ=TYP)
    return IssuedSvid(token, spiffe_id, tuple(audience), now, now + ttl, jti, jkt)


class SvidError(Unauthenticated):
    """A JWT-SVID failed verification; ``reason`` names the check."""


@dataclass(frozen=True, slots=True)
class VerifiedSvid:
    spiffe_id: str
    audience: tuple[str, ...]
    expires_at: int
    jti: str | None
    jkt: str | None
    claims: dict[str, Any]


def verify(
    token: str,
    keys: Sequence[dict[str, Any]],
    *,
    audience: str,
    clock: Clock,
) -> VerifiedSvid:
    """Verify a JWT-SVID against ``keys`` for ``audience`` at the clock's time."""
    verified = jws.verify(token, keys, algorithms=("ES256",))
    header = verified.header
    if set(header) - _ALLOWED_HEADERS:
        raise SvidError("svid.header", "a JWT-SVID carries only alg, kid and typ headers")
    if header.get("typ", TYP) not in ("JWT", "JOSE"):
        raise SvidError("svid.typ", "a JWT-SVID has typ JWT or JOSE")
    try:
        claims = json.loads(verified.payload)
    except ValueError as err:
        raise SvidError("svid.claims", "the JWT-SVID claims are not JSON") from err
    if not isinstance(claims, dict):
        raise SvidError("svid.claims", "the JWT-SVID claims are not an object")
    sub = claims.get("sub")
    try:
        parse_workload_id(sub if isinstance(sub, str) else "")
    except SpiffeIdError as err:
        raise SvidError("svid.sub", "the JWT-SVID subject is not a workload SPIFFE ID") from err
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud
    if not isinstance(auds, list) or not auds or not all(isinstance(a, str) for a in auds):
        raise SvidError("svid.aud", "the JWT-SVID has no audience")
    if audience not in auds:
        raise SvidError("svid.aud", "the JWT-SVID is not meant for this audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise SvidError("svid.exp", "the JWT-SVID has no expiry")
    now = clock.now()
    if now >= exp + LEEWAY:
        raise SvidError("svid.expired", "the JWT-SVID has expired")
    iat = claims.get("iat")
    if isinstance(iat, int | float) and iat > now + LEEWAY:
        raise SvidError("svid.iat", "the JWT-SVID is issued in the future")
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    jti = claims.get("jti")
    return VerifiedSvid(
        spiffe_id=str(sub),
        audience=tuple(auds),
        expires_at=int(exp),
        jti=jti if isinstance(jti, str) else None,
        jkt=jkt if isinstance(jkt, str) else None,
        claims=claims,
    )
