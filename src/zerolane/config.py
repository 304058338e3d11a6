"""The deployment's configuration file (``<home>/zerolane.toml``).

Unknown keys and wrong types are refused with the key's dotted name, so a typo never
silently turns a setting off.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from zerolane.errors import InvalidInput

CONFIG_NAME = "zerolane.toml"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8700
    #: the URL clients use to reach the API (DPoP proofs name it); default: as requested
    public_url: str | None = None


@dataclass(frozen=True, slots=True)
class SvidConfig:
    default_ttl: int = 300
    max_ttl: int = 3600


@dataclass(frozen=True, slots=True)
class JwtIssuerConfig:
    """A trusted issuer of workload JWTs (Kubernetes service accounts, CI OIDC)."""

    name: str
    issuer: str
    audience: str
    jwks_file: str | None = None
    jwks_url: str | None = None
    jwks_cache_seconds: int = 300
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    #: claim name (dotted path for nested claims) -> selector type
    claims: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TasksConfig:
    #: host patterns (fnmatch) of destinations inside the trust boundary; others are egress
    internal_destinations: tuple[str, ...] = ()
    #: sensitivity of a request that names none
    default_sensitivity: str = "internal"


@dataclass(frozen=True, slots=True)
class AuditConfig:
    #: ``sync``: a decision's event is durable before the request goes on (fail closed);
    #: ``async``: decision events are queued, and lost on a crash (docs/deployment.md)
    mode: str = "sync"


@dataclass(frozen=True, slots=True)
class Config:
    trust_domain: str
    store_url: str = "sqlite:///zerolane.db"
    server: ServerConfig = field(default_factory=ServerConfig)
    svid: SvidConfig = field(default_factory=SvidConfig)
    #: longest any token signed by our keys may live; retired keys stay published this long
    max_token_lifetime: int = 86400
    jwt_issuers: tuple[JwtIssuerConfig, ...] = ()
    policy_dir: str = "policies"
    tasks: TasksConfig = field(default_factory=TasksConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)


def _take(table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table.pop(key)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidInput("config.type", f"{where}{key} must be an integer")
    if not isinstance(value, kind):
        raise InvalidInput("config.type", f"{where}{key} must be of type {kind.__name__}")
    return value


def _no_extra(table: dict[str, Any], where: str) -> None:
    if table:
        names = ", ".join(f"{where}{k}" for k in sorted(table))
        raise InvalidInput("config.unknown_key", f"unknown configuration key(s): {names}")


def _issuer(raw: object, index: int) -> JwtIssuerConfig:
    where = f"jwt_issuers[{index}]."
    if not isinstance(raw, dict):
        raise InvalidInput("config.type", f"jwt_issuers[{index}] must be a table")
    table = dict(raw)
    name = _take(table, "name", str, where, None)
    issuer = _take(table, "issuer", str, where, None)
    audience = _take(table, "audience", str, where, None)
    if not (name and issuer and audience):
        raise InvalidInput("config.missing", f"{where}name, issuer and audience are required")
    jwks_file = _take(table, "jwks_file", str, where, None)
    jwks_url = _take(table, "jwks_url", str, where, None)
    if (jwks_file is None) == (jwks_url is None):
        raise InvalidInput("config.jwks", f"{where} set exactly one of jwks_file, jwks_url")
    algorithms = tuple(_take(table, "algorithms", list, where, ["RS256", "ES256"]))
    if not algorithms or not all(isinstance(a, str) and a for a in algorithms):
        raise InvalidInput("config.type", f"{where}algorithms must be a list of names")
    claims = _take(table, "claims", dict, where, {})
    for claim, selector_type in claims.items():
        if not isinstance(selector_type, str) or not selector_type:
            raise InvalidInput("config.type", f"{where}claims.{claim} must be a string")
    cache = _take(table, "jwks_cache_seconds", int, where, 300)
    _no_extra(table, where)
    return JwtIssuerConfig(
        name, issuer, audience, jwks_file, jwks_url, cache, algorithms, dict(claims)
    )


def parse_config(doc: dict[str, Any]) -> Config:
    table = dict(doc)
    td = _take(table, "trust_domain", str, "", None)
    if not td:
        raise InvalidInput("config.missing", "trust_domain is required")
    store_url = _take(table, "store_url", str, "", "sqlite:///zerolane.db")
    lifetime = _take(table, "max_token_lifetime", int, "", 86400)
    server_t = dict(_take(table, "server", dict, "", {}))
    server = ServerConfig(
        host=_take(server_t, "host", str, "server.", "127.0.0.1"),
        port=_take(server_t, "port", int, "server.", 8700),
        public_url=_take(server_t, "public_url", str, "server.", None),
    )
    _no_extra(server_t, "server.")
    svid_t = dict(_take(table, "svid", dict, "", {}))
    svid = SvidConfig(
        default_ttl=_take(svid_t, "default_ttl", int, "svid.", 300),
        max_ttl=_take(svid_t, "max_ttl", int, "svid.", 3600),
    )
    _no_extra(svid_t, "svid.")
    if not 0 < svid.default_ttl <= svid.max_ttl <= lifetime:
        raise InvalidInput(
            "config.svid_ttl", "need 0 < svid.default_ttl <= svid.max_ttl <= max_token_lifetime"
        )
    issuers = tuple(
        _issuer(raw, i) for i, raw in enumerate(_take(table, "jwt_issuers", list, "", []))
    )
    policy_dir = _take(table, "policy_dir", str, "", "policies")
    tasks_t = dict(_take(table, "tasks", dict, "", {}))
    internal = _take(tasks_t, "internal_destinations", list, "tasks.", [])
    if not all(isinstance(p, str) and p for p in internal):
        raise InvalidInput(
            "config.type", "tasks.internal_destinations must be a list of host patterns"
        )
    tasks = TasksConfig(
        internal_destinations=tuple(internal),
        default_sensitivity=_take(tasks_t, "default_sensitivity", str, "tasks.", "internal"),
    )
    _no_extra(tasks_t, "tasks.")
    if tasks.default_sensitivity not in ("public", "internal", "confidential", "restricted"):
        raise InvalidInput(
            "config.sensitivity",
            "tasks.default_sensitivity is one of public, internal, confidential, restricted",
        )
    audit_t = dict(_take(table, "audit", dict, "", {}))
    audit = AuditConfig(mode=_take(audit_t, "mode", str, "audit.", "sync"))
    _no_extra(audit_t, "audit.")
    if audit.mode not in ("sync", "async"):
        raise InvalidInput("config.audit_mode", "audit.mode is one of sync, async")
    _no_extra(table, "")
    return Config(td, store_url, server, svid, lifetime, issuers, policy_dir, tasks, audit)


def load_config(home: Path) -> Config:
    path = home / CONFIG_NAME
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise InvalidInput(
            "home.missing", f"no zerolane home at {home} (run 'zerolane init' first)"
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput("config.syntax", f"{path}: {err}") from err
    return parse_config(doc)


def render_config(config: Config) -> str:
    doc: dict[str, Any] = {
        "trust_domain": config.trust_domain,
        "store_url": config.store_url,
        "max_token_lifetime": config.max_token_lifetime,
        "server": {"host": config.server.host, "port": config.server.port},
        "svid": {"default_ttl": config.svid.default_ttl, "max_ttl": config.svid.max_ttl},
        "policy_dir": config.policy_dir,
        "tasks": {
            "internal_destinations": list(config.tasks.internal_destinations),
            "default_sensitivity": config.tasks.default_sensitivity,
        },
        "audit": {"mode": config.audit.mode},
    }
    if config.server.public_url is not None:
        doc["server"]["public_url"] = config.server.public_url
    if config.jwt_issuers:
        doc["jwt_issuers"] = [_render_issuer(issuer) for issuer in config.jwt_issuers]
    return tomli_w.dumps(doc)


def _render_issuer(issuer: JwtIssuerConfig) -> dict[str, Any]:
    table: dict[str, Any] = {
        "name": issuer.name,
        "issuer": issuer.issuer,
        "audience": issuer.audience,
        "jwks_cache_seconds": issuer.jwks_cache_seconds,
        "algorithms": list(issuer.algorithms),
        "claims": dict(issuer.claims),
    }
    if issuer.jwks_file is not None:
        table["jwks_file"] = issuer.jwks_file
    if issuer.jwks_url is not None:
        table["jwks_url"] = issuer.jwks_url
    return table
