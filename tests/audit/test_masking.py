"""Masking: secrets never reach an audit event, yet stay correlatable by fingerprint."""

from __future__ import annotations

import re

import pytest

from zerolane.audit.masking import fingerprint, mask, mask_value

JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0"
    ".eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9hZ2VudCJ9"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)
PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END..."
MASKED = re.compile(r"^\*\*\*\(sha256:[0-9a-f]{12}\)$")


def is_masked(value: object) -> bool:
    return isinstance(value, str) and bool(MASKED.match(value))


@pytest.mark.parametrize(
    "value",
    [
        JWT,
        f"Bearer {JWT}",
        f"DPoP {JWT} and more text",
        PEM,
        "-----BEGIN EC PRIVATE KEY-----\n...",
    ],
)
def test_secret_shaped_values_are_masked_under_any_key(value: str) -> None:
    masked = mask({"note": value, "list": [value], "deep": {"deeper": [{"x": value}]}})
    assert isinstance(masked, dict)
    assert is_masked(masked["note"])
    assert is_masked(masked["list"][0])
    assert is_masked(masked["deep"]["deeper"][0]["x"])
    assert value not in repr(masked)


def test_a_bare_secret_shaped_string_is_masked() -> None:
    assert is_masked(mask(JWT))
    assert mask("spiffe://example.org/agent") == "spiffe://example.org/agent"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "join_token",
        "access_token",
        "client_secret",
        "password",
        "passwd",
        "credential",
        "Authorization",
        "private_key",
        "client_assertion",
        "jwt",
        "svid",
        "cookie",
        "api_key",
        "api-key",
        "apikey",
        "X-API-KEY",
        "dpop",
        "d",
        "k",
    ],
)
def test_values_under_secret_named_keys_are_masked(key: str) -> None:
    masked = mask({key: "hunter2", "method": "join_token"})
    assert isinstance(masked, dict)
    assert is_masked(masked[key])
    assert masked["method"] == "join_token"


@pytest.mark.parametrize(
    "key", ["kid", "kind", "method", "selectors", "subject", "aud", "x", "id", "dk", "key"]
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert mask({key: "visible"}) == {key: "visible"}


@pytest.mark.parametrize("key", ["token_id", "jti", "svid_id", "svid_kid", "svid_expires_at"])
def test_safe_identifier_keys_are_kept(key: str) -> None:
    assert mask({key: "abc123"}) == {key: "abc123"}


def test_safe_key_still_masks_a_secret_shaped_value() -> None:
    masked = mask({"jti": JWT})
    assert isinstance(masked, dict)
    assert is_masked(masked["jti"])


def test_fingerprints_are_stable_and_distinct() -> None:
    assert fingerprint("s3cret") == fingerprint("s3cret") == fingerprint(b"s3cret")
    assert fingerprint("s3cret") != fingerprint("s3cret!")
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", fingerprint("s3cret"))
    # the same secret under two names correlates
    assert mask({"password": "s3cret"}) == {"password": mask_value("s3cret")}
    assert mask({"token": "s3cret"}) == {"token": mask_value("s3cret")}
    assert mask_value("s3cret") == f"***({fingerprint('s3cret')})"
    assert "s3cret" not in mask_value("s3cret")


def test_nested_structures_are_walked_and_copied() -> None:
    data: dict[str, object] = {
        "outer": {"password": "p", "list": [{"token": "t"}, "plain", 3]},
        "tuple": ("a", JWT),
        "count": 3,
        "flag": True,
        "nothing": None,
    }
    masked = mask(data)
    assert masked == {
        "outer": {"password": mask_value("p"), "list": [{"token": mask_value("t")}, "plain", 3]},
        "tuple": ["a", mask_value(JWT)],
        "count": 3,
        "flag": True,
        "nothing": None,
    }
    # the input is untouched
    assert data["outer"] == {"password": "p", "list": [{"token": "t"}, "plain", 3]}


def test_everything_under_a_secret_key_is_masked_however_nested() -> None:
    masked = mask(
        {
            "client_secret": {"value": "s1", "history": ["s0", {"v": "s-1"}]},
            "tokens": ["t1", "t2"],
            "private_jwk": {"kty": "EC", "crv": "P-256", "d": "secret-scalar"},
        }
    )
    assert masked == {
        "client_secret": {
            "value": mask_value("s1"),
            "history": [mask_value("s0"), {"v": mask_value("s-1")}],
        },
        "tokens": [mask_value("t1"), mask_value("t2")],
        "private_jwk": {
            "kty": mask_value("EC"),
            "crv": mask_value("P-256"),
            "d": mask_value("secret-scalar"),
        },
    }


def test_bytes_are_decoded_and_masked_when_secret() -> None:
    assert mask({"note": b"plain"}) == {"note": "plain"}
    assert mask({"password": b"p"}) == {"password": mask_value("p")}


def test_non_string_keys_are_stringified() -> None:
    assert mask({1: "one"}) == {"1": "one"}
