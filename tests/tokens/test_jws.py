"""tokens/jws.py: base64url segments, the parsed-key cache, parse-then-verify."""

from __future__ import annotations

import json
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm

import zerolane.tokens.jws as jws


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


# the base64url segments: joserfc decodes them, canonical and without padding only

_HEAD = "eyJhbGciOiJFUzI1NiJ9"  # {"alg":"ES256"}
_SEGMENT_TEXT = st.text(alphabet="ABCXYZabcxyz0189-_=+/.! \n", max_size=40)


def _payload_of(segment: str) -> bytes | None:
    try:
        return jws.parse(f"{_HEAD}.{segment}.AAAA").payload
    except jws.JwsMalformed:
        return None


@given(st.binary(max_size=64))
def test_any_payload_encoded_as_base64url_is_read_back(payload: bytes) -> None:
    assert _payload_of(_b64(payload)) == payload


@given(_SEGMENT_TEXT)
def test_a_segment_is_accepted_only_in_its_one_canonical_encoding(segment: str) -> None:
    payload = _payload_of(segment)
    if payload is not None:
        assert _b64(payload) == segment


@pytest.mark.parametrize(
    ("segment", "decoded"),
    [
        ("eyJhIjoxfQ", b'{"a":1}'),
        ("", b""),
        ("eyJhIjoxfQ==", None),  # padding (RFC 7515 section 2: base64url without '=')
        ("eyJhIjoxfQ=", None),
        ("eyJhIjox+Q", None),  # base64 (not base64url) alphabet
        ("eyJhIjoxfR", None),  # non-canonical trailing bits
        ("a", None),
        ("!!!!", None),
        ("eyJhIjoxfQ\n", None),
    ],
)
def test_segment_table(segment: str, decoded: bytes | None) -> None:
    assert _payload_of(segment) == decoded


def test_a_key_is_parsed_once_and_a_bad_key_is_never_cached() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    first = jws.public_key(jwk, "ES256")
    assert jws.public_key(dict(jwk, kid="other"), "ES256") is first  # only x, y count
    off_curve = dict(jwk, y=jwk["x"])
    for _ in range(2):
        with pytest.raises(jws.JwsError) as refused:
            jws.public_key(off_curve, "ES256")
        assert refused.value.reason == "jws.bad_key"


# our rules on keys, on top of joserfc's import


