"""``[oauth]``: off by default, and refused when it could not work or would be open."""

from __future__ import annotations

from typing import Any

import pytest

from zerolane.config import OAuthConfig, parse_config, render_config
from zerolane.errors import InvalidInput

ON: dict[str, Any] = {
    "enabled": True,
    "resources": ["http://127.0.0.1:8710/mcp"],
    "local_user": {"username": "alice"},
}


def _config(oauth: dict[str, Any], public_url: str | None = "http://127.0.0.1:8700") -> Any:
    server = {"public_url": public_url} if public_url else {}
    return parse_config({"trust_domain": "example.org", "server": server, "oauth": oauth})


def test_off_by_default_and_strict() -> None:
    config = parse_config({"trust_domain": "example.org"})
    assert config.oauth == OAuthConfig()
    assert config.oauth.enabled is False
    assert config.oauth.allow_bearer_clients is False
    assert config.oauth.bearer_token_ttl == 300
    # failed sign-ins: 5 per username, 20 per address, then locks from 30 s
    assert (config.oauth.failed_sign_ins_per_user, config.oauth.failed_sign_ins_per_address) == (
        5,
        20,
    )
    assert config.oauth.sign_in_backoff == 30
    # client ID metadata documents: accepted, kept at most an hour, never from loopback
    assert config.oauth.client_metadata_documents is True
    assert config.oauth.client_metadata_max_age == 3600
    assert config.oauth.client_metadata_loopback is False


def test_on_round_trips() -> None:
    config = _config(ON | {"allow_bearer_clients": True, "bearer_token_ttl": 900})
    assert config.oauth.local_user is not None
    assert config.oauth.local_user.password_file == "oauth-password"
    import tomllib

    assert parse_config(tomllib.loads(render_config(config))) == config


@pytest.mark.parametrize(
    ("oauth", "public_url", "reason"),
    [
        (ON, None, "config.oauth_issuer"),
        (ON | {"resources": []}, "http://cp", "config.oauth_resource"),
        (ON | {"resources": ["ftp://x/mcp"]}, "http://cp", "config.oauth_resource"),
        (ON | {"local_user": {"password_file": "pw"}}, "http://cp", "config.missing"),
        ({k: v for k, v in ON.items() if k != "local_user"}, "http://cp", "config.oauth_user"),
        (ON | {"bearer_token_ttl": 901}, "http://cp", "config.oauth_bearer_ttl"),
        (ON | {"bearer_token_ttl": 0}, "http://cp", "config.oauth_bearer_ttl"),
        (ON | {"allow_bearer_clients": "yes"}, "http://cp", "config.type"),
        (ON | {"allow_bearers": True}, "http://cp", "config.unknown_key"),
        (ON | {"local_user": {"username": " alice"}}, "http://cp", "config.oauth_user"),
        (ON | {"failed_sign_ins_per_user": 0}, "http://cp", "config.oauth_sign_in_limit"),
        (ON | {"failed_sign_ins_per_address": 0}, "http://cp", "config.oauth_sign_in_limit"),
        (ON | {"sign_in_backoff": 901}, "http://cp", "config.oauth_sign_in_limit"),
        (ON | {"client_metadata_max_age": 59}, "http://cp", "config.oauth_client_metadata"),
        (ON | {"client_metadata_max_age": 86_401}, "http://cp", "config.oauth_client_metadata"),
        (ON | {"client_metadata_loopback": "yes"}, "http://cp", "config.type"),
    ],
)
def test_refused(oauth: dict[str, Any], public_url: str | None, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        _config(oauth, public_url)
    assert reason in str(refused.value), refused.value
    assert _config(ON).oauth.enabled  # the twin
