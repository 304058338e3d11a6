"""Strict JWS verification over PyJWT, with our rules on algorithms and keys.

zerolane issues and accepts only asymmetric signatures: ES256 by default, EdDSA where
configured. A token with any other ``alg`` (``none``, HMAC, RSA) is refused before a
key is even looked at, so no algorithm-confusion trick applies. A JWK whose ``use``,
``key_ops`` or ``alg`` says it is not for verifying this algorithm is never used.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from zerolane.errors import Unauthenticated

SUPPORTED_ALGORITHMS = frozenset({"ES256", "EdDSA"})
_CURVE_FOR_ALG = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
_jws = jwt.PyJWS()


class JwsError(Unauthenticated):
    """A JWS failed verification; ``reason`` says which check."""


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    header: dict[str, Any]
    payload: bytes
    key: Mapping[str, Any]


def unverified_header(token: str) -> dict[str, Any]:
    """Read a compact JWS header without trusting it (for ``kid`` selection)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as err:
        raise JwsError("jws.malformed", "the token is not a compact JWS") from err
    if not isinstance(header, dict):
        raise JwsError("jws.malformed", "the JWS header is not an object")
    return header


def _key_allows(jwk: Mapping[str, Any], alg: str) -> bool:
    kty, crv = _CURVE_FOR_ALG[alg]
    if jwk.get("kty") != kty or jwk.get("crv") != crv:
        return False
    if "use" in jwk and jwk["use"] not in ("sig", "jwt-svid"):
        return False
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    return not ("alg" in jwk and jwk["alg"] != alg)


def _public_key(jwk: Mapping[str, Any], alg: str) -> Any:
    public = {k: v for k, v in jwk.items() if k != "d"}
    text = json.dumps(public)
    try:
        if alg == "ES256":
            return ECAlgorithm.from_jwk(text)
        return OKPAlgorithm.from_jwk(text)
    except (jwt.PyJWTError, ValueError, TypeError) as err:
        raise JwsError("jws.bad_key", "the verification key is malformed") from err


def verify(
    token: str,
    keys: Iterable[Mapping[str, Any]],
    *,
    algorithms: Collection[str] = ("ES256",),
) -> VerifiedJws:
    """Verify a compact JWS against ``keys`` (JWKs); return header and payload.

    The key is chosen by ``kid`` when the header names one; without a ``kid`` each
    usable key is tried. Raises :class:`JwsError` on any failure.
    """
    allowed = SUPPORTED_ALGORITHMS.intersection(algorithms)
    header = unverified_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise JwsError("jws.algorithm", f"algorithm {alg!r} is not accepted")
    if "crit" in header:
        raise JwsError("jws.crit", "critical header extensions are not supported")
    if header.get("b64", True) is not True:
        raise JwsError("jws.b64", "unencoded payloads are not supported")
    kid = header.get("kid")
    candidates = [k for k in keys if _key_allows(k, alg)]
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
    if not candidates:
        raise JwsError("jws.unknown_key", "no usable key for this token")
    for jwk in candidates:
        try:
            decoded = _jws.decode_complete(
                token,
                key=_public_key(jwk, alg),
                algorithms=[alg],
                options={"verify_signature": True},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as err:
            raise JwsError("jws.malformed", "the token is not a valid JWS") from err
        return VerifiedJws(header=decoded["header"], payload=decoded["payload"], key=jwk)
    raise JwsError("jws.signature", "the signature does not verify")
