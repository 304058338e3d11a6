"""The public key a workload presents at attestation, to bind its SVID (``cnf.jkt``)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from jwt.algorithms import ECAlgorithm, OKPAlgorithm
from jwt.exceptions import PyJWTError

from zerolane.errors import InvalidInput
from zerolane.tokens.rfc7638 import thumbprint

_ACCEPTED = {("EC", "P-256"), ("OKP", "Ed25519")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})


def key_thumbprint(jwk: object) -> str:
    """Validate a presented public JWK and return its RFC 7638 thumbprint."""
    if not isinstance(jwk, Mapping):
        raise InvalidInput("public_jwk.type", "public_jwk must be a JSON object (a JWK)")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise InvalidInput(
            "public_jwk.private_member",
            "public_jwk contains private key material; send only the public key",
        )
    if (jwk.get("kty"), jwk.get("crv")) not in _ACCEPTED:
        raise InvalidInput("public_jwk.kty", "public_jwk must be an EC P-256 or Ed25519 key")
    loader = ECAlgorithm if jwk.get("kty") == "EC" else OKPAlgorithm
    try:  # parsing checks that the point is on the curve
        loader.from_jwk(json.dumps(dict(jwk)))
    except (PyJWTError, ValueError, TypeError) as err:
        raise InvalidInput("public_jwk.invalid", "public_jwk is not a valid public key") from err
    return thumbprint(jwk)
