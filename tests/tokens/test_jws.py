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
