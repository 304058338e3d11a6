"""DPoP proofs (RFC 9449): an attack table where every refused proof has an accepted twin."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm

from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.store.memory.replay import MemoryReplayCache
from zerolane.tokens.rfc7638 import b64url, thumbprint
from zerolane.tokens.rfc9449 import (
    DpopError,
    access_token_hash,
    make_proof,
    normalize_htu,
    proof_jwk,
    verify_proof,
)

NOW = 1_800_000_000
URL = "https://gw.example/v1/items?page=2"
TOKEN = "task-token-value"
CLIENT = ec.generate_private_key(ec.SECP256R1())
STRANGER = ec.generate_private_key(ec.SECP256R1())
JKT = thumbprint(proof_jwk(CLIENT))


def proof(key: Any = CLIENT, **kwargs: Any) -> str:
    args: dict[str, Any] = {"method": "POST", "url": URL, "access_token": TOKEN, "iat": NOW}
    return make_proof(key, **(args | kwargs))


def verify(token: str, replay: MemoryReplayCache | None = None, **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "method": "POST",
        "url": URL,
        "access_token": TOKEN,
        "now": float(NOW),
        "expected_jkt": JKT,
        "replay": replay if replay is not None else MemoryReplayCache(),
    }
    return verify_proof(token, **(args | kwargs))


def raw(claims: dict[str, Any], *, key: Any = CLIENT, alg: str = "ES256", **header: Any) -> str:
    """A proof with hand-picked claims and header, signed by ``key``."""
    headers = {"typ": "dpop+jwt", "jwk": proof_jwk(CLIENT), **header}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def good_claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "jti": "j-1",
        "htm": "POST",
        "htu": "https://gw.example/v1/items",
        "iat": NOW,
        "ath": access_token_hash(TOKEN),
    }
    return {k: v for k, v in (base | overrides).items() if v is not None}


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    part = [b64url(json.dumps(x).encode()) for x in (header, claims)]
    return f"{part[0]}.{part[1]}."


def hs256_with_public_key() -> str:
    """HMAC keyed with the client's public JWK: the classic algorithm confusion."""
    jwk = proof_jwk(CLIENT)
    signing_input = unsigned({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}, good_claims())[:-1]
    secret = json.dumps(jwk).encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def es384_proof() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return raw(good_claims(), key=key, alg="ES384", jwk=jwk)


@dataclass(frozen=True)
class Attack:
    name: str
    reason: str
    #: (proof, verify overrides) for the attack and for its legitimate twin
    attack: Callable[[], tuple[str, dict[str, Any]]]
    twin: Callable[[], tuple[str, dict[str, Any]]]


def plain() -> tuple[str, dict[str, Any]]:
    return proof(), {}


