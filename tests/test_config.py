"""The configuration file: defaults, and every mistake refused with the key's dotted name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zerolane.config import (
    CONFIG_NAME,
    Config,
    GatewayEntry,
    JwtIssuerConfig,
    ServerConfig,
    SvidConfig,
    load_config,
    parse_config,
    render_config,
)
from zerolane.errors import InvalidInput

ISSUER: dict[str, Any] = {
    "name": "k8s",
    "issuer": "https://kubernetes.default.svc",
    "audience": "zerolane",
    "jwks_file": "k8s-jwks.json",
}


def refused(doc: dict[str, Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse_config(doc)
    return info.value


def test_defaults() -> None:
    config = parse_config({"trust_domain": "example.org"})
    assert config == Config(trust_domain="example.org")
    assert config.store_url == "sqlite:///zerolane.db"
    assert config.server == ServerConfig(host="127.0.0.1", port=8700)
    assert config.svid == SvidConfig(default_ttl=300, max_ttl=3600)
    assert config.max_token_lifetime == 86400
    assert config.jwt_issuers == ()


def test_every_setting_is_read() -> None:
    config = parse_config(
        {
            "trust_domain": "prod.example",
            "store_url": "memory://",
            "max_token_lifetime": 7200,
            "server": {"host": "10.0.0.5", "port": 9000},
            "svid": {"default_ttl": 60, "max_ttl": 600},
        }
    )
    assert config == Config(
        "prod.example", "memory://", ServerConfig("10.0.0.5", 9000), SvidConfig(60, 600), 7200
    )


def test_the_input_is_not_consumed() -> None:
    doc = {"trust_domain": "example.org", "server": {"port": 1}}
    parse_config(doc)
    assert doc == {"trust_domain": "example.org", "server": {"port": 1}}


@pytest.mark.parametrize(
    ("doc", "name"),
    [
        ({"trust_domian": "typo"}, "trust_domian"),
        ({"server": {"hots": "x"}}, "server.hots"),
        ({"svid": {"ttl": 5}}, "svid.ttl"),
        ({"jwt_issuers": [{**ISSUER, "jwks_uri": "x"}]}, "jwt_issuers[0].jwks_uri"),
        ({"jwt_issuers": [ISSUER, {**ISSUER, "claim": {}}]}, "jwt_issuers[1].claim"),
    ],
)
def test_unknown_key_is_refused_by_its_dotted_name(doc: dict[str, Any], name: str) -> None:
    error = refused({"trust_domain": "example.org", **doc})
    assert error.reason == "config.unknown_key"
    assert name in error.message


@pytest.mark.parametrize(
    ("doc", "name"),
    [
        ({"trust_domain": 5}, "trust_domain"),
        ({"store_url": ["memory://"]}, "store_url"),
        ({"max_token_lifetime": "1d"}, "max_token_lifetime"),
        ({"max_token_lifetime": 3600.0}, "max_token_lifetime"),
        ({"server": "localhost"}, "server"),
        ({"server": {"port": "8700"}}, "server.port"),
        ({"server": {"port": True}}, "server.port"),
        ({"server": {"host": 127}}, "server.host"),
        ({"svid": {"default_ttl": "300"}}, "svid.default_ttl"),
        ({"svid": {"max_ttl": False}}, "svid.max_ttl"),
        ({"jwt_issuers": {"name": "k8s"}}, "jwt_issuers"),
        ({"jwt_issuers": ["k8s"]}, "jwt_issuers[0]"),
        ({"jwt_issuers": [{**ISSUER, "audience": 1}]}, "jwt_issuers[0].audience"),
        ({"jwt_issuers": [{**ISSUER, "algorithms": "ES256"}]}, "jwt_issuers[0].algorithms"),
        ({"jwt_issuers": [{**ISSUER, "algorithms": [256]}]}, "jwt_issuers[0].algorithms"),
        ({"jwt_issuers": [{**ISSUER, "claims": ["sub"]}]}, "jwt_issuers[0].claims"),
        ({"jwt_issuers": [{**ISSUER, "claims": {"sub": 1}}]}, "jwt_issuers[0].claims.sub"),
        ({"jwt_issuers": [{**ISSUER, "jwks_cache_seconds": "5m"}]}, "jwks_cache_seconds"),
    ],
)
def test_wrong_type_is_refused_by_its_dotted_name(doc: dict[str, Any], name: str) -> None:
    error = refused({"trust_domain": "example.org", **doc})
    assert error.reason == "config.type"
    assert name in error.message


@pytest.mark.parametrize("doc", [{}, {"trust_domain": ""}])
def test_trust_domain_is_required(doc: dict[str, Any]) -> None:
    assert refused(doc).reason == "config.missing"


@pytest.mark.parametrize(
    ("default_ttl", "max_ttl", "lifetime"),
    [(0, 3600, 86400), (-1, 3600, 86400), (301, 300, 86400), (300, 3601, 3600)],
)
def test_ttl_relations_are_enforced(default_ttl: int, max_ttl: int, lifetime: int) -> None:
    error = refused(
        {
            "trust_domain": "example.org",
            "max_token_lifetime": lifetime,
            "svid": {"default_ttl": default_ttl, "max_ttl": max_ttl},
        }
    )
    assert error.reason == "config.svid_ttl"


def test_ttls_may_all_be_equal() -> None:
    config = parse_config(
        {
            "trust_domain": "example.org",
            "max_token_lifetime": 60,
            "svid": {"default_ttl": 60, "max_ttl": 60},
        }
    )
    assert (config.svid.default_ttl, config.svid.max_ttl, config.max_token_lifetime) == (60, 60, 60)


def test_jwt_issuer_is_parsed() -> None:
    config = parse_config(
        {
            "trust_domain": "example.org",
            "jwt_issuers": [
                {**ISSUER, "claims": {"kubernetes.io.namespace": "k8s_ns"}},
                {
                    "name": "ci",
                    "issuer": "https://token.actions.example",
                    "audience": "zerolane",
                    "jwks_url": "https://token.actions.example/jwks",
                    "algorithms": ["RS256"],
                    "jwks_cache_seconds": 60,
                },
            ],
        }
    )
    k8s, ci = config.jwt_issuers
    assert k8s == JwtIssuerConfig(
        name="k8s",
        issuer="https://kubernetes.default.svc",
        audience="zerolane",
        jwks_file="k8s-jwks.json",
        claims={"kubernetes.io.namespace": "k8s_ns"},
    )
    assert k8s.algorithms == ("RS256", "ES256")
    assert k8s.jwks_cache_seconds == 300
    assert (ci.jwks_url, ci.jwks_file, ci.algorithms, ci.jwks_cache_seconds) == (
        "https://token.actions.example/jwks",
        None,
        ("RS256",),
        60,
    )


@pytest.mark.parametrize("missing", ["name", "issuer", "audience"])
def test_jwt_issuer_needs_name_issuer_and_audience(missing: str) -> None:
    issuer = {k: v for k, v in ISSUER.items() if k != missing}
    error = refused({"trust_domain": "example.org", "jwt_issuers": [issuer]})
    assert error.reason == "config.missing"
    assert "jwt_issuers[0]" in error.message


@pytest.mark.parametrize(
    "jwks",
    [{}, {"jwks_file": "a.json", "jwks_url": "https://x/jwks"}],
)
def test_jwt_issuer_needs_exactly_one_key_source(jwks: dict[str, str]) -> None:
    issuer = {k: v for k, v in ISSUER.items() if k != "jwks_file"} | jwks
    error = refused({"trust_domain": "example.org", "jwt_issuers": [issuer]})
    assert error.reason == "config.jwks"


def test_jwt_issuer_algorithms_may_not_be_empty() -> None:
    error = refused({"trust_domain": "example.org", "jwt_issuers": [{**ISSUER, "algorithms": []}]})
    assert error.reason == "config.type"


# files


def test_load_config_reads_the_home(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text('trust_domain = "example.org"\n[server]\nport = 9001\n')
    config = load_config(tmp_path)
    assert config.trust_domain == "example.org"
    assert config.server.port == 9001


def test_load_config_on_missing_home(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(tmp_path / "nowhere")
    assert info.value.reason == "home.missing"


def test_missing_home_says_where_it_looked_and_how_to_point_at_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a home made in another directory: the way out is --home or ZEROLANE_HOME, and the
    # message names the absolute folder it looked in (a relative default says nothing)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput) as info:
        load_config(Path(".zerolane"))
    message = info.value.message
    assert str(tmp_path / ".zerolane") in message
    assert "--home" in message
    assert "ZEROLANE_HOME" in message
    assert not message.endswith("(run 'zerolane init' first)")


def test_load_config_on_broken_toml(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text('trust_domain = "example.org\n')
    with pytest.raises(InvalidInput) as info:
        load_config(tmp_path)
    assert info.value.reason == "config.syntax"


def test_load_config_refuses_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text('trust_domain = "example.org"\n[svid]\nmax_tll = 60\n')
    with pytest.raises(InvalidInput) as info:
        load_config(tmp_path)
    assert info.value.reason == "config.unknown_key"
    assert "svid.max_tll" in info.value.message


def test_rendered_config_loads_back(tmp_path: Path) -> None:
    config = Config(
        trust_domain="prod.example",
        store_url="memory://",
        server=ServerConfig("10.0.0.5", 9000),
        svid=SvidConfig(60, 600),
        max_token_lifetime=7200,
        jwt_issuers=(
            JwtIssuerConfig("k8s", "https://k8s", "zerolane", jwks_file="jwks.json"),
            JwtIssuerConfig(
                "ci",
                "https://ci",
                "zerolane",
                jwks_url="https://ci/jwks",
                jwks_cache_seconds=60,
                algorithms=("ES256",),
                claims={"repository": "ci_repo"},
            ),
        ),
    )
    (tmp_path / CONFIG_NAME).write_text(render_config(config))
    assert load_config(tmp_path) == config


def test_rendered_default_config_loads_back(tmp_path: Path) -> None:
    config = Config(trust_domain="example.org")
    (tmp_path / CONFIG_NAME).write_text(render_config(config))
    assert load_config(tmp_path) == config


# [[gateways]]: what ``zerolane up`` serves beside the API


def test_gateways_default_to_none() -> None:
    assert parse_config({"trust_domain": "example.org"}).gateways == ()


def test_gateways_are_read() -> None:
    config = parse_config(
        {
            "trust_domain": "example.org",
            "gateways": [
                {"kind": "http", "config": "gateways/tools.toml"},
                {"kind": "mcp", "config": "/etc/zerolane/mcp.toml", "name": "reports"},
                {"kind": "http", "config": "old.yaml", "enabled": False},
            ],
        }
    )
    assert config.gateways == (
        GatewayEntry("http", "gateways/tools.toml", "tools"),
        GatewayEntry("mcp", "/etc/zerolane/mcp.toml", "reports"),
        GatewayEntry("http", "old.yaml", "old", enabled=False),
    )


def test_gateway_files_are_relative_to_the_home(tmp_path: Path) -> None:
    relative, absolute = (
        GatewayEntry("http", "gateways/tools.toml", "tools"),
        GatewayEntry("mcp", "/etc/zerolane/mcp.toml", "mcp"),
    )
    assert relative.config_path(tmp_path) == tmp_path / "gateways" / "tools.toml"
    assert absolute.config_path(tmp_path) == Path("/etc/zerolane/mcp.toml")


@pytest.mark.parametrize(
    ("gateways", "reason", "named"),
    [
        ({"kind": "http"}, "config.type", "gateways"),
        (["gateways/tools.toml"], "config.type", "gateways[0]"),
        (
            [{"kind": "http", "config": "a.toml", "port": 1}],
            "config.unknown_key",
            "gateways[0].port",
        ),
        # two problems of two kinds, each on its line
        ([{"kind": "http", "file": "a.toml"}], "config.invalid", "gateways[0].file: unknown key"),
        ([{"kind": "http", "file": "a.toml"}], "config.invalid", "gateways[0].config: is required"),
        ([{"config": "a.toml"}], "config.missing", "gateways[0].kind"),
        ([{"kind": "http"}], "config.missing", "gateways[0].config"),
        ([{"kind": "http", "config": ""}], "config.missing", "gateways[0].config"),
        ([{"kind": "grpc", "config": "a.toml"}], "config.gateway_kind", "gateways[0].kind"),
        ([{"kind": "HTTP", "config": "a.toml"}], "config.gateway_kind", "gateways[0].kind"),
        ([{"kind": "http", "config": 5}], "config.type", "gateways[0].config"),
        ([{"kind": "http", "config": "a.toml", "enabled": "yes"}], "config.type", "enabled"),
        ([{"kind": "http", "config": "a.toml", "enabled": 1}], "config.type", "enabled"),
        ([{"kind": "http", "config": "a.toml", "name": "a b"}], "config.gateway_name", "name"),
        ([{"kind": "http", "config": "a.toml", "name": ""}], "config.gateway_name", "name"),
        ([{"kind": "http", "config": "my tools.toml"}], "config.gateway_name", "gateways[0]"),
        (
            [{"kind": "http", "config": "a/tools.toml"}, {"kind": "mcp", "config": "b/tools.toml"}],
            "config.gateway_name",
            "gateways[1].name 'tools' is also the name of gateways[0]",
        ),
    ],
)
def test_a_bad_gateway_entry_is_refused_naming_it(gateways: Any, reason: str, named: str) -> None:
    error = refused({"trust_domain": "example.org", "gateways": gateways})
    assert error.reason == reason
    assert named in error.message


def test_gateway_entries_are_not_consumed() -> None:
    entry = {"kind": "http", "config": "a.toml"}
    parse_config({"trust_domain": "example.org", "gateways": [entry]})
    assert entry == {"kind": "http", "config": "a.toml"}


def test_rendered_gateways_load_back(tmp_path: Path) -> None:
    config = Config(
        trust_domain="example.org",
        gateways=(
            GatewayEntry("http", "gateways/tools.toml", "tools"),
            GatewayEntry("mcp", "/etc/zerolane/mcp.toml", "reports", enabled=False),
        ),
    )
    (tmp_path / CONFIG_NAME).write_text(render_config(config))
    assert load_config(tmp_path) == config


def test_every_problem_of_a_file_is_refused_at_once_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text(
        'trust_domain = "example.org"\n'
        '[server]\nport = "8700"\nhots = "x"\n'
        '[audit]\nmode = "later"\n'
    )
    with pytest.raises(InvalidInput) as info:
        load_config(tmp_path)
    path = tmp_path / CONFIG_NAME
    assert info.value.reason == "config.invalid"  # problems of several kinds
    assert info.value.message.splitlines() == [
        f"{path}: server.port: must be an integer, not str",
        f"{path}: server.hots: unknown key (known: host, port, public_url)",
        f"{path}: audit.mode: must be one of 'sync' or 'async', not 'later'",
    ]


def test_problems_of_one_kind_keep_their_reason(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text('trust_domain = "example.org"\nstore = 1\npolicy = 2\n')
    with pytest.raises(InvalidInput) as info:
        load_config(tmp_path)
    assert info.value.reason == "config.unknown_key"
    lines = [line.split(": ", 2)[1:] for line in info.value.message.splitlines()]
    assert [key for key, _ in lines] == ["store", "policy"]
    assert all(what.startswith("unknown key (known: trust_domain, ") for _, what in lines)


BOUNDED_ISSUER = {"name": "a", "issuer": "https://i.example", "audience": "x", "jwks_file": "j"}


@pytest.mark.parametrize(
    ("doc", "reason", "twin"),
    [
        ({"server": {"port": 65536}}, "config.port", {"server": {"port": 0}}),
        ({"server": {"port": -1}}, "config.port", {"server": {"port": 65535}}),
        (
            {"grants": {"hmac": {"key_file": "k", "ttl": 0}}},
            "config.grants",
            {"grants": {"hmac": {"key_file": "k", "ttl": 1}}},
        ),
        (
            {"grants": {"postgres": {"url": "postgresql://db/x", "connect_timeout": -5}}},
            "config.grants",
            {"grants": {"postgres": {"url": "postgresql://db/x", "connect_timeout": 300}}},
        ),
        (
            {"users": {"issuers": [{**BOUNDED_ISSUER, "jwks_cache_seconds": -1}]}},
            "config.jwt_issuer",
            {"users": {"issuers": [{**BOUNDED_ISSUER, "jwks_cache_seconds": 0}]}},
        ),
    ],
)
def test_numbers_are_bounded(doc: dict[str, Any], reason: str, twin: dict[str, Any]) -> None:
    """A port past 65535, a lease that never lives, a negative timeout or cache time are
    refused when the file is read (not when a server first needs them); the bound
    itself is accepted."""
    with pytest.raises(InvalidInput) as caught:
        parse_config({"trust_domain": "example.org", **doc})
    assert caught.value.reason == reason
    parse_config({"trust_domain": "example.org", **twin})


def test_the_policy_set_runs_in_shadow_only_when_asked() -> None:
    assert parse_config({"trust_domain": "example.org"}).policy_mode == "enforce"
    shadow = parse_config({"trust_domain": "example.org", "policy_mode": "shadow"})
    assert shadow.policy_mode == "shadow"
    assert 'policy_mode = "shadow"' in render_config(shadow)
    assert "policy_mode" not in render_config(Config(trust_domain="example.org"))
    wrong = refused({"trust_domain": "example.org", "policy_mode": "audit"})
    assert wrong.reason == "config.policy_mode"
    assert "policy_mode" in wrong.message
