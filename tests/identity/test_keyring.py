"""The signing keyring: private files, RFC 7638 key ids, rotation and publication."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.attestors.cases import FixedClock
from zerolane.errors import InvalidInput, Unavailable
from zerolane.identity.keyring import RECHECK_EVERY, Keyring, public_jwk
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9068 import TaskTokenClaims, issue_task_token

PUBLIC_MEMBERS = {"kty", "crv", "x", "y", "kid", "alg"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def load_key(keys_dir: Path, kid: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((keys_dir / f"{kid}.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def verify_with_published(token: str, keyring: Keyring) -> dict[str, object]:
    kid = jwt.get_unverified_header(token)["kid"]
    [jwk] = [k for k in keyring.public_keys() if k["kid"] == kid]
    key = jwt.PyJWK(jwk).key
    claims: dict[str, object] = jwt.decode(
        token, key, algorithms=["ES256"], audience="spiffe://example.org"
    )
    return claims


def test_create_writes_private_files(keys_dir: Path, clock: FixedClock) -> None:
    kid = Keyring(keys_dir, clock).create()
    assert mode(keys_dir) == 0o700
    assert mode(keys_dir / f"{kid}.pem") == 0o600
    assert mode(keys_dir / "keyring.json") == 0o600
    assert sorted(p.name for p in keys_dir.iterdir()) == sorted([f"{kid}.pem", "keyring.json"])


def test_kid_is_the_rfc7638_thumbprint_of_the_public_key(keyring: Keyring, keys_dir: Path) -> None:
    kid = keyring.active_kid()
    key = load_key(keys_dir, kid)
    assert kid == thumbprint(public_jwk(key))
    [published] = keyring.public_keys()
    assert published["kid"] == kid
    assert thumbprint(published) == kid


def test_manifest_records_the_key(keyring: Keyring, clock: FixedClock) -> None:
    doc = json.loads(keyring.manifest_path.read_text())
    assert doc["active"] == keyring.active_kid()
    assert doc["sequence"] == keyring.sequence() == 1
    [info] = keyring.infos()
    assert (info.kid, info.alg, info.created_at) == (doc["active"], "ES256", clock.t)
    assert info.retired_at is None
    assert info.publish_until is None


def test_create_twice_is_refused(keyring: Keyring, keys_dir: Path, clock: FixedClock) -> None:
    kid = keyring.active_kid()
    pem = (keys_dir / f"{kid}.pem").read_bytes()
    with pytest.raises(InvalidInput) as info:
        Keyring(keys_dir, clock).create()
    assert info.value.reason == "keys.exist"
    # the existing key is untouched and still signs
    assert (keys_dir / f"{kid}.pem").read_bytes() == pem
    assert sorted(p.name for p in keys_dir.iterdir()) == sorted([f"{kid}.pem", "keyring.json"])
    assert jwt.get_unverified_header(keyring.sign({"sub": "x"}))["kid"] == kid


def test_signed_token_verifies_with_the_published_key(keyring: Keyring) -> None:
    token = keyring.sign({"sub": "spiffe://example.org/agent", "aud": ["spiffe://example.org"]})
    claims = verify_with_published(token, keyring)
    assert claims["sub"] == "spiffe://example.org/agent"


def test_headers_are_exactly_alg_kid_typ(keyring: Keyring) -> None:
    assert jwt.get_unverified_header(keyring.sign({"sub": "x"})) == {
        "alg": "ES256",
        "kid": keyring.active_kid(),
        "typ": "JWT",
    }
    assert jwt.get_unverified_header(keyring.sign({"sub": "x"}, typ="JOSE"))["typ"] == "JOSE"


def _pyjwt_sign(keys_dir: Path, kid: str) -> Callable[[dict[str, Any], str], str]:
    """How Keyring.sign signed until issue 11 (PyJWT), with the same key."""
    key = load_key(keys_dir, kid)
    return lambda claims, typ: jwt.encode(
        claims, key, algorithm="ES256", headers={"kid": kid, "typ": typ}
    )


def _task_token_claims(clock: FixedClock, **changes: Any) -> TaskTokenClaims:
    now = int(clock.now())
    claims = TaskTokenClaims(
        issuer="spiffe://example.org",
        subject="spiffe://example.org/agent/reporter",
        audience=("https://finance.example.org", "https://wiki.example.org"),
        issued_at=now,
        not_before=now,
        expires_at=now + 900,
        jti="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        jkt="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        task_id="task_3f2a",
        authorization_details=(
            {"type": "zerolane_task", "actions": ["read"], "locations": ["reports/*"]},
            {"type": "zerolane_task", "purpose": "Résumé trimestriel ☃", "limit": 2.5},
        ),
    )
    return replace(claims, **changes)


def test_tokens_are_written_byte_for_byte_as_before(
    keyring: Keyring, keys_dir: Path, clock: FixedClock
) -> None:
    """A task token and an SVID have the header and claims segments PyJWT wrote before
    issue 11, byte for byte (sorted header members; compact claims in their order,
    non-ASCII escaped); only the ECDSA signature, random each time, differs. PyJWT
    verifies the new tokens."""
    kid = keyring.active_kid()
    before = _pyjwt_sign(keys_dir, kid)
    delegated = _task_token_claims(
        clock,
        jkt=None,
        x5t="x" * 43,
        act={"sub": "spiffe://example.org/agent/planner"},
        client_id="planner",
    )
    svid_claims: dict[str, Any] = {
        "sub": "spiffe://example.org/agent/reporter",
        "aud": ["spiffe://example.org"],
        "iat": int(clock.now()),
        "exp": int(clock.now()) + 300,
        "jti": "5d1c",
        "cnf": {"jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
    }
    pairs = [
        (issue_task_token(keyring.sign, c), issue_task_token(before, c))
        for c in (_task_token_claims(clock), delegated)
    ]
    pairs.append((keyring.sign(svid_claims), before(svid_claims, "JWT")))
    public = jwt.PyJWK(keyring.public_keys()[0]).key
    signature_only: jwt.types.Options = {
        "verify_aud": False,
        "verify_exp": False,
        "verify_iat": False,
        "verify_nbf": False,
    }
    for now, then in pairs:
        assert now.split(".")[:2] == then.split(".")[:2]
        assert now.split(".")[2] != then.split(".")[2]
        claims = jwt.decode(now, public, algorithms=["ES256"], options=signature_only)
        assert claims == jwt.decode(then, public, algorithms=["ES256"], options=signature_only)
    header = jwt.get_unverified_header(pairs[0][0])
    assert list(header) == ["alg", "kid", "typ"]
    assert header == {"alg": "ES256", "kid": kid, "typ": "at+jwt"}


def test_public_keys_hold_no_private_member(keyring: Keyring) -> None:
    keyring.rotate(publish_for=600)
    keys = keyring.public_keys()
    assert len(keys) == 2
    for jwk in keys:
        assert set(jwk) == PUBLIC_MEMBERS
        assert not PRIVATE_MEMBERS.intersection(jwk)
        assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")


def test_public_keys_are_copies(keyring: Keyring) -> None:
    keyring.public_keys()[0]["d"] = "leaked"
    assert "d" not in keyring.public_keys()[0]


def test_rotation_signs_with_the_new_key_and_keeps_the_old_published(
    keyring: Keyring, clock: FixedClock, keys_dir: Path
) -> None:
    first = keyring.active_kid()
    old_token = keyring.sign({"sub": "x", "aud": ["spiffe://example.org"]})

    clock.t += 10
    old, new = keyring.rotate(publish_for=100)
    assert (old, keyring.active_kid()) == (first, new)
    assert new != first
    assert keyring.sequence() == 2
    new_token = keyring.sign({"sub": "x", "aud": ["spiffe://example.org"]})
    assert jwt.get_unverified_header(new_token)["kid"] == new
    verify_with_published(new_token, keyring)
    verify_with_published(old_token, keyring)  # tokens signed before rotation still verify

    [retired] = [i for i in keyring.infos() if i.kid == first]
    assert (retired.retired_at, retired.publish_until) == (clock.t, clock.t + 100)

    clock.t += 99.5
    assert {k["kid"] for k in keyring.public_keys()} == {first, new}

    clock.t += 0.5  # publish_until reached: no longer published
    assert [k["kid"] for k in keyring.public_keys()] == [new]
    # ... but its file is only pruned by the next rotation
    assert (keys_dir / f"{first}.pem").exists()

    clock.t += 1
    _, newest = keyring.rotate(publish_for=100)
    assert not (keys_dir / f"{first}.pem").exists()
    assert {i.kid for i in keyring.infos()} == {new, newest}
    assert {k["kid"] for k in keyring.public_keys()} == {new, newest}
    assert (keys_dir / f"{new}.pem").exists()


class Ticker:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_another_instance_sees_a_rotation(keyring: Keyring, keys_dir: Path) -> None:
    ticker = Ticker()
    other = Keyring(keys_dir, FixedClock(), monotonic=ticker)  # as another process would
    first = other.active_kid()
    assert first == keyring.active_kid()

    _, new = keyring.rotate(publish_for=100)
    ticker.t += RECHECK_EVERY - 0.01
    assert other.active_kid() == first  # the manifest is not looked at again yet
    ticker.t += 0.01
    assert other.active_kid() == new
    assert other.sequence() == 2
    assert jwt.get_unverified_header(other.sign({"sub": "x"}))["kid"] == new
    assert {k["kid"] for k in other.public_keys()} == {first, new}


def test_rotation_by_another_instance_is_seen_once_rechecked(
    keyring: Keyring, keys_dir: Path
) -> None:
    first = keyring.active_kid()
    _, new = Keyring(keys_dir, FixedClock()).rotate(publish_for=100)
    keyring.recheck()  # what a verifier does for a token naming a key it was not given
    assert keyring.active_kid() == new
    assert {k["kid"] for k in keyring.public_keys()} == {first, new}


def test_a_rotation_here_is_seen_at_once(keys_dir: Path, clock: FixedClock) -> None:
    ring = Keyring(keys_dir, clock, monotonic=Ticker())  # time never moves on
    first = ring.create()
    assert ring.published() == (1, ring.public_keys())
    _, new = ring.rotate(publish_for=100)
    assert ring.active_kid() == new
    sequence, keys = ring.published()
    assert (sequence, {k["kid"] for k in keys}) == (2, {first, new})


def test_the_manifest_is_looked_at_once_per_interval(
    keyring: Keyring, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticker = Ticker()
    ring = Keyring(keys_dir, FixedClock(), monotonic=ticker)
    looks: list[str] = []
    real_stat = os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(path) == ring.manifest_path:
            looks.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(10):
        ring.published()
        ring.sign({"sub": "x"})
    assert len(looks) == 1
    ticker.t += RECHECK_EVERY
    ring.public_keys()
    ring.recheck()  # looks whenever asked
    assert len(looks) == 3


def test_missing_keyring_is_unavailable(keys_dir: Path, clock: FixedClock) -> None:
    ring = Keyring(keys_dir, clock)
    with pytest.raises(Unavailable) as info:
        ring.sign({"sub": "x"})
    assert info.value.reason == "keys.unreadable"
    ring.create()
    ring.sign({"sub": "x"})


def test_corrupt_manifest_is_unavailable(keyring: Keyring, keys_dir: Path) -> None:
    (keys_dir / "keyring.json").write_text("{not json")
    with pytest.raises(Unavailable) as info:
        Keyring(keys_dir, FixedClock()).active_kid()
    assert info.value.reason == "keys.unreadable"


def test_missing_key_file_is_unavailable(keyring: Keyring, keys_dir: Path) -> None:
    (keys_dir / f"{keyring.active_kid()}.pem").unlink()
    with pytest.raises(Unavailable) as info:
        Keyring(keys_dir, FixedClock()).sign({"sub": "x"})
    assert info.value.reason == "keys.unreadable"