ATTACKS = [
    Attack("another method", "dpop.htm", lambda: (proof(method="GET"), {}), plain),
    Attack(
        "method compared after uppercasing the expected one",
        "dpop.htm",
        lambda: (proof(), {"method": "PUT"}),
        lambda: (proof(), {"method": "post"}),
    ),
    Attack(
        "another path",
        "dpop.htu",
        lambda: (proof(url="https://gw.example/v1/admin"), {}),
        lambda: (proof(url="https://gw.example/v1/items?page=99#top"), {}),
    ),
    Attack(
        "another host",
        "dpop.htu",
        lambda: (proof(url="https://evil.example/v1/items"), {}),
        lambda: (proof(url="https://GW.Example:443/v1/items"), {}),
    ),
    Attack(
        "another scheme",
        "dpop.htu",
        lambda: (proof(url="http://gw.example/v1/items"), {}),
        lambda: (proof(url="HTTPS://gw.example/v1/items"), {}),
    ),
    Attack(
        "another port",
        "dpop.htu",
        lambda: (proof(url="https://gw.example:8443/v1/items"), {}),
        lambda: (
            proof(url="https://gw.example:8443/v1/items"),
            {"url": "https://gw.example:8443/v1/items?a"},
        ),
    ),
    Attack(
        "path case is significant",
        "dpop.htu",
        lambda: (proof(url="https://gw.example/V1/Items"), {}),
        plain,
    ),
    Attack(
        "iat too old",
        "dpop.iat",
        lambda: (proof(iat=NOW - 61), {}),
        lambda: (proof(iat=NOW - 59), {}),
    ),
    Attack(
        "iat at the window's end (the replay cache forgets the jti then)",
        "dpop.iat",
        lambda: (proof(iat=NOW - 60), {}),
        lambda: (proof(iat=NOW - 59), {}),
    ),
    Attack(
        "iat in the future",
        "dpop.iat",
        lambda: (proof(iat=NOW + 61), {}),
        lambda: (proof(iat=NOW + 60), {}),
    ),
    Attack(
        "signed by another key than its header jwk",
        "dpop.signature",
        lambda: (raw(good_claims(), key=STRANGER), {}),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "jwk with the private member d",
        "dpop.jwk",
        lambda: (raw(good_claims(), jwk=ECAlgorithm.to_jwk(CLIENT, as_dict=True)), {}),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "no jwk header",
        "dpop.jwk",
        lambda: (raw(good_claims(), jwk=None), {}),
        lambda: (raw(good_claims(), kid="client-key-1"), {}),
    ),
    Attack(
        "jwk that is not on the curve",
        "dpop.jwk",
        lambda: (raw(good_claims(), jwk={**proof_jwk(CLIENT), "y": proof_jwk(STRANGER)["y"]}), {}),
        lambda: (raw(good_claims(), jwk={**proof_jwk(CLIENT), "use": "sig"}), {}),
    ),
    Attack(
        "P-384 jwk under ES256",
        "dpop.jwk",
        lambda: (raw(good_claims(), jwk=proof_jwk(CLIENT) | {"crv": "P-384"}), {}),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "alg none",
        "dpop.alg",
        lambda: (
            unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": proof_jwk(CLIENT)}, good_claims()),
            {},
        ),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "HS256 with the public key as secret",
        "dpop.alg",
        lambda: (hs256_with_public_key(), {}),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "ES384 (not a DPoP algorithm here)",
        "dpop.alg",
        lambda: (es384_proof(), {}),
        lambda: (proof(ed25519.Ed25519PrivateKey.generate()), {"expected_jkt": None}),
    ),
    Attack(
        "RS256",
        "dpop.alg",
        lambda: (raw(good_claims(), key=rsa.generate_private_key(65537, 2048), alg="RS256"), {}),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "typ JWT",
        "dpop.typ",
        lambda: (raw(good_claims(), typ="JWT"), {}),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "missing ath with an access token",
        "dpop.ath",
        lambda: (proof(access_token=None), {}),
        lambda: (proof(access_token=None), {"access_token": None}),
    ),
    Attack(
        "ath of another token",
        "dpop.ath",
        lambda: (proof(access_token="another-token"), {}),
        plain,
    ),
    Attack(
        "ath that is not ASCII",
        "dpop.ath",
        lambda: (raw(good_claims(ath="é" * 43)), {}),
        lambda: (raw(good_claims()), {}),
    ),
    Attack(
        "proof key is not the token's bound key",
        "dpop.key_mismatch",
        lambda: (proof(STRANGER), {}),
        lambda: (proof(STRANGER), {"expected_jkt": thumbprint(proof_jwk(STRANGER))}),
    ),
    Attack("missing jti", "dpop.claims", lambda: (raw(good_claims(jti=None)), {}), plain),
    Attack("numeric jti", "dpop.claims", lambda: (raw(good_claims(jti=7)), {}), plain),
    Attack(
        "overlong jti",
        "dpop.claims",
        lambda: (raw(good_claims(jti="j" * 257)), {}),
        lambda: (raw(good_claims(jti="j" * 256)), {}),
    ),
    Attack("missing htm", "dpop.claims", lambda: (raw(good_claims(htm=None)), {}), plain),
    Attack("missing htu", "dpop.claims", lambda: (raw(good_claims(htu=None)), {}), plain),
    Attack(
        "string iat",
        "dpop.claims",
        lambda: (raw(good_claims(iat=str(NOW))), {}),
        lambda: (raw(good_claims(iat=NOW + 0.5)), {}),
    ),
    Attack("boolean iat", "dpop.claims", lambda: (raw(good_claims(iat=True)), {}), plain),
    Attack(
        "htu that is not http(s)",
        "dpop.htu",
        lambda: (raw(good_claims(htu="ftp://gw.example/v1/items")), {}),
        plain,
    ),
    Attack("not a JWS", "dpop.malformed", lambda: ("not-a-proof", {}), plain),
    Attack(
        "oversized proof",
        "dpop.malformed",
        lambda: (raw(good_claims(pad="x" * 8200)), {}),
        lambda: (raw(good_claims(pad="x" * 5000)), {}),
    ),
    Attack(
        "claims that are not an object",
        "dpop.malformed",
        lambda: (
            jwt.api_jws.encode(
                b"[1]",
                CLIENT,
                algorithm="ES256",
                headers={"typ": "dpop+jwt", "jwk": proof_jwk(CLIENT)},
            ),
            {},
        ),
        plain,
    ),
]


