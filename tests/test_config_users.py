"""``[[users.issuers]]``: the OpenID providers whose ID tokens prove a person."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from zerolane.config import JwtIssuerConfig, parse_config, render_config
from zerolane.errors import InvalidInput

ISSUER = {"name": "sso", "issuer": "https://sso.example.com", "audience": "zl"}


def config(*issuers: dict[str, Any], **users: Any) -> dict[str, Any]:
    return {"trust_domain": "example.org", "users": {"issuers": list(issuers), **users}}


def test_issuers_are_read_and_written_back() -> None:
    parsed = parse_config(config({**ISSUER, "jwks_url": "https://sso.example.com/jwks"}))
    assert parsed.users.issuers == (
        JwtIssuerConfig(
            "sso", "https://sso.example.com", "zl", jwks_url="https://sso.example.com/jwks"
        ),
    )
    again = parse_config(tomllib.loads(render_config(parsed)))
    assert again == parsed
    assert "[[users.issuers]]" in render_config(parsed)


def test_no_users_section_trusts_no_one() -> None:
    parsed = parse_config({"trust_domain": "example.org"})
    assert parsed.users.issuers == ()
    assert "users" not in render_config(parsed)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (config({"name": "sso", "issuer": "https://sso", "jwks_file": "k.json"}), "config.missing"),
        (config({**ISSUER}), "config.jwks"),
        (config({**ISSUER, "jwks_file": "a", "jwks_url": "https://b"}), "config.jwks"),
        (config({**ISSUER, "jwks_file": "a", "claims": {"email": "mail"}}), "config.unknown_key"),
        (config({**ISSUER, "jwks_file": "a", "colour": "red"}), "config.unknown_key"),
        (config({**ISSUER, "jwks_file": "a"}, extra=1), "config.unknown_key"),
        ({"trust_domain": "example.org", "users": {"issuers": ["sso"]}}, "config.type"),
        ({"trust_domain": "example.org", "users": []}, "config.type"),
    ],
)
def test_a_bad_users_section_is_refused_with_its_key(doc: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_config(doc)
    assert refused.value.reason == reason
    assert "users" in refused.value.message
