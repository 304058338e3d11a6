"""The public key a workload presents at attestation: a DPoP key type, a valid point,
no private member; its thumbprint binds the SVID (``cnf.jkt``)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from zerolane.errors import InvalidInput
from zerolane.identity.workload_key import key_thumbprint
from zerolane.tokens.jws import public_jwk
from zerolane.tokens.rfc7638 import b64url, thumbprint

P256 = public_jwk(ec.generate_private_key(ec.SECP256R1()))
ED25519 = public_jwk(ed25519.Ed25519PrivateKey.generate())


@pytest.mark.parametrize("jwk", [P256, ED25519], ids=["P-256", "Ed25519"])
def test_a_proof_key_is_accepted_and_bound_by_its_thumbprint(jwk: dict[str, Any]) -> None:
    assert key_thumbprint({**jwk, "kid": "mine", "use": "sig"}) == thumbprint(jwk)


def _rsa() -> dict[str, Any]:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    n = numbers.public_numbers().n
    return {"kty": "RSA", "n": b64url(n.to_bytes(256)), "e": "AQAB"}


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ("not a key", "public_jwk.type"),
        ({**P256, "d": "AAAA"}, "public_jwk.private_member"),
        (public_jwk(ec.generate_private_key(ec.SECP384R1())), "public_jwk.kty"),
        ({**ED25519, "crv": "X25519"}, "public_jwk.kty"),
        (_rsa(), "public_jwk.kty"),
        ({**P256, "crv": None}, "public_jwk.kty"),
        ({**P256, "y": P256["x"]}, "public_jwk.invalid"),  # not on the curve
        ({**ED25519, "x": ED25519["x"][:-2]}, "public_jwk.invalid"),
        ({k: v for k, v in P256.items() if k != "y"}, "public_jwk.invalid"),
    ],
    ids=[
        "not-a-mapping",
        "private",
        "P-384",
        "X25519",
        "RSA",
        "no-crv",
        "off-curve",
        "short",
        "no-y",
    ],
)
def test_any_other_key_is_refused(jwk: object, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        key_thumbprint(jwk)
    assert refused.value.reason == reason
