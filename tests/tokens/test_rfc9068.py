"""Task tokens (RFC 9068 JWT access tokens): round trip, and every refusal with its twin."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.attestors.cases import FixedClock
from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.identity.keyring import Keyring
from zerolane.tokens import jws
from zerolane.tokens.rfc7638 import b64url
from zerolane.tokens.rfc9068 import (
    TaskTokenClaims,
    TaskTokenVerifier,
    TokenError,
    issue_task_token,
    verify_task_token,
)

ISSUER = "spiffe://example.org"
GATEWAY = "spiffe://example.org/gateway"
AGENT = "spiffe://example.org/agent"
NOW = 1_800_000_000
DETAILS = (
    {
        "type": "zerolane_task",
        "actions": ["read"],
        "locations": ["https://api.example/v1/reports/*"],
        "datatypes": ["internal"],
    },
)
CLAIMS = TaskTokenClaims(
    issuer=ISSUER,
    subject=AGENT,
    audience=(GATEWAY, "spiffe://example.org/mcp"),
    issued_at=NOW,
    not_before=NOW,
    expires_at=NOW + 300,
    jti="t-1",
    jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
    task_id="task-1",
    authorization_details=DETAILS,
)
ACT = {"sub": "spiffe://example.org/helper", "act": {"sub": AGENT}}
X5T = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"  # RFC 8705 section 3.1's example


@dataclass
class World:
    keyring: Keyring
    other_domain: Keyring
    key: ec.EllipticCurvePrivateKey
    clock: FixedClock

    def keys(self) -> list[dict[str, str]]:
        return self.keyring.public_keys()

    def issue(self, claims: TaskTokenClaims = CLAIMS) -> str:
        return issue_task_token(self.keyring.sign, claims)

    def sign(self, claims: dict[str, Any], *, key: Any = None, **header: Any) -> str:
        """Sign arbitrary claims with the trust domain's key (or ``key``) and header."""
        headers = {"kid": self.keyring.active_kid(), "typ": "at+jwt", **header}
        headers = {k: v for k, v in headers.items() if v is not None}
        payload = json.dumps(claims).encode()  # as is: PyJWT's encode would check claims
        return jwt.api_jws.encode(payload, key or self.key, algorithm="ES256", headers=headers)