@pytest.mark.parametrize("case", ATTACKS, ids=lambda c: c.name)
def test_attack_refused_and_twin_accepted(case: Attack) -> None:
    token, overrides = case.attack()
    with pytest.raises(DpopError) as refused:
        verify(token, **overrides)
    assert refused.value.reason == case.reason
    assert isinstance(refused.value, Unauthenticated)
    token, overrides = case.twin()
    assert verify(token, **overrides).jti


@pytest.mark.parametrize(
    "key", [CLIENT, ed25519.Ed25519PrivateKey.generate()], ids=["ES256", "EdDSA"]
)
def test_round_trip(key: Any) -> None:
    made = make_proof(
        key, method="delete", url="https://GW.example:443/v1/x?q=1#f", access_token=TOKEN
    )
    header = jwt.get_unverified_header(made)
    assert header["typ"] == "dpop+jwt"
    assert header["alg"] == ("ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA")
    assert "d" not in header["jwk"]
    claims = jwt.decode(made, options={"verify_signature": False})
    assert claims["htu"] == "https://gw.example/v1/x"
    assert claims["htm"] == "DELETE"
    assert claims["ath"] == access_token_hash(TOKEN)
    assert len(base64.urlsafe_b64decode(claims["jti"] + "==")) >= 16
    jkt = thumbprint(proof_jwk(key))
    verified = verify(
        made,
        method="DELETE",
        url="https://gw.example/v1/x",
        now=float(claims["iat"]),
        expected_jkt=jkt,
    )
    assert verified.jkt == jkt
    assert (verified.htm, verified.htu, verified.iat) == (
        "DELETE",
        "https://gw.example/v1/x",
        claims["iat"],
    )


def test_proofs_have_fresh_jtis_and_carry_a_nonce() -> None:
    one, two = (jwt.decode(proof(nonce="n-1"), options={"verify_signature": False}) for _ in "ab")
    assert one["jti"] != two["jti"]
    assert one["nonce"] == "n-1"
    assert "ath" not in jwt.decode(proof(access_token=None), options={"verify_signature": False})


