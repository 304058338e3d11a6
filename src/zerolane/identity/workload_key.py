"""The public key a workload presents at attestation, to bind its SVID (``cnf.jkt``)."""

from __future__ import annotations

from collections.abc import Mapping

from zerolane.errors import InvalidInput
from zerolane.tokens import jws
from zerolane.tokens.algorithms import DPOP_ALGS, algorithm_for_key
from zerolane.tokens.rfc7638 import thumbprint

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
    kty, crv = jwk.get("kty"), jwk.get("crv")
    # the key signs the workload's DPoP proofs: a key type of the proof algorithms
    alg = algorithm_for_key(kty, crv, DPOP_ALGS) if isinstance(kty, str) else None
    if alg is None or not isinstance(crv, str):
        raise InvalidInput("public_jwk.kty", "public_jwk must be an EC P-256 or Ed25519 key")
    try:  # parsing checks that the point is on the curve
        jws.public_key(jwk, alg)
    except jws.JwsBadKey as err:
        raise InvalidInput("public_jwk.invalid", "public_jwk is not a valid public key") from err
    return thumbprint(jwk)