@pytest.fixture
def world(tmp_path: Path) -> World:
    clock = FixedClock(NOW)
    rings = []
    for name in ("home", "other"):
        ring = Keyring(tmp_path / name / "keys", clock)
        ring.create()
        rings.append(ring)
    pem = (tmp_path / "home" / "keys" / f"{rings[0].active_kid()}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return World(rings[0], rings[1], key, clock)


def verify(world: World, token: str, **kwargs: Any) -> TaskTokenClaims:
    args: dict[str, Any] = {"issuer": ISSUER, "audience": GATEWAY, "now": float(NOW)}
    keys = kwargs.pop("keys", world.keys())
    return verify_task_token(token, keys, **(args | kwargs))


def body(**overrides: Any) -> dict[str, Any]:
    claims = CLAIMS.to_claims() | overrides
    return {k: v for k, v in claims.items() if v is not None}


def test_round_trip_root_task(world: World) -> None:
    token = world.issue()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": world.keyring.active_kid(), "typ": "at+jwt"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "act" not in claims
    assert claims["client_id"] == AGENT
    assert claims["cnf"] == {"jkt": CLAIMS.jkt}
    assert claims["aud"] == list(CLAIMS.audience)
    assert verify(world, token) == replace(CLAIMS, client_id=AGENT)


def test_round_trip_delegated_task(world: World) -> None:
    child = replace(CLAIMS, subject="spiffe://example.org/helper", act=ACT, client_id="helper")
    token = world.issue(child)
    assert jwt.decode(token, options={"verify_signature": False})["act"] == ACT
    assert verify(world, token) == child


def test_issue_refuses_unbound_or_empty_window(world: World) -> None:
    for bad in (
        replace(CLAIMS, jkt=""),
        replace(CLAIMS, audience=()),
        replace(CLAIMS, expires_at=NOW),
    ):
        with pytest.raises(InvalidInput) as refused:
            world.issue(bad)
        assert refused.value.reason == "token.claims"


def tampered(world: World) -> str:
    header, _, signature = world.issue().split(".")
    payload = b64url(json.dumps(body(authorization_details=[{"type": "admin"}])).encode())
    return f"{header}.{payload}.{signature}"


def forged_kid(world: World) -> str:
    """Signed by a key nobody published, under the real key's kid."""
    return world.sign(CLAIMS.to_claims(), key=ec.generate_private_key(ec.SECP256R1()))


@dataclass(frozen=True)
class Attack:
    name: str
    reason: str
    attack: Callable[[World], tuple[str, dict[str, Any]]]
    twin: Callable[[World], tuple[str, dict[str, Any]]]


def plain(world: World) -> tuple[str, dict[str, Any]]:
    return world.issue(), {}


ATTACKS = [
    Attack(
        "another audience",
        "token.audience",
        lambda w: (w.issue(), {"audience": "spiffe://example.org/db"}),
        lambda w: (w.issue(), {"audience": "spiffe://example.org/mcp"}),
    ),
    Attack(
        "aud as a single string",
        "token.audience",
        lambda w: (w.sign(body(aud="x")), {}),
        lambda w: (w.sign(body(aud=GATEWAY)), {}),
    ),
    Attack(
        "another issuer",
        "token.issuer",
        lambda w: (w.issue(), {"issuer": "spiffe://other.org"}),
        plain,
    ),
    Attack(
        "expired beyond the leeway",
        "token.expired",
        lambda w: (w.issue(), {"now": NOW + 305.0}),
        lambda w: (w.issue(), {"now": NOW + 304.9}),
    ),
    Attack(
        "expired with no leeway",
        "token.expired",
        lambda w: (w.issue(), {"now": NOW + 300.0, "leeway": 0}),
        lambda w: (w.issue(), {"now": NOW + 299.0, "leeway": 0}),
    ),
    Attack(
        "nbf in the future",
        "token.not_yet_valid",
        lambda w: (w.issue(replace(CLAIMS, not_before=NOW + 6)), {}),
        lambda w: (w.issue(replace(CLAIMS, not_before=NOW + 5)), {}),
    ),
    Attack(
        "typ JWT",
        "token.typ",
        lambda w: (w.sign(body(), typ="JWT"), {}),
        lambda w: (w.sign(body(), typ="AT+JWT"), {}),
    ),
    Attack(
        "no typ",
        "token.typ",
        lambda w: (w.sign(body(), typ=None), {}),
        lambda w: (w.sign(body(), typ="application/at+jwt"), {}),
    ),
    Attack(
        "typ dpop+jwt (a proof passed as a token)",
        "token.typ",
        lambda w: (w.sign(body(), typ="dpop+jwt"), {}),
        plain,
    ),
    Attack(
        "no cnf",
        "token.unbound",
        lambda w: (w.sign(body(cnf=None)), {}),
        lambda w: (w.sign(body()), {}),
    ),
    Attack(
        "cnf with neither jkt nor x5t#S256",
        "token.unbound",
        lambda w: (w.sign(body(cnf={"x5u": "https://example.org/cert"})), {}),
        plain,
    ),
    Attack(
        "cnf.x5t#S256 not a SHA-256 thumbprint",
        "token.claims",
        lambda w: (w.sign(body(cnf={"x5t#S256": "abc"})), {}),
        lambda w: (w.sign(body(cnf={"x5t#S256": X5T})), {}),
    ),
    Attack(
        "cnf with both jkt and x5t#S256",
        "token.claims",
        lambda w: (w.sign(body(cnf={"jkt": CLAIMS.jkt, "x5t#S256": X5T})), {}),
        lambda w: (w.sign(body(cnf={"jkt": CLAIMS.jkt})), {}),
    ),
    Attack(
        "cnf.jkt not a string", "token.claims", lambda w: (w.sign(body(cnf={"jkt": 1})), {}), plain
    ),
    Attack("tampered payload", "token.signature", lambda w: (tampered(w), {}), plain),
    Attack(
        "signed by an unknown key under a known kid",
        "token.signature",
        lambda w: (forged_kid(w), {}),
        plain,
    ),
    Attack(
        "signed by another trust domain's keyring",
        "token.unknown_key",
        lambda w: (issue_task_token(w.other_domain.sign, CLAIMS), {}),
        lambda w: (
            issue_task_token(w.other_domain.sign, CLAIMS),
            {"keys": w.other_domain.public_keys()},
        ),
    ),
    Attack(
        "verified against an empty key set",
        "token.unknown_key",
        lambda w: (w.issue(), {"keys": []}),
        plain,
    ),
    Attack(
        "alg none",
        "token.signature",
        lambda w: (
            jwt.encode(
                body(),
                "",  # PyJWT's "none" takes no key
                algorithm="none",
                headers={"typ": "at+jwt", "kid": w.keyring.active_kid()},
            ),
            {},
        ),
        plain,
    ),
    Attack("not a JWS", "token.malformed", lambda w: ("a.b", {}), plain),
    Attack(
        "oversized",
        "token.malformed",
        lambda w: (w.sign(body(pad="x" * 33_000)), {}),
        lambda w: (w.sign(body(pad="x" * 20_000)), {}),
    ),
]


def bad_claim(name: str, bad: object) -> Callable[[World], tuple[str, dict[str, Any]]]:
    """The full claims signed with claim ``name`` set to ``bad`` (None: left out)."""

    def attack(w: World) -> tuple[str, dict[str, Any]]:
        return w.sign({**body(), name: bad} if bad is not None else body(**{name: None})), {}

    return attack


# A required claim missing or of the wrong type: token.claims, the full claims accepted.
for name, bad in [
    ("iss", None), ("iss", 1), ("sub", None), ("sub", ""), ("aud", None), ("aud", []), ("aud", [1]),
    ("iat", None), ("iat", "1"), ("nbf", None), ("nbf", NOW + 0.5), ("exp", None), ("exp", True),
    ("exp", 10**400), ("nbf", -1),
    ("jti", None), ("task", None), ("task", 7), ("authorization_details", None),
    ("authorization_details", {"type": "x"}), ("authorization_details", ["x"]),
    ("authorization_details", [{"actions": ["read"]}]), ("authorization_details", [{"type": 1}]),
    ("act", "agent"), ("act", {"act": {"sub": AGENT}}), ("act", {"sub": AGENT, "act": {"sub": 1}}),
    ("client_id", 5), ("cnf", "jkt"),
]:  # fmt: skip
    ATTACKS.append(
        Attack(
            f"{name}={bad!r}",
            "token.claims",
            bad_claim(name, bad),
            lambda w: (w.sign(body()), {}),
        )
    )


@pytest.mark.parametrize("case", ATTACKS, ids=lambda c: c.name)
def test_attack_refused_and_twin_accepted(world: World, case: Attack) -> None:
    token, overrides = case.attack(world)
    with pytest.raises(TokenError) as refused:
        verify(world, token, **overrides)
    assert refused.value.reason == case.reason
    assert isinstance(refused.value, Unauthenticated)
    token, overrides = case.twin(world)
    assert verify(world, token, **overrides).task_id == CLAIMS.task_id


def test_empty_authorization_details_accepted(world: World) -> None:
    assert (
        verify(world, world.issue(replace(CLAIMS, authorization_details=()))).authorization_details
        == ()
    )


# The verified-token cache


class Cached:
    """A TaskTokenVerifier for our issuer and the gateway's audience."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.verifier = TaskTokenVerifier(max_entries=max_entries)

    def __len__(self) -> int:
        return len(self.verifier)

    def verify(
        self, token: str, keys: list[dict[str, str]], *, keys_version: str, now: float, **kw: Any
    ) -> TaskTokenClaims:
        args = {"issuer": ISSUER, "audience": GATEWAY} | kw
        return self.verifier.verify(token, keys, keys_version=keys_version, now=now, **args)


def cached(world: World) -> Cached:
    return Cached()


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The jti of each token whose signature was checked (a cache hit checks none)."""
    checked: list[str] = []
    real = jws.verify

    def counting(token: Any, *args: Any, **kwargs: Any) -> jws.VerifiedJws:
        verified = real(token, *args, **kwargs)
        checked.append(json.loads(verified.payload)["jti"])
        return verified

    monkeypatch.setattr(jws, "verify", counting)
    return checked


def test_cache_returns_the_same_claims(world: World, signature_checks: list[str]) -> None:
    verifier, token = cached(world), world.issue()
    first = verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    assert len(verifier) == 1
    # a hit: the signature is not checked again, the claims are identical
    assert verifier.verify(token, world.keys(), keys_version="1", now=NOW + 10) == first
    assert len(signature_checks) == 1
    assert first == verify(world, token)


def test_cache_hands_out_independent_claims(world: World) -> None:
    verifier, token = cached(world), world.issue(replace(CLAIMS, act=ACT))
    first = verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    first.authorization_details[0]["actions"].append("delete")
    assert first.act is not None
    first.act["sub"] = "spiffe://example.org/mallory"
    again = verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    again.authorization_details[0]["datatypes"].clear()
    third = verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    assert third.authorization_details == DETAILS
    assert third.act == ACT


def test_cached_token_refused_once_expired(world: World, signature_checks: list[str]) -> None:
    verifier, token = cached(world), world.issue()
    verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    with pytest.raises(TokenError) as refused:  # a hit: the clock moved past exp + leeway
        verifier.verify(token, world.keys(), keys_version="1", now=NOW + 305)
    assert refused.value.reason == "token.expired"
    assert verifier.verify(token, world.keys(), keys_version="1", now=NOW + 304.9).jti == "t-1"
    early = world.issue(replace(CLAIMS, not_before=NOW + 100, jti="t-2"))
    verifier.verify(early, world.keys(), keys_version="1", now=NOW + 100)
    with pytest.raises(TokenError) as refused:
        verifier.verify(early, world.keys(), keys_version="1", now=NOW)
    assert refused.value.reason == "token.not_yet_valid"
    assert len(signature_checks) == 2  # the refusals were hits, still refused


def test_another_keys_version_misses_the_cache(world: World) -> None:
    verifier, token = cached(world), world.issue()
    verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    with pytest.raises(TokenError) as refused:  # key set "2" no longer holds the key
        verifier.verify(token, world.other_domain.public_keys(), keys_version="2", now=NOW)
    assert refused.value.reason == "token.unknown_key"
    assert verifier.verify(token, world.keys(), keys_version="1", now=NOW).jti == CLAIMS.jti


def test_a_hit_needs_the_verifying_key_still_given(world: World) -> None:
    verifier, token = cached(world), world.issue()
    verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    for keys in ([], world.other_domain.public_keys()):  # same version, key gone
        with pytest.raises(TokenError) as refused:
            verifier.verify(token, keys, keys_version="1", now=NOW)
        assert refused.value.reason == "token.unknown_key"
    assert len(verifier) == 0
    assert verifier.verify(token, world.keys(), keys_version="1", now=NOW).jti == CLAIMS.jti


def test_a_cached_token_is_refused_once_its_key_is_no_longer_published(
    world: World, signature_checks: list[str]
) -> None:
    """A retired key stops being published by time alone: the keyring's sequence does
    not change, yet a token it signed is refused from then on."""
    verifier, token = cached(world), world.issue()
    keyring, clock = world.keyring, world.clock
    sequence, keys = keyring.published()
    verifier.verify(token, keys, keys_version=str(sequence), now=clock.now())
    keyring.rotate(publish_for=100)
    sequence, keys = keyring.published()  # a new version: a miss, the old key still verifies
    verifier.verify(token, keys, keys_version=str(sequence), now=clock.now())
    clock.t += 99
    assert keyring.published()[0] == sequence
    verifier.verify(token, keyring.public_keys(), keys_version=str(sequence), now=clock.now())
    assert len(signature_checks) == 2
    clock.t += 1  # publish_until: the old key is gone, the token (exp NOW + 300) is not
    assert keyring.published()[0] == sequence
    with pytest.raises(TokenError) as refused:
        verifier.verify(token, keyring.public_keys(), keys_version=str(sequence), now=clock.now())
    assert refused.value.reason == "token.unknown_key"


def test_refusals_are_not_cached(world: World) -> None:
    verifier = cached(world)
    for token in (tampered(world), world.sign(body(cnf=None)), world.sign(body(aud="x"))):
        for _ in range(2):
            with pytest.raises(TokenError):
                verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    assert len(verifier) == 0


def test_cache_is_bounded_lru(world: World, signature_checks: list[str]) -> None:
    verifier = Cached(max_entries=2)
    tokens = [world.issue(replace(CLAIMS, jti=f"t-{i}")) for i in range(3)]
    verifier.verify(tokens[0], world.keys(), keys_version="1", now=NOW)
    verifier.verify(tokens[1], world.keys(), keys_version="1", now=NOW)
    verifier.verify(tokens[0], world.keys(), keys_version="1", now=NOW)  # touch: [1] is oldest
    verifier.verify(tokens[2], world.keys(), keys_version="1", now=NOW)
    assert signature_checks == ["t-0", "t-1", "t-2"]
    assert len(verifier) == 2
    assert verifier.verify(tokens[0], world.keys(), keys_version="1", now=NOW).jti == "t-0"
    assert verifier.verify(tokens[1], world.keys(), keys_version="1", now=NOW).jti == "t-1"
    assert signature_checks[3:] == ["t-1"]  # tokens[1] was evicted; tokens[0] was not
    assert len(verifier) == 2


def test_cache_holds_at_most_max_entries(world: World) -> None:
    verifier = Cached(max_entries=5)
    for i in range(12):
        verifier.verify(
            world.issue(replace(CLAIMS, jti=f"t-{i}")), world.keys(), keys_version="1", now=NOW
        )
        assert len(verifier) == min(i + 1, 5)


def test_cache_hit_checks_issuer_and_audience_again(world: World) -> None:
    verifier, token = cached(world), world.issue()
    verifier.verify(token, world.keys(), keys_version="1", now=NOW)
    with pytest.raises(TokenError) as refused:
        verifier.verify(
            token, world.keys(), keys_version="1", now=NOW, audience="spiffe://example.org/db"
        )
    assert refused.value.reason == "token.audience"
    # the message says which audience was expected, and which the token names
    assert "expected 'spiffe://example.org/db'" in refused.value.message
    assert repr(CLAIMS.audience[0]) in refused.value.message
    with pytest.raises(TokenError) as refused:
        verifier.verify(token, world.keys(), keys_version="1", now=NOW, issuer="spiffe://other.org")
    assert refused.value.reason == "token.issuer"
    mcp = "spiffe://example.org/mcp"
    assert (
        verifier.verify(token, world.keys(), keys_version="1", now=NOW, audience=mcp).jti == "t-1"
    )