def _rsa_jwk(modulus: int) -> dict[str, str]:
    return {"kty": "RSA", "n": _b64(modulus.to_bytes((modulus.bit_length() + 7) // 8)), "e": "AQAB"}


def _roca_shaped(bits: int) -> int:
    """An odd modulus of ``bits`` bits that is 1 modulo every prime below 168: 1 is in
    the subgroup 65537 generates modulo each, the fingerprint of an Infineon key."""
    product = 1
    for p in (p for p in range(3, 168) if all(p % q for q in range(2, p))):
        product *= p
    return 1 + (product << (bits - product.bit_length()))


def test_rsa_keys_under_2048_bits_or_with_the_roca_fingerprint_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (refused)
    roca = _roca_shaped(2048)
    assert roca.bit_length() == 2048
    for modulus in (small.public_key().public_numbers().n, roca):
        with pytest.raises(jws.JwsWeakKey) as refused:
            jws.public_key(_rsa_jwk(modulus), "RS256")
        assert refused.value.reason == "jws.weak_key"
        assert isinstance(refused.value, jws.JwsBadKey)
    sound = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert jws.public_key(_rsa_jwk(sound.public_key().public_numbers().n), "PS256")


def test_an_ec_coordinate_of_another_length_than_its_curve_is_refused() -> None:
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    x = jwt.utils.base64url_decode(jwk["x"])
    longer = dict(jwk, x=_b64(b"\0" + x))  # the same point, one byte too many
    with pytest.raises(jws.JwsBadKey) as refused:
        jws.public_key(longer, "ES256")
    assert refused.value.reason == "jws.bad_key"
    assert jws.public_key(jwk, "ES256")


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
    ids=["ES256", "EdDSA"],
)
def test_what_sign_makes_verify_accepts_with_that_key_only(key: jws.SigningKey, alg: str) -> None:
    public = {**jws.public_jwk(key), "kid": "k"}
    token = jws.sign({"alg": alg, "kid": "k"}, _PAYLOAD, key)
    verified = jws.verify(token, [public], algorithms=(alg,))
    assert (verified.header["alg"], verified.payload, verified.key) == (alg, _PAYLOAD, public)
    with pytest.raises(jws.JwsAlgorithmRefused):
        jws.verify(token, [public], algorithms=("ES384", "RS256"))
    stranger = ed25519.Ed25519PrivateKey.generate() if alg == "EdDSA" else _STRANGER
    with pytest.raises(jws.JwsBadSignature):
        jws.verify(token, [{**jws.public_jwk(stranger), "kid": "k"}], algorithms=("ES256", alg))


# a JWS parsed once and handed on is verified exactly as its compact form

_KEY = ec.generate_private_key(ec.SECP256R1())
_JWK = {**json.loads(ECAlgorithm.to_jwk(_KEY.public_key())), "kid": "k1"}
_STRANGER = ec.generate_private_key(ec.SECP256R1())
_PAYLOAD = b'{"sub":"x"}'


def _signed(key: ec.EllipticCurvePrivateKey = _KEY, **header: object) -> str:
    """An ES256 JWS with exactly ``header`` over the defaults (None drops a member),
    built by hand: PyJWT would refuse to encode some of these headers."""
    fields = {k: v for k, v in {"alg": "ES256", "kid": "k1", **header}.items() if v is not None}
    signing_input = f"{_b64(json.dumps(fields).encode())}.{_b64(_PAYLOAD)}"
    signature = ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode(), key)
    return f"{signing_input}.{_b64(signature)}"


def _detached(token: str) -> str:
    head, _, signature = token.split(".")
    return f"{head}..{signature}"


def _tampered() -> str:
    head, _, signature = _signed().split(".")
    return ".".join((head, _b64(b'{"sub":"y"}'), signature))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_signed(), None),
        (_signed(kid=None), None),  # no kid: each usable key is tried
        (_signed(_STRANGER), "jws.signature"),
        (_tampered(), "jws.signature"),
        (_signed(kid="k2"), "jws.unknown_key"),
        (_signed(kid=7), "jws.malformed"),
        (_signed(crit=["b64"], b64=True), "jws.crit"),
        (_signed(b64="no"), "jws.b64"),
        (_signed(b64=False), "jws.b64"),  # RFC 7797 needs crit: refused as it is read
        (_detached(_signed(b64=False)), "jws.b64"),
        (_signed(alg=None), "jws.algorithm"),
        (_signed() + "!", "jws.malformed"),
        ("a.b", "jws.malformed"),
        (jwt.encode({"sub": "x"}, "", algorithm="none"), "jws.algorithm"),
    ],
)
def test_a_parsed_jws_is_verified_as_its_compact_form(token: str, reason: str | None) -> None:
    def outcome(verify: Callable[[], jws.VerifiedJws]) -> object:
        try:
            verified = verify()
        except jws.JwsError as err:
            return err.reason
        return (verified.header, verified.payload, verified.key)

    whole = outcome(lambda: jws.verify(token, [_JWK]))
    refused_on_reading: str | None = None
    try:
        parsed = jws.parse(token)
    except jws.JwsError as err:
        refused_on_reading = err.reason
    if refused_on_reading is not None:  # refused as soon as it is read, for the same reason
        assert (refused_on_reading, whole) == (reason, reason)
        return
    assert parsed.header == jws.unverified_header(token)
    assert outcome(lambda: jws.verify(parsed, [_JWK])) == whole
    if reason is None:
        assert whole == (parsed.header, _PAYLOAD, _JWK)
    else:
        assert whole == reason
