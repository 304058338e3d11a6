"""The deployment's configuration file (``<home>/zerolane.toml``).

``tomllib`` parses the file; pydantic checks it against :class:`Config`, strictly:
unknown keys, wrong types and values out of bounds are refused all at once, each on a
line naming the file and the key's dotted name, so a typo never silently turns a
setting off. The parts the core and the listeners receive are
:mod:`zerolane.settings`' types (``[svid]``, ``[[jwt_issuers]]``, ``[tls]``,
``[http]``); this module adds the deployment's own sections around them. It sits above
the core in the layers (pyproject.toml's import-linter contracts): the server and the
CLI read it, the core never does.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Self

import tomli_w
from pydantic import AfterValidator, model_validator

from zerolane.errors import InvalidInput
from zerolane.settings.detection import DetectionSettings
from zerolane.settings.identity import DEFAULT_X509_TTL, JwtIssuerConfig, SvidConfig
from zerolane.settings.listener import (
    KIB,
    MAX_HTTP_LIMIT_BYTES,
    TLS_CLIENT_CERT,
    HttpLimits,
    TlsConfig,
    parse_http_limits,
    parse_tls,
    render_http_limits,
    render_tls,
)
from zerolane.settings.oauth import LocalUserConfig, OAuthConfig
from zerolane.settings.probe import ProbeSchedule
from zerolane.settings.response import ResponseSettings
from zerolane.settings.validate import (
    STRICT,
    Bool,
    Float,
    Int,
    Required,
    Str,
    Texts,
    reason,
    refuse,
    validate,
    within,
)

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_X509_TTL",
    "GATEWAY_KINDS",
    "KIB",
    "MAX_HTTP_LIMIT_BYTES",
    "TLS_CLIENT_CERT",
    "AuditConfig",
    "Config",
    "DetectionSettings",
    "GatewayEntry",
    "GrantsConfig",
    "HmacGrantConfig",
    "HttpLimits",
    "JwtIssuerConfig",
    "LocalUserConfig",
    "OAuthConfig",
    "PostgresGrantConfig",
    "ResponseSettings",
    "RevocationConfig",
    "ServerConfig",
    "StaticGrantConfig",
    "SvidConfig",
    "TasksConfig",
    "TlsConfig",
    "UsersConfig",
    "load_config",
    "parse_config",
    "parse_http_limits",
    "parse_tls",
    "render_config",
    "render_http_limits",
    "render_tls",
]

CONFIG_NAME = "zerolane.toml"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    __pydantic_config__ = STRICT

    host: Str = "127.0.0.1"
    #: 0: any free port (``zerolane up`` prints the one it got)
    port: Annotated[Int, within("config.port", 0, 65535)] = 8700
    #: the URL clients use to reach the API (DPoP proofs name it); default: as requested
    public_url: Str | None = None


def _patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    if not all(values):
        raise refuse("config.type", "must be a list of host patterns, none empty")
    return values


@dataclass(frozen=True, slots=True)
class TasksConfig:
    __pydantic_config__ = STRICT

    #: host patterns (fnmatch) of destinations inside the trust boundary; others are egress
    internal_destinations: Annotated[Texts, AfterValidator(_patterns)] = ()
    #: sensitivity of a request that names none
    default_sensitivity: Annotated[
        Literal["public", "internal", "confidential", "restricted"],
        reason("config.sensitivity"),
    ] = "internal"


@dataclass(frozen=True, slots=True)
class AuditConfig:
    __pydantic_config__ = STRICT

    #: ``sync``: a decision's event is durable before the request goes on (fail closed);
    #: ``async``: decision events are queued, and lost on a crash (docs/deployment.md)
    mode: Annotated[Literal["sync", "async"], reason("config.audit_mode")] = "sync"
    #: the gateways' refusals before any decision (``gateway.refused``): events per
    #: second per (listener, reason, client), the burst one may write at once, and the
    #: events per second of all of them together; the rest are counted, and the next
    #: event written carries the count (docs/security-model.md)
    refusals_per_second: Annotated[Float, within("config.audit_refusals", 0.001, 1000)] = 1.0
    refusals_burst: Annotated[Int, within("config.audit_refusals", 1, 10000)] = 20
    refusals_total_per_second: Annotated[Float, within("config.audit_refusals", 0.001, 100000)] = (
        50.0
    )


#: what ``[[gateways]]`` entries may be: ``zerolane gateway run`` / ``mcp-gateway run``
GATEWAY_KINDS = ("http", "mcp")
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _gateway_name(name: str) -> str:
    if not _GATEWAY_NAME.fullmatch(name):
        raise refuse(
            "config.gateway_name",
            "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True, slots=True)
class GatewayEntry:
    """A gateway that ``zerolane up`` serves beside the API (one ``[[gateways]]`` table)."""

    __pydantic_config__ = STRICT

    #: ``http`` (the HTTP gateway) or ``mcp`` (the MCP gateway)
    kind: Annotated[Literal["http", "mcp"], reason("config.gateway_kind")]
    #: the gateway's own configuration file; a relative path is relative to the home
    config: Required
    #: how ``up`` names it in its output and errors [default: the file's stem]
    name: Annotated[Str, AfterValidator(_gateway_name)]
    enabled: Bool = True

    @model_validator(mode="before")
    @classmethod
    def _named_after_its_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "name" in data:
            return data
        path = data.get("config")
        if not isinstance(path, str) or not path:  # refused as config (not as the name)
            return {**data, "name": "unnamed"}
        if not _GATEWAY_NAME.fullmatch(PurePath(path).stem):
            raise refuse(
                "config.gateway_name", f"the file name {path!r} is no usable name: set name"
            )
        return {**data, "name": PurePath(path).stem}

    def config_path(self, home: Path) -> Path:
        """The configuration file: ``config`` as written, or taken from ``home``."""
        return home / self.config


@dataclass(frozen=True, slots=True)
class RevocationConfig:
    __pydantic_config__ = STRICT

    #: seconds an enforcement point tolerates an unreachable revocation bus before it
    #: fails closed (``revocation.unreachable``); see docs/deployment.md
    grace_seconds: Annotated[Int, within("config.revocation", 0, 3600, " seconds")] = 5


@dataclass(frozen=True, slots=True)
class ApprovalsConfig:
    __pydantic_config__ = STRICT

    #: seconds an approval may wait to be decided, then to be used (docs/approvals.md)
    ttl: Annotated[Int, within("config.approvals", 60, 86400, " seconds")] = 900
    #: approvals one task may have pending at once (more: ``approval.too_many``)
    max_pending: Annotated[Int, within("config.approvals", 1, 1000)] = 16
    #: seconds an approval is kept after it expired (then deleted; its history stays in
    #: the audit log): one hour to a year, a week by default
    retention: Annotated[Int, within("config.approvals", 3600, 365 * 86400, " seconds")] = 7 * 86400
    #: seconds between two reads of the task holds by a decider in another process than
    #: the responder that placed them, or the admin who cleared them
    holds_refresh: Annotated[Float, within("config.approvals", 0.05, 60, " seconds")] = 1.0


def _role_names(values: tuple[str, ...]) -> tuple[str, ...]:
    if not all(values):
        raise refuse("config.type", "must be a list of role names, none empty")
    return values


@dataclass(frozen=True, slots=True)
class PostgresGrantConfig:
    """``[grants.postgres]``: one PostgreSQL role per task (docs/grants.md)."""

    __pydantic_config__ = STRICT

    #: the admin connection (a role with CREATEROLE); no password in it
    url: Required
    #: the admin password, from a 0600 file or an environment variable (else libpq's own)
    password_file: Str | None = None
    password_env: Str | None = None
    #: where agents connect (host, port, database, options) [default: url]
    agent_url: Str | None = None
    role_prefix: Str = "zl_"
    #: template roles playbooks may name (empty: any that passes the broker's checks)
    templates: Annotated[Texts, AfterValidator(_role_names)] = ()
    connect_timeout: Annotated[Int, within("config.grants", 1, 300, " seconds")] = 5

    @model_validator(mode="after")
    def _one_password(self) -> Self:
        if self.password_file is not None and self.password_env is not None:
            raise refuse("config.secret", "set at most one of password_file, password_env")
        return self


@dataclass(frozen=True, slots=True)
class HmacGrantConfig:
    """``[grants.hmac]``: task-long HMAC API keys."""

    __pydantic_config__ = STRICT

    key_file: Required
    ttl: Annotated[Int, within("config.grants", 1, 86400, " seconds")] = 300


@dataclass(frozen=True, slots=True)
class StaticGrantConfig:
    """``[grants.static]``: a legacy static secret, tracked as leases."""

    __pydantic_config__ = STRICT

    secret_file: Str | None = None
    secret_env: Str | None = None
    header: Str = "Authorization"
    format: Str = "Bearer {secret}"

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if self.secret_file is not None and self.secret_env is not None:
            raise refuse("config.secret", "set at most one of secret_file, secret_env")
        if self.secret_file is None and self.secret_env is None:
            raise refuse("config.missing", "secret_file or secret_env is required")
        return self


@dataclass(frozen=True, slots=True)
class GrantsConfig:
    __pydantic_config__ = STRICT

    #: seconds between background sweeps of ``zerolane up`` (failed revocations, expiry)
    retry_interval: Annotated[Int, within("config.grants", 1, 86400, " seconds")] = 30
    postgres: PostgresGrantConfig | None = None
    hmac: HmacGrantConfig | None = None
    static: StaticGrantConfig | None = None


@dataclass(frozen=True, slots=True)
class UsersConfig:
    """``[[users.issuers]]``: who may vouch for a person a task acts for.

    Each issuer is an OpenID provider whose ID tokens (``iss`` exact, ``aud``
    containing ``audience``, signed by a key of its JWKS file or URL, unexpired) prove
    a person; the same shape as ``[[jwt_issuers]]`` without ``claims``.
    """

    __pydantic_config__ = STRICT

    issuers: tuple[JwtIssuerConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _no_claims(cls, data: Any) -> Any:
        issuers = data.get("issuers") if isinstance(data, dict) else None
        for index, issuer in enumerate(issuers if isinstance(issuers, list) else ()):
            if isinstance(issuer, dict) and "claims" in issuer:
                raise refuse(
                    "config.unknown_key",
                    f"issuers[{index}].claims: unknown key (a person's issuer maps no claims)",
                )
        return data


@dataclass(frozen=True, slots=True)
class Config:
    __pydantic_config__ = STRICT

    trust_domain: Required
    store_url: Str = "sqlite:///zerolane.db"
    server: ServerConfig = field(default_factory=ServerConfig)
    svid: SvidConfig = field(default_factory=SvidConfig)
    #: longest any token signed by our keys may live; retired keys stay published this long
    max_token_lifetime: Int = 86400
    jwt_issuers: tuple[JwtIssuerConfig, ...] = ()
    policy_dir: Str = "policies"
    #: ``enforce``, or ``shadow``: what the policy set denies is let through and
    #: audited as a would-deny (``zerolane report shadow``; docs/policies.md)
    policy_mode: Annotated[Literal["enforce", "shadow"], reason("config.policy_mode")] = "enforce"
    tasks: TasksConfig = field(default_factory=TasksConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    #: gateways ``zerolane up`` starts with the API (``[[gateways]]``)
    gateways: tuple[GatewayEntry, ...] = ()
    revocation: RevocationConfig = field(default_factory=RevocationConfig)
    #: human approvals a policy asks for (``[approvals]``)
    approvals: ApprovalsConfig = field(default_factory=ApprovalsConfig)
    grants: GrantsConfig = field(default_factory=GrantsConfig)
    #: issuers of people's OIDC ID tokens, for tasks opened on a person's behalf
    users: UsersConfig = field(default_factory=UsersConfig)
    #: TLS for the API and where client certificates come from (``[tls]``)
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the API's listener reads, and for how long (``[http]``)
    http: HttpLimits = field(default_factory=HttpLimits)
    #: the authorization server of standard MCP clients (``[oauth]``, off by default)
    oauth: OAuthConfig = field(default_factory=OAuthConfig)
    #: the detectors that read the audit log while tasks run (``[detection]``)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    #: risk scores and automatic responses to detections (``[response]``)
    response: ResponseSettings = field(default_factory=ResponseSettings)
    #: control testing of this deployment by zerolane up (``[probe]``, off by default)
    probe: ProbeSchedule = field(default_factory=ProbeSchedule)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.svid.max_ttl > self.max_token_lifetime:
            raise refuse("config.svid_ttl", "need svid.max_ttl <= max_token_lifetime")
        if self.oauth.enabled and not self.server.public_url:
            raise refuse(
                "config.oauth_issuer",
                "[oauth] needs server.public_url: it is the issuer clients check",
            )
        users = {issuer.name: issuer for issuer in self.users.issuers}
        for index, sign_in in enumerate(self.oauth.sign_in):
            trusted = users.get(sign_in.issuer)
            if trusted is None:
                raise refuse(
                    "config.oauth_sign_in",
                    f"oauth.sign_in[{index}].issuer {sign_in.issuer!r} names no [[users.issuers]]",
                )
            if trusted.audience != sign_in.client_id:
                raise refuse(
                    "config.oauth_sign_in",
                    f"oauth.sign_in[{index}].client_id is not the audience of users.issuers "
                    f"{sign_in.issuer!r}: the ID tokens it gets are for its client_id",
                )
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.gateways):  # names name them in logs and errors
            if entry.name in seen:
                raise refuse(
                    "config.gateway_name",
                    f"gateways[{index}].name {entry.name!r} is also the name of "
                    f"gateways[{seen[entry.name]}]: give each gateway its own name",
                )
            seen[entry.name] = index
        return self


def parse_config(doc: dict[str, Any], source: str | None = None) -> Config:
    """A parsed ``zerolane.toml`` as a :class:`Config`, or every problem in it at once
    (``source`` names the file in each line)."""
    return validate(Config, doc, source=source)


def load_config(home: Path) -> Config:
    path = home / CONFIG_NAME
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise InvalidInput(
            "home.missing",
            f"no zerolane home at {home.absolute()}: a command uses --home DIR, else"
            " $ZEROLANE_HOME, else ./.zerolane in the current directory; point one of"
            " them at the home 'zerolane init' made (or run 'zerolane init' to make one)",
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput("config.syntax", f"{path}: {err}") from err
    return parse_config(doc, str(path))


def _render_grants(grants: GrantsConfig) -> dict[str, Any]:
    doc: dict[str, Any] = {"retry_interval": grants.retry_interval}
    for name in ("postgres", "hmac", "static"):
        section = getattr(grants, name)
        if section is not None:
            doc[name] = {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in asdict(section).items()
                if v is not None
            }
    return doc


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
    if config.policy_mode != "enforce":
        doc["policy_mode"] = config.policy_mode
    if config.audit != AuditConfig(mode=config.audit.mode):
        doc["audit"] = asdict(config.audit)
    if config.server.public_url is not None:
        doc["server"]["public_url"] = config.server.public_url
    if config.jwt_issuers:
        doc["jwt_issuers"] = [_render_issuer(issuer) for issuer in config.jwt_issuers]
    if config.gateways:
        doc["gateways"] = [_render_gateway(entry) for entry in config.gateways]
    if config.users.issuers:
        issuers = [_render_issuer(issuer) for issuer in config.users.issuers]
        doc["users"] = {"issuers": [{k: v for k, v in i.items() if k != "claims"} for i in issuers]}
    doc["revocation"] = {"grace_seconds": config.revocation.grace_seconds}
    if config.approvals != ApprovalsConfig():
        doc["approvals"] = asdict(config.approvals)
    if config.grants != GrantsConfig():
        doc["grants"] = _render_grants(config.grants)
    if config.svid.x509_ttl != DEFAULT_X509_TTL:
        doc["svid"]["x509_ttl"] = config.svid.x509_ttl
    if config.tls != TlsConfig():
        doc["tls"] = render_tls(config.tls)
    if config.http != HttpLimits():
        doc["http"] = render_http_limits(config.http)
    if config.oauth != OAuthConfig():
        oauth = asdict(config.oauth)
        oauth["resources"] = list(config.oauth.resources)
        oauth["sign_in"] = [
            {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in asdict(e).items()
                if v is not None
            }
            for e in config.oauth.sign_in
        ]
        doc["oauth"] = {k: v for k, v in oauth.items() if v is not None}
    if config.detection != DetectionSettings():
        doc["detection"] = _render_detection(config.detection)
    if config.response != ResponseSettings():
        doc["response"] = _render_plain(asdict(config.response))
    return tomli_w.dumps(doc)


def _render_plain(value: Any) -> Any:
    """Dicts, lists and tuples of plain values as TOML writes them (None left out)."""
    if isinstance(value, dict):
        return {k: _render_plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_render_plain(v) for v in value]
    return value


def _render_detection(detection: DetectionSettings) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return list(value) if isinstance(value, tuple) else value

    return {k: plain(v) for k, v in asdict(detection).items()}


def _render_gateway(entry: GatewayEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "name": entry.name,
        "config": entry.config,
        "enabled": entry.enabled,
    }


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
