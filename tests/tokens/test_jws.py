"""tokens/jws.py: the fast base64url segment check and the parsed-key cache."""

from __future__ import annotations

import json
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm
from jwt.exceptions import DecodeError

from zerolane.tokens import jws

# the base64url segment check (a regular expression instead of PyJWT's per-character loop)

_SEGMENT_BYTES = st.binary(max_size=40) | st.text(
    alphabet="ABCXYZabcxyz0189-_=+/.! \n", max_size=40
).map(str.encode)


def _outcome(decode: Callable[[bytes, str], bytes], segment: bytes) -> bytes | None:
    try:
        return decode(segment, "payload")
    except DecodeError:
        return None


@given(_SEGMENT_BYTES)
def test_segments_are_accepted_and_decoded_exactly_as_pyjwt_does(segment: bytes) -> None:
    ours = _outcome(jws._Jws._decode_base64url_segment, segment)
    theirs = _outcome(jwt.PyJWS._decode_base64url_segment, segment)
    assert ours == theirs


@pytest.mark.parametrize(
    ("segment", "decoded"),
    [
        (b"eyJhIjoxfQ", b'{"a":1}'),
        (b"eyJhIjoxfQ==", b'{"a":1}'),  # trailing padding, as some issuers send
        (b"", b""),
        (b"eyJhIjoxfQ=", None),  # padding where the length does not need it
        (b"eyJhIjoxfQ===", None),
        (b"eyJhIjox+Q", None),  # base64 (not base64url) alphabet
        (b"eyJhIjoxfR", None),  # non-canonical trailing bits
        (b"a", None),
        (b"!!!!", None),
        (b"eyJhIjoxfQ\n", None),
    ],
)
def test_segment_table(segment: bytes, decoded: bytes | None) -> None:
    assert _outcome(jws._Jws._decode_base64url_segment, segment) == decoded
    assert _outcome(jwt.PyJWS._decode_base64url_segment, segment) == decoded


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


# a JWS parsed once and handed on is verified exactly as its compact form

_KEY = ec.generate_private_key(ec.SECP256R1())
_JWK = {**json.loads(ECAlgorithm.to_jwk(_KEY.public_key())), "kid": "k1"}
_STRANGER = ec.generate_private_key(ec.SECP256R1())
_PAYLOAD = b'{"sub":"x"}'


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


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
        (_signed(b64=False), "jws.malformed"),  # PyJWT: a b64=false payload is detached
        (_detached(_signed(b64=False)), "jws.b64"),
        (_signed() + "!", "jws.malformed"),
        ("a.b", "jws.malformed"),
        (jwt.encode({"sub": "x"}, None, algorithm="none"), "jws.algorithm"),
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
    if reason == "jws.malformed":
        with pytest.raises(jws.JwsError) as refused:
            jws.parse(token)
        assert (refused.value.reason, whole) == ("jws.malformed", reason)
        return
    parsed = jws.parse(token)
    assert parsed.header == jws.unverified_header(token)
    assert outcome(lambda: jws.verify(parsed, [_JWK])) == whole
    if reason is None:
        assert whole == (parsed.header, _PAYLOAD, _JWK)
    else:
        assert whole == reason
