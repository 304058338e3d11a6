"""JWT-SVID issue and verify: the round trip, and every refusal next to its accepted twin."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.attestors.cases import FixedClock
from tests.identity.conftest import AGENT
from zerolane.errors import Unauthenticated
from zerolane.identity import svid
from zerolane.identity.keyring import Keyring, public_jwk
from zerolane.tokens.rfc7638 import b64url, thumbprint

AUD = "spiffe://example.org"


def private_key(keyring: Keyring, keys_dir: Path) -> ec.EllipticCurvePrivateKey:
    pem = (keys_dir / f"{keyring.active_kid()}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def b64json(obj: object) -> str:
    return b64url(json.dumps(obj).encode())


def claims(clock: FixedClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now())
    base: dict[str, Any] = {
        "sub": AGENT,
        "aud": [AUD],
        "iat": now,
        "exp": now + 300,
        "jti": "j1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def verify(
    token: str, keyring: Keyring, clock: FixedClock, audience: str = AUD
) -> svid.VerifiedSvid:
    return svid.verify(token, keyring.public_keys(), audience=audience, clock=clock)


def refused(token: str, keyring: Keyring, clock: FixedClock, audience: str = AUD) -> str:
    with pytest.raises(Unauthenticated) as info:
        verify(token, keyring, clock, audience)
    return info.value.reason


def test_round_trip_without_key_binding(keyring: Keyring, clock: FixedClock) -> None:
    issued = svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD, "api"], ttl=300)
    assert issued.expires_at == issued.issued_at + 300 == int(clock.t) + 300
    assert issued.jkt is None
    verified = verify(issued.token, keyring, clock, audience="api")
    assert verified.spiffe_id == AGENT
    assert verified.audience == (AUD, "api")
    assert verified.expires_at == issued.expires_at
    assert verified.jti == issued.jti
    assert verified.jkt is None
    assert "cnf" not in verified.claims
    assert set(verified.claims) == {"sub", "aud", "iat", "exp", "jti"}


def test_round_trip_with_key_binding(keyring: Keyring, clock: FixedClock) -> None:
    jkt = thumbprint(public_jwk(ec.generate_private_key(ec.SECP256R1())))
    issued = svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD], ttl=60, jkt=jkt)
    verified = verify(issued.token, keyring, clock)
    assert issued.jkt == verified.jkt == jkt
    assert verified.claims["cnf"] == {"jkt": jkt}


def test_issued_headers_are_exactly_alg_kid_typ(keyring: Keyring, clock: FixedClock) -> None:
    issued = svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD], ttl=60)
    assert jwt.get_unverified_header(issued.token) == {
        "alg": "ES256",
        "kid": keyring.active_kid(),
        "typ": "JWT",
    }


def test_jti_is_unique(keyring: Keyring, clock: FixedClock) -> None:
    jtis = {svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD], ttl=60).jti for _ in "abc"}
    assert len(jtis) == 3


def test_wrong_audience_is_refused(keyring: Keyring, clock: FixedClock) -> None:
    token = svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD], ttl=60).token
    assert refused(token, keyring, clock, audience="spiffe://other.org") == "svid.aud"
    assert refused(token, keyring, clock, audience="") == "svid.aud"
    verify(token, keyring, clock, audience=AUD)


@pytest.mark.parametrize("aud", [None, [], [1], 5, [AUD, None]])
def test_missing_or_malformed_audience_is_refused(
    keyring: Keyring, clock: FixedClock, aud: object
) -> None:
    assert refused(keyring.sign(claims(clock, aud=aud)), keyring, clock) == "svid.aud"


def test_single_string_audience_is_accepted(keyring: Keyring, clock: FixedClock) -> None:
    assert verify(keyring.sign(claims(clock, aud=AUD)), keyring, clock).audience == (AUD,)


def test_expiry_allows_five_seconds_of_leeway_and_no_more(
    keyring: Keyring, clock: FixedClock
) -> None:
    issued = svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD], ttl=60)
    clock.t = issued.expires_at
    verify(issued.token, keyring, clock)
    clock.t = issued.expires_at + svid.LEEWAY - 0.01
    verify(issued.token, keyring, clock)
    clock.t = issued.expires_at + svid.LEEWAY
    assert refused(issued.token, keyring, clock) == "svid.expired"
    clock.t = issued.expires_at + 3600
    assert refused(issued.token, keyring, clock) == "svid.expired"


@pytest.mark.parametrize("exp", [None, "soon", True])
def test_missing_or_malformed_expiry_is_refused(
    keyring: Keyring, clock: FixedClock, exp: object
) -> None:
    assert refused(keyring.sign(claims(clock, exp=exp)), keyring, clock) == "svid.exp"


def test_issued_in_the_future_is_refused(keyring: Keyring, clock: FixedClock) -> None:
    now = int(clock.t)
    token = keyring.sign(claims(clock, iat=now + 60, exp=now + 360))
    assert refused(token, keyring, clock) == "svid.iat"
    verify(keyring.sign(claims(clock, iat=now + 5, exp=now + 360)), keyring, clock)


def test_extra_header_member_is_refused(
    keyring: Keyring, clock: FixedClock, keys_dir: Path
) -> None:
    key = private_key(keyring, keys_dir)
    kid = keyring.active_kid()
    body = claims(clock)
    extra = jwt.encode(body, key, algorithm="ES256", headers={"kid": kid, "x5u": "https://x"})
    assert refused(extra, keyring, clock) == "svid.header"
    plain = jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})
    verify(plain, keyring, clock)


def test_crit_header_is_refused(keyring: Keyring, clock: FixedClock, keys_dir: Path) -> None:
    key = private_key(keyring, keys_dir)
    token = jwt.encode(
        claims(clock),
        key,
        algorithm="ES256",
        headers={"kid": keyring.active_kid(), "crit": ["exp"]},
    )
    with pytest.raises(Unauthenticated):
        verify(token, keyring, clock)


@pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "jwt", "JWS"])
def test_typ_other_than_jwt_or_jose_is_refused(
    keyring: Keyring, clock: FixedClock, typ: str
) -> None:
    assert refused(keyring.sign(claims(clock), typ=typ), keyring, clock) == "svid.typ"


@pytest.mark.parametrize("typ", ["JWT", "JOSE"])
def test_typ_jwt_and_jose_are_accepted(keyring: Keyring, clock: FixedClock, typ: str) -> None:
    verify(keyring.sign(claims(clock), typ=typ), keyring, clock)


def test_absent_typ_is_accepted(keyring: Keyring, clock: FixedClock, keys_dir: Path) -> None:
    key = private_key(keyring, keys_dir)
    token = jwt.encode(
        claims(clock), key, algorithm="ES256", headers={"kid": keyring.active_kid(), "typ": None}
    )
    assert "typ" not in jwt.get_unverified_header(token)
    verify(token, keyring, clock)


def test_unknown_kid_is_refused(keyring: Keyring, clock: FixedClock, keys_dir: Path) -> None:
    key = private_key(keyring, keys_dir)
    token = jwt.encode(claims(clock), key, algorithm="ES256", headers={"kid": "not-our-key"})
    assert refused(token, keyring, clock) == "jws.unknown_key"


def test_token_from_another_keyring_is_refused(
    keyring: Keyring, clock: FixedClock, tmp_path: Path
) -> None:
    stranger = Keyring(tmp_path / "stranger", clock)
    stranger.create()
    token = svid.issue(stranger, clock, spiffe_id=AGENT, audience=[AUD], ttl=60).token
    assert refused(token, keyring, clock) == "jws.unknown_key"
    verify(token, stranger, clock)


def test_foreign_key_under_our_kid_is_refused(keyring: Keyring, clock: FixedClock) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        claims(clock), forger, algorithm="ES256", headers={"kid": keyring.active_kid()}
    )
    assert refused(token, keyring, clock) == "jws.signature"


def test_tampered_payload_is_refused(keyring: Keyring, clock: FixedClock) -> None:
    token = svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD], ttl=60).token
    header, payload, signature = token.split(".")
    padded = payload + "=" * (-len(payload) % 4)
    body = json.loads(base64.urlsafe_b64decode(padded))
    body["sub"] = "spiffe://example.org/admin"
    assert refused(f"{header}.{b64json(body)}.{signature}", keyring, clock) == "jws.signature"
    verify(token, keyring, clock)


def test_alg_none_is_refused(keyring: Keyring, clock: FixedClock) -> None:
    token = jwt.encode(claims(clock), "", algorithm="none", headers={"kid": keyring.active_kid()})
    assert refused(token, keyring, clock) == "jws.algorithm"


def test_hmac_with_the_public_key_is_refused(keyring: Keyring, clock: FixedClock) -> None:
    # the classic confusion: sign HS256 with the published public key as the secret
    [published] = keyring.public_keys()
    header = {"alg": "HS256", "kid": keyring.active_kid(), "typ": "JWT"}
    signing_input = f"{b64json(header)}.{b64json(claims(clock))}"
    mac = hmac.new(json.dumps(published).encode(), signing_input.encode(), hashlib.sha256)
    token = f"{signing_input}.{b64url(mac.digest())}"
    assert refused(token, keyring, clock) == "jws.algorithm"


@pytest.mark.parametrize(
    "sub",
    [
        "spiffe://example.org",
        "spiffe://example.org/",
        "spiffe://Example.org/agent",
        "https://example.org/agent",
        "agent",
        "",
        None,
        42,
    ],
)
def test_subject_must_be_a_workload_spiffe_id(
    keyring: Keyring, clock: FixedClock, sub: object
) -> None:
    assert refused(keyring.sign(claims(clock, sub=sub)), keyring, clock) == "svid.sub"


def test_claims_that_are_not_an_object_are_refused(
    keyring: Keyring, clock: FixedClock, keys_dir: Path
) -> None:
    key = private_key(keyring, keys_dir)
    token = jwt.api_jws.encode(
        b'["not", "an", "object"]', key, algorithm="ES256", headers={"kid": keyring.active_kid()}
    )
    assert refused(token, keyring, clock) == "svid.claims"


def test_old_key_svid_verifies_until_the_key_is_unpublished(
    keyring: Keyring, clock: FixedClock
) -> None:
    issued = svid.issue(keyring, clock, spiffe_id=AGENT, audience=[AUD], ttl=60)
    keyring.rotate(publish_for=60)
    verify(issued.token, keyring, clock)
    clock.t += 60
    assert refused(issued.token, keyring, clock) == "jws.unknown_key"