def test_ath_matches_rfc9449_example() -> None:
    # RFC 9449 section 7.1
    assert access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == (
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


def test_each_key_signs_its_own_proofs_among_many() -> None:
    """The signer made ready once per key is never another key's: proofs of many keys,
    made in turn (more keys than the cache holds), each carry and verify under their
    own key, and one key's proof is refused where another's key is expected."""
    keys: list[Any] = [ec.generate_private_key(ec.SECP256R1()) for _ in range(70)]
    keys += [ed25519.Ed25519PrivateKey.generate() for _ in range(3)]
    for _ in range(2):
        for key in keys:
            jkt = thumbprint(proof_jwk(key))
            assert verify(proof(key), expected_jkt=jkt).jkt == jkt
    with pytest.raises(DpopError) as refused:
        verify(proof(keys[1]), expected_jkt=thumbprint(proof_jwk(keys[0])))
    assert refused.value.reason == "dpop.key_mismatch"
    jwk = proof_jwk(CLIENT)
    jwk["x"] = "changed"  # a copy: the next proof still carries the key's own
    assert verify(proof()).jkt == JKT


def test_make_proof_refuses_other_keys() -> None:
    with pytest.raises(InvalidInput) as refused:
        make_proof(ec.generate_private_key(ec.SECP384R1()), method="GET", url=URL)
    assert refused.value.reason == "dpop.key"


# Replay: the jti is spent only by a proof that passed every other check.


def test_replayed_proof_refused_fresh_one_accepted() -> None:
    replay = MemoryReplayCache()
    used = proof()
    verify(used, replay)
    with pytest.raises(DpopError) as refused:
        verify(used, replay)
    assert refused.value.reason == "dpop.replayed"
    assert verify(proof(), replay).jti  # a fresh proof from the same key


def test_replay_is_per_key() -> None:
    replay = MemoryReplayCache()
    verify(proof(jti="shared"), replay)
    stranger_jkt = thumbprint(proof_jwk(STRANGER))
    assert verify(proof(STRANGER, jti="shared"), replay, expected_jkt=stranger_jkt).jti == "shared"


def test_failed_proof_does_not_consume_its_jti() -> None:
    replay = MemoryReplayCache()
    failures = [
        (proof(jti="once", url="https://gw.example/other"), {}),
        (proof(jti="once", method="GET"), {}),
        (proof(jti="once"), {"expected_jkt": thumbprint(proof_jwk(STRANGER))}),
        (proof(jti="once", access_token="another"), {}),
    ]
    for token, overrides in failures:
        with pytest.raises(DpopError):
            verify(token, replay, **overrides)
    assert len(replay) == 0
    assert verify(proof(jti="once"), replay).jti == "once"
    with pytest.raises(DpopError) as refused:
        verify(proof(jti="once"), replay)
    assert refused.value.reason == "dpop.replayed"


def test_replay_cache_full_fails_closed() -> None:
    replay = MemoryReplayCache(capacity=1)
    verify(proof(), replay)
    with pytest.raises(DpopError) as refused:
        verify(proof(), replay)
    assert refused.value.reason == "dpop.replayed"
    # once the first proof's window has passed its id is evicted and room returns
    later = NOW + 60
    assert verify(proof(iat=later), replay, now=float(later)).jti


def test_replayed_after_the_window_is_still_refused() -> None:
    replay = MemoryReplayCache()
    used = proof()
    verify(used, replay)
    for now in (NOW + 30, NOW + 59.9, NOW + 60, NOW + 600):
        with pytest.raises(DpopError) as refused:
            verify(used, replay, now=float(now))
        assert refused.value.reason in ("dpop.replayed", "dpop.iat")


# htu normalization (RFC 9449 section 4.3, RFC 3986 section 6.2)


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://gw.example/v1/items", "https://gw.example/v1/items"),
        ("https://gw.example/v1/items?a=1#frag", "https://gw.example/v1/items"),
        ("HTTPS://GW.Example/v1/Items", "https://gw.example/v1/Items"),
        ("https://gw.example:443/x", "https://gw.example/x"),
        ("http://gw.example:80/x", "http://gw.example/x"),
        ("https://gw.example:80/x", "https://gw.example:80/x"),
        ("http://gw.example:443/x", "http://gw.example:443/x"),
        ("https://gw.example:8443/x", "https://gw.example:8443/x"),
        ("https://gw.example", "https://gw.example/"),
        ("https://gw.example?x", "https://gw.example/"),
        ("http://127.0.0.1:8080/a/%2F/b", "http://127.0.0.1:8080/a/%2F/b"),
        ("http://[::1]:80/a", "http://[::1]/a"),
        ("http://[0:0::1]:8080/", "http://[::1]:8080/"),
        ("https://gw.example/a/../b", "https://gw.example/a/../b"),
    ],
)
def test_normalize_htu(url: str, normalized: str) -> None:
    assert normalize_htu(url) == normalized


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://gw.example/x",
        "gw.example/x",
        "//gw.example/x",
        "https:///x",
        "https://user:pw@gw.example/x",
        "https://user@gw.example/x",
        "https://gw.example:99999/x",
        "https://gw.example:port/x",
        "https://gw example/x",
        "https://gw.example/x\n",
        "https://gw.example/\tx",
        "https://gw.exämple/x",
        "https://[::g]/x",
        "https://gw\\.example/x",
    ],
)
def test_normalize_htu_refuses(url: str) -> None:
    with pytest.raises(DpopError) as refused:
        normalize_htu(url)
    assert refused.value.reason == "dpop.htu"
