"""The forgeries are what they claim to be, read by independent code (PyJWT, and the
standard library's HMAC): the real token's claims unchanged, and only the
signature or the header forged as named."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.types import Options

from zerolane.probe import forge

CLAIMS: dict[str, Any] = {
    "iss": "https://issuer.example",
    "sub": "spiffe://example.org/agent",
    "aud": ["urn:example:rs"],
    "iat": 1_800_000_000,
    "nbf": 1_800_000_000,
    "exp": 1_800_000_300,
    "jti": "j-1",
    "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
    "authorization_details": [{"type": "zerolane_task", "actions": ["read"]}],
}
ISSUER = ec.generate_private_key(ec.SECP256R1())
ISSUER_KID = "issuer-1"
NO_CHECKS: Options = {
    "verify_aud": False,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
}


def _real() -> str:
    """A token as an issuer writes it, by PyJWT (not by the code under test)."""
    return jwt.encode(
        CLAIMS, ISSUER, algorithm="ES256", headers={"kid": ISSUER_KID, "typ": "at+jwt"}
    )


def _issuer_jwk() -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ISSUER.public_key()))
    return {**jwk, "kid": ISSUER_KID, "use": "sig", "alg": "ES256"}


def _hmac_ok(token: str, secret: bytes) -> bool:
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(jwt.utils.base64url_decode(signature), expected)


def _unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_alg_none_is_unsigned_with_the_real_claims() -> None:
    token = forge.alg_none(_real())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "none"
    assert header["kid"] == ISSUER_KID
    assert header["typ"] == "at+jwt"
    assert token.endswith(".")  # the empty signature
    assert _unverified(token) == CLAIMS
    with pytest.raises(jwt.InvalidTokenError):  # a sound verifier refuses it
        jwt.decode(token, ISSUER.public_key(), algorithms=["ES256"], options=NO_CHECKS)


def test_hs256_verifies_with_each_serialized_public_key() -> None:
    real = _real()
    forms = dict(forge.public_key_forms(_issuer_jwk()))
    assert set(forms) == {"pem", "pem-stripped", "der", "jwk-json", "jwk-json-spaced"}
    public = ISSUER.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert forms["pem"] == pem
    assert forms["pem-stripped"] == pem.rstrip(b"\n")
    assert forms["der"] == der
    assert json.loads(forms["jwk-json"]) == _issuer_jwk()
    assert json.loads(forms["jwk-json-spaced"]) == _issuer_jwk()
    for name, secret in forms.items():
        token = forge.hs256(real, secret, kid=ISSUER_KID)
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "HS256", "kid": ISSUER_KID, "typ": "at+jwt"}, name
        assert _hmac_ok(token, secret), name
        assert not _hmac_ok(token, secret + b"x"), name
        assert _unverified(token) == CLAIMS, name
    # (PyJWT refuses PEM- and JWK-looking HMAC secrets, as a verifier should: the
    # standard library's HMAC is the independent reader here)


def test_a_shared_secret_in_the_key_set_has_no_public_forms() -> None:
    assert forge.public_key_forms({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}) == []


def test_jwk_injection_embeds_the_key_that_verifies_it() -> None:
    key = forge.ProbeKey()
    real = _real()
    for kid in (None, ISSUER_KID):
        token = forge.with_jwk(real, key, kid=kid)
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "ES256"
        assert header["kid"] == (kid or key.kid)
        assert header["jwk"] == key.public_jwk
        assert "d" not in header["jwk"]  # the public half only
        embedded = jwt.PyJWK(header["jwk"]).key
        assert jwt.decode(token, embedded, algorithms=["ES256"], options=NO_CHECKS) == CLAIMS
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, ISSUER.public_key(), algorithms=["ES256"], options=NO_CHECKS)


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_url_injection_names_the_url_and_signs_with_the_probe_key(member: str) -> None:
    key = forge.ProbeKey()
    url = f"http://127.0.0.1:8765/abc/{member}"
    if member == "jku":
        token = forge.with_jku(_real(), key, url)
    else:
        token = forge.with_x5u(_real(), key, url)
    header = jwt.get_unverified_header(token)
    assert header[member] == url
    assert header.get("kid") == (key.kid if member == "jku" else None)
    probe_public = jwt.PyJWK(key.public_jwk).key
    assert jwt.decode(token, probe_public, algorithms=["ES256"], options=NO_CHECKS) == CLAIMS


def test_the_served_key_set_verifies_the_jku_forgery() -> None:
    """What the probe serves at the jku URL is a JWK Set of the key that signed the
    forgery, under the kid the token names (PyJWT reads it: an independent reader)."""
    key = forge.ProbeKey()
    token = forge.with_jku(_real(), key, "http://127.0.0.1:1/jwks.json")
    served = jwt.PyJWKSet.from_json(key.jwks().decode())
    (found,) = served.keys
    assert "d" not in json.loads(key.jwks())["keys"][0]  # the public half only
    assert found.key_id == jwt.get_unverified_header(token)["kid"]
    assert jwt.decode(token, found.key, algorithms=["ES256"], options=NO_CHECKS) == CLAIMS


def test_the_served_certificate_holds_the_x5u_forgery_key() -> None:
    """The x5u chain is one self-signed certificate whose key verifies the forgery."""
    key = forge.ProbeKey()
    token = forge.with_x5u(_real(), key, "http://127.0.0.1:1/chain.pem")
    pem = key.certificate_pem()
    assert b"PRIVATE" not in pem
    (certificate,) = x509.load_pem_x509_certificates(pem)
    assert certificate.subject == certificate.issuer
    assert forge.CERT_NAME in certificate.subject.rfc4514_string()
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert jwt.decode(token, public, algorithms=["ES256"], options=NO_CHECKS) == CLAIMS
    certificate.verify_directly_issued_by(certificate)


def test_kid_traversal_is_hs256_with_the_empty_key() -> None:
    """The zero key and the empty key are one HMAC key (RFC 2104 pads with zeros)."""
    for kid in forge.TRAVERSAL_KIDS:
        token = forge.with_kid(_real(), kid)
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "HS256"
        assert header["kid"] == kid
        assert _hmac_ok(token, b"")
        assert _unverified(token) == CLAIMS
    assert any("../" in kid for kid in forge.TRAVERSAL_KIDS)


@pytest.mark.parametrize("token", ["opaque-token", "a.b.c", "e30.e30."])
def test_a_token_that_is_not_a_jwt_cannot_be_forged(token: str) -> None:
    with pytest.raises(forge.NotAJwt):
        forge.alg_none(token)


def test_a_jws_without_a_claims_object_cannot_be_forged() -> None:
    token = jwt.api_jws.PyJWS().encode(b"[1, 2]", "k" * 32, algorithm="HS256")
    with pytest.raises(forge.NotAJwt):
        forge.Original.of(token)
