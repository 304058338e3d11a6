"""JWK thumbprints (RFC 7638), checked against the RFCs' own examples."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.errors import InvalidInput
from zerolane.identity.keyring import public_jwk
from zerolane.tokens.rfc7638 import b64url, thumbprint

# RFC 7638, section 3.1
RFC7638_RSA_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ"
        "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
        "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
        "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# RFC 8037, appendix A.3
RFC8037_OKP_KEY = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc7638_rsa_example() -> None:
    assert thumbprint(RFC7638_RSA_KEY) == RFC7638_THUMBPRINT


def test_rfc8037_okp_example() -> None:
    assert thumbprint(RFC8037_OKP_KEY) == RFC8037_THUMBPRINT


def test_only_required_members_count() -> None:
    bare = {"kty": "RSA", "n": RFC7638_RSA_KEY["n"], "e": "AQAB"}
    assert thumbprint(bare) == RFC7638_THUMBPRINT
    decorated = {**RFC7638_RSA_KEY, "use": "sig", "key_ops": ["verify"], "x5c": ["..."]}
    assert thumbprint(decorated) == RFC7638_THUMBPRINT


def test_member_order_does_not_matter() -> None:
    jwk = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    assert thumbprint(dict(reversed(list(jwk.items())))) == thumbprint(jwk)


def test_different_keys_have_different_thumbprints() -> None:
    one = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    two = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    assert thumbprint(one) != thumbprint(two)


def test_ec_thumbprint_is_43_base64url_chars() -> None:
    value = thumbprint(public_jwk(ec.generate_private_key(ec.SECP256R1())))
    assert len(value) == 43
    assert "=" not in value
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_oct_key() -> None:
    assert thumbprint({"kty": "oct", "k": "c2VjcmV0"}) == thumbprint(
        {"k": "c2VjcmV0", "kty": "oct"}
    )


def test_b64url_has_no_padding() -> None:
    assert b64url(b"\xfb\xff") == "-_8"
    assert b64url(b"") == ""


@pytest.mark.parametrize(
    "jwk",
    [{}, {"kty": "XYZ"}, {"kty": None}, {"kty": 1}, {"kty": "rsa", "n": "x", "e": "AQAB"}],
)
def test_unsupported_kty_is_refused(jwk: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        thumbprint(jwk)
    assert info.value.reason == "jwk.kty"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "e": "AQAB"},
        {"kty": "RSA", "n": "abc", "e": ""},
        {"kty": "EC", "crv": "P-256", "x": "abc"},
        {"kty": "EC", "crv": "P-256", "x": "abc", "y": 5},
        {"kty": "OKP", "x": "abc"},
        {"kty": "OKP", "crv": ["Ed25519"], "x": "abc"},
        {"kty": "oct"},
    ],
)
def test_missing_or_malformed_required_member_is_refused(jwk: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        thumbprint(jwk)
    assert info.value.reason == "jwk.member"
