"""``[revocation]`` and ``[grants]`` in zerolane.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from zerolane.config import (
    GrantsConfig,
    HmacGrantConfig,
    PostgresGrantConfig,
    StaticGrantConfig,
    parse_config,
    render_config,
)
from zerolane.errors import InvalidInput
from zerolane.server.grant_brokers import build_brokers
from zerolane.types import SystemClock


def config(**sections: Any) -> dict[str, Any]:
    return {"trust_domain": "example.org", **sections}


def test_defaults() -> None:
    parsed = parse_config(config())
    assert parsed.revocation.grace_seconds == 5
    assert parsed.grants == GrantsConfig()


def test_sections_parse_and_render_round_trip() -> None:
    parsed = parse_config(
        config(
            revocation={"grace_seconds": 2},
            grants={
                "retry_interval": 10,
                "postgres": {
                    "url": "postgresql://zerolane@db.internal/app",
                    "password_env": "ZL_PG_PASSWORD",
                    "agent_url": "postgresql://db.internal:6432/app?sslmode=require",
                    "templates": ["reports_reader"],
                },
                "hmac": {"key_file": "secrets/grants.key", "ttl": 60},
                "static": {"secret_file": "secrets/legacy.token"},
            },
        )
    )
    assert parsed.revocation.grace_seconds == 2
    assert parsed.grants == GrantsConfig(
        retry_interval=10,
        postgres=PostgresGrantConfig(
            url="postgresql://zerolane@db.internal/app",
            password_env="ZL_PG_PASSWORD",
            agent_url="postgresql://db.internal:6432/app?sslmode=require",
            templates=("reports_reader",),
        ),
        hmac=HmacGrantConfig("secrets/grants.key", 60),
        static=StaticGrantConfig(secret_file="secrets/legacy.token"),
    )
    assert parse_config(tomllib.loads(render_config(parsed))) == parsed


@pytest.mark.parametrize(
    ("sections", "reason"),
    [
        ({"revocation": {"grace_seconds": -1}}, "config.revocation"),
        ({"revocation": {"grace": 5}}, "config.unknown_key"),
        ({"grants": {"postgres": {}}}, "config.missing"),
        ({"grants": {"postgres": {"url": "x", "pasword_file": "p"}}}, "config.unknown_key"),
        (
            {"grants": {"postgres": {"url": "x", "password_file": "a", "password_env": "B"}}},
            "config.secret",
        ),
        ({"grants": {"hmac": {}}}, "config.missing"),
        ({"grants": {"static": {}}}, "config.missing"),
        ({"grants": {"ldap": {}}}, "config.unknown_key"),
        ({"grants": {"retry_interval": 0}}, "config.grants"),
    ],
)
def test_mistakes_are_refused(sections: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_config(config(**sections))
    assert caught.value.reason == reason


def test_brokers_read_their_secrets_from_private_files(tmp_path: Path) -> None:
    key = tmp_path / "grants.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o644)
    grants = GrantsConfig(hmac=HmacGrantConfig("grants.key"))
    with pytest.raises(InvalidInput) as caught:
        build_brokers(grants, tmp_path, SystemClock())
    assert caught.value.reason == "grant.file_mode"
    key.chmod(0o600)
    assert sorted(build_brokers(grants, tmp_path, SystemClock())) == ["hmac"]


def test_the_postgres_password_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants = GrantsConfig(
        postgres=PostgresGrantConfig(url="postgresql://zl@127.0.0.1/test", password_env="ZL_PW")
    )
    with pytest.raises(InvalidInput) as caught:
        build_brokers(grants, tmp_path, SystemClock())
    assert caught.value.reason == "grant.env"
    monkeypatch.setenv("ZL_PW", "hunter2")
    brokers = build_brokers(grants, tmp_path, SystemClock())
    assert "hunter2" not in repr(brokers)
