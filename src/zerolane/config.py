"""The deployment's configuration file (``<home>/zerolane.toml``).

Unknown keys and wrong types are refused with the key's dotted name, so a typo never
silently turns a setting off.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePath
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


DEFAULT_X509_TTL = 3600


@dataclass(frozen=True, slots=True)
class SvidConfig:
    default_ttl: int = 300
    max_ttl: int = 3600
    #: the longest an X.509-SVID lives (seconds; the CA's own validity caps it too)
    x509_ttl: int = DEFAULT_X509_TTL


TLS_CLIENT_CERT = ("none", "optional", "required")
_TLS_HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
#: headers a client certificate can never be read from
_TLS_RESERVED = frozenset({"authorization", "dpop", "host", "content-length", "cookie"})


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """``[tls]``: TLS served directly, and where a request's client certificate comes
    from (RFC 8705 certificate-bound tokens; docs/deployment.md)."""

    #: serve HTTPS directly: the server's certificate (chain) and key files
    cert_file: str | None = None
    key_file: str | None = None
    #: CA certificates a client certificate must chain to [default: the home's X.509 CA]
    client_ca_file: str | None = None
    #: whether the TLS server asks for a client certificate: none, optional, required
    client_cert: str = "optional"
    #: behind a TLS-terminating proxy: the header it puts the verified certificate in...
    client_cert_header: str | None = None
    #: ...believed only from these peers (CIDRs); from anyone else it is ignored
    trusted_proxies: tuple[str, ...] = ()

    @property
    def serves_tls(self) -> bool:
        return self.cert_file is not None


def parse_tls(raw: object, where: str = "tls.") -> TlsConfig:
    """A ``[tls]`` table (of ``zerolane.toml`` or a gateway's file), checked strictly."""
    if not isinstance(raw, dict):
        raise InvalidInput("config.type", f"{where[:-1]} must be a table")
    table = dict(raw)
    tls = TlsConfig(
        cert_file=_take(table, "cert_file", str, where, None),
        key_file=_take(table, "key_file", str, where, None),
        client_ca_file=_take(table, "client_ca_file", str, where, None),
        client_cert=_take(table, "client_cert", str, where, "optional"),
        client_cert_header=_take(table, "client_cert_header", str, where, None),
        trusted_proxies=tuple(_take(table, "trusted_proxies", list, where, [])),
    )
    _no_extra(table, where)
    if (tls.cert_file is None) != (tls.key_file is None):
        raise InvalidInput("config.tls", f"{where}cert_file and {where}key_file go together")
    if tls.client_cert not in TLS_CLIENT_CERT:
        raise InvalidInput("config.tls", f"{where}client_cert is one of none, optional, required")
    header = tls.client_cert_header
    if header is not None and (
        not _TLS_HEADER.fullmatch(header) or header.lower() in _TLS_RESERVED
    ):
        raise InvalidInput("config.tls", f"{where}client_cert_header is not a usable header name")
    for proxy in tls.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except (TypeError, ValueError) as err:
            raise InvalidInput(
                "config.tls", f"{where}trusted_proxies holds {proxy!r}, not an address or CIDR"
            ) from err
    if (header is None) != (not tls.trusted_proxies):
        raise InvalidInput(
            "config.tls",
            f"{where}client_cert_header and {where}trusted_proxies go together: a certificate "
            "header is believed only from the proxies listed",
        )
    return tls


def render_tls(tls: TlsConfig) -> dict[str, Any]:
    values = {k: getattr(tls, k) for k in tls.__dataclass_fields__}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}


KIB = 1 << 10


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """``[http]``: how much of a request head a listener reads, and for how long, before
    it refuses the request (nginx's ``large_client_header_buffers 4 8k`` and
    ``client_header_timeout`` are the model; docs/deployment.md). Sizes are bytes as
    sent, line endings not included for one line."""

    #: the request line (``GET /path?query HTTP/1.1``); longer: 414
    max_request_line_bytes: int = 8 * KIB
    #: one header line (``name: value``); longer: 431
    max_header_line_bytes: int = 8 * KIB
    #: all header lines together, each with its line ending; more: 431
    max_headers_bytes: int = 32 * KIB
    #: header lines in one request; more: 431
    max_header_count: int = 100
    #: seconds from a request head's first byte (or the connection's opening) until
    #: its last; slower: 408 and the connection closed
    header_timeout_seconds: float = 10.0


#: the largest any ``[http]`` size may be set to (1 MiB)
MAX_HTTP_LIMIT_BYTES = 1 << 20


def parse_http_limits(raw: object, where: str = "http.") -> HttpLimits:
    """An ``[http]`` table (of ``zerolane.toml`` or a gateway's file), checked strictly:
    every size 1 byte to 1 MiB, a header line no longer than all headers together, at
    most 10000 headers, the timeout over 0 and at most 3600 seconds."""
    if not isinstance(raw, dict):
        raise InvalidInput("config.type", f"{where[:-1]} must be a table")
    table = dict(raw)
    default = HttpLimits()
    sizes = {
        key: _take(table, key, int, where, getattr(default, key))
        for key in ("max_request_line_bytes", "max_header_line_bytes", "max_headers_bytes")
    }
    count = _take(table, "max_header_count", int, where, default.max_header_count)
    timeout = table.pop("header_timeout_seconds", default.header_timeout_seconds)
    _no_extra(table, where)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidInput("config.type", f"{where}header_timeout_seconds must be a number")
    for key, value in sizes.items():
        if not 0 < value <= MAX_HTTP_LIMIT_BYTES:
            raise InvalidInput(
                "config.http", f"{where}{key} is 1 to {MAX_HTTP_LIMIT_BYTES} bytes, not {value}"
            )
    if sizes["max_header_line_bytes"] > sizes["max_headers_bytes"]:
        raise InvalidInput(
            "config.http",
            f"{where}max_header_line_bytes is larger than {where}max_headers_bytes: "
            "a header that long could never be read",
        )
    if not 0 < count <= 10_000:
        raise InvalidInput("config.http", f"{where}max_header_count is 1 to 10000, not {count}")
    if not 0 < timeout <= 3600:
        raise InvalidInput(
            "config.http",
            f"{where}header_timeout_seconds is over 0 and at most 3600, not {timeout}",
        )
    return HttpLimits(**sizes, max_header_count=count, header_timeout_seconds=float(timeout))


def render_http_limits(limits: HttpLimits) -> dict[str, Any]:
    return {k: getattr(limits, k) for k in limits.__dataclass_fields__}


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


#: what ``[[gateways]]`` entries may be: ``zerolane gateway run`` / ``mcp-gateway run``
GATEWAY_KINDS = ("http", "mcp")
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class GatewayEntry:
    """A gateway that ``zerolane up`` serves beside the API (one ``[[gateways]]`` table)."""

    #: ``http`` (the HTTP gateway) or ``mcp`` (the MCP gateway)
    kind: str
    #: the gateway's own configuration file; a relative path is relative to the home
    config: str
    #: how ``up`` names it in its output and errors [default: the file's stem]
    name: str
    enabled: bool = True

    def config_path(self, home: Path) -> Path:
        """The configuration file: ``config`` as written, or taken from ``home``."""
        return home / self.config


@dataclass(frozen=True, slots=True)
class RevocationConfig:
    #: seconds an enforcement point tolerates an unreachable revocation bus before it
    #: fails closed (``revocation.unreachable``); see docs/deployment.md
    grace_seconds: int = 5


@dataclass(frozen=True, slots=True)
class PostgresGrantConfig:
    """``[grants.postgres]``: one PostgreSQL role per task (docs/grants.md)."""

    #: the admin connection (a role with CREATEROLE); no password in it
    url: str
    #: the admin password, from a 0600 file or an environment variable (else libpq's own)
    password_file: str | None = None
    password_env: str | None = None
    #: where agents connect (host, port, database, options) [default: url]
    agent_url: str | None = None
    role_prefix: str = "zl_"
    #: template roles playbooks may name (empty: any that passes the broker's checks)
    templates: tuple[str, ...] = ()
    connect_timeout: int = 5


@dataclass(frozen=True, slots=True)
class HmacGrantConfig:
    """``[grants.hmac]``: task-long HMAC API keys."""

    key_file: str
    ttl: int = 300


@dataclass(frozen=True, slots=True)
class StaticGrantConfig:
    """``[grants.static]``: a legacy static secret, tracked as leases."""

    secret_file: str | None = None
    secret_env: str | None = None
    header: str = "Authorization"
    format: str = "Bearer {secret}"


@dataclass(frozen=True, slots=True)
class GrantsConfig:
    #: seconds between background sweeps of ``zerolane up`` (failed revocations, expiry)
    retry_interval: int = 30
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

    issuers: tuple[JwtIssuerConfig, ...] = ()


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
    #: gateways ``zerolane up`` starts with the API (``[[gateways]]``)
    gateways: tuple[GatewayEntry, ...] = ()
    revocation: RevocationConfig = field(default_factory=RevocationConfig)
    grants: GrantsConfig = field(default_factory=GrantsConfig)
    #: issuers of people's OIDC ID tokens, for tasks opened on a person's behalf
    users: UsersConfig = field(default_factory=UsersConfig)
    #: TLS for the API and where client certificates come from (``[tls]``)
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the API's listener reads, and for how long (``[http]``)
    http: HttpLimits = field(default_factory=HttpLimits)


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


def _issuer(raw: object, index: int, section: str = "jwt_issuers") -> JwtIssuerConfig:
    where = f"{section}[{index}]."
    if not isinstance(raw, dict):
        raise InvalidInput("config.type", f"{section}[{index}] must be a table")
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


def _users(table: dict[str, Any]) -> UsersConfig:
    users = dict(table)
    raw = _take(users, "issuers", list, "users.", [])
    _no_extra(users, "users.")
    issuers = tuple(_issuer(item, i, "users.issuers") for i, item in enumerate(raw))
    for index, issuer in enumerate(issuers):
        if issuer.claims:
            raise InvalidInput(
                "config.unknown_key", f"unknown configuration key(s): users.issuers[{index}].claims"
            )
    return UsersConfig(issuers)


def _gateway(raw: object, index: int) -> GatewayEntry:
    where = f"gateways[{index}]."
    if not isinstance(raw, dict):
        raise InvalidInput("config.type", f"gateways[{index}] must be a table")
    table = dict(raw)
    kind = _take(table, "kind", str, where, None)
    path = _take(table, "config", str, where, None)
    name = _take(table, "name", str, where, None)
    enabled = _take(table, "enabled", bool, where, True)
    _no_extra(table, where)
    if kind is None or not path:
        raise InvalidInput("config.missing", f"{where}kind and {where}config are required")
    if kind not in GATEWAY_KINDS:
        raise InvalidInput(
            "config.gateway_kind", f'{where}kind must be "http" or "mcp", not {kind!r}'
        )
    if name is None:
        name = PurePath(path).stem
        if not _GATEWAY_NAME.fullmatch(name):
            raise InvalidInput(
                "config.gateway_name",
                f"gateways[{index}]: the file name {path!r} is no usable name: set {where}name",
            )
    elif not _GATEWAY_NAME.fullmatch(name):
        raise InvalidInput(
            "config.gateway_name",
            f"{where}name must be 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit",
        )
    return GatewayEntry(kind, path, name, enabled)


def _gateways(raw: list[Any]) -> tuple[GatewayEntry, ...]:
    """``[[gateways]]``: each entry valid, names unique (they name it in logs and errors)."""
    entries = tuple(_gateway(item, i) for i, item in enumerate(raw))
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.name in seen:
            raise InvalidInput(
                "config.gateway_name",
                f"gateways[{index}].name {entry.name!r} is also the name of "
                f"gateways[{seen[entry.name]}]: give each gateway its own name",
            )
        seen[entry.name] = index
    return entries


def _revocation(raw: dict[str, Any]) -> RevocationConfig:
    table = dict(raw)
    grace = _take(table, "grace_seconds", int, "revocation.", 5)
    _no_extra(table, "revocation.")
    if not 0 <= grace <= 3600:
        raise InvalidInput("config.revocation", "revocation.grace_seconds must be 0..3600")
    return RevocationConfig(grace)


def _one_secret(table: dict[str, Any], where: str, file_key: str, env_key: str) -> None:
    if file_key in table and env_key in table:
        raise InvalidInput("config.secret", f"{where}: set at most one of {file_key}, {env_key}")


def _grants(raw: dict[str, Any]) -> GrantsConfig:
    table = dict(raw)
    interval = _take(table, "retry_interval", int, "grants.", 30)
    if not 1 <= interval <= 86400:
        raise InvalidInput("config.grants", "grants.retry_interval must be 1..86400 seconds")
    postgres = hmac = static = None
    if "postgres" in table:
        t = dict(_take(table, "postgres", dict, "grants.", {}))
        w = "grants.postgres."
        _one_secret(t, w[:-1], "password_file", "password_env")
        url = _take(t, "url", str, w, "")
        if not url:
            raise InvalidInput("config.missing", f"{w}url is required")
        templates = _take(t, "templates", list, w, [])
        if not all(isinstance(x, str) and x for x in templates):
            raise InvalidInput("config.type", f"{w}templates must be a list of role names")
        postgres = PostgresGrantConfig(
            url=url,
            password_file=_take(t, "password_file", str, w, None),
            password_env=_take(t, "password_env", str, w, None),
            agent_url=_take(t, "agent_url", str, w, None),
            role_prefix=_take(t, "role_prefix", str, w, "zl_"),
            templates=tuple(templates),
            connect_timeout=_take(t, "connect_timeout", int, w, 5),
        )
        _no_extra(t, w)
    if "hmac" in table:
        t = dict(_take(table, "hmac", dict, "grants.", {}))
        key_file = _take(t, "key_file", str, "grants.hmac.", "")
        if not key_file:
            raise InvalidInput("config.missing", "grants.hmac.key_file is required")
        hmac = HmacGrantConfig(key_file, _take(t, "ttl", int, "grants.hmac.", 300))
        _no_extra(t, "grants.hmac.")
    if "static" in table:
        t = dict(_take(table, "static", dict, "grants.", {}))
        w = "grants.static."
        _one_secret(t, w[:-1], "secret_file", "secret_env")
        static = StaticGrantConfig(
            secret_file=_take(t, "secret_file", str, w, None),
            secret_env=_take(t, "secret_env", str, w, None),
            header=_take(t, "header", str, w, "Authorization"),
            format=_take(t, "format", str, w, "Bearer {secret}"),
        )
        _no_extra(t, w)
        if static.secret_file is None and static.secret_env is None:
            raise InvalidInput("config.missing", f"{w}secret_file or {w}secret_env is required")
    _no_extra(table, "grants.")
    return GrantsConfig(interval, postgres, hmac, static)


def _render_grants(grants: GrantsConfig) -> dict[str, Any]:
    doc: dict[str, Any] = {"retry_interval": grants.retry_interval}
    for name in ("postgres", "hmac", "static"):
        section = getattr(grants, name)
        if section is not None:
            values = {k: getattr(section, k) for k in section.__dataclass_fields__}
            doc[name] = {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in values.items()
                if v is not None
            }
    return doc


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
        x509_ttl=_take(svid_t, "x509_ttl", int, "svid.", DEFAULT_X509_TTL),
    )
    _no_extra(svid_t, "svid.")
    if not 0 < svid.x509_ttl <= 365 * 86400:
        raise InvalidInput("config.svid_ttl", "svid.x509_ttl is 1 second to 365 days")
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
    gateways = _gateways(_take(table, "gateways", list, "", []))
    revocation = _revocation(_take(table, "revocation", dict, "", {}))
    grants = _grants(_take(table, "grants", dict, "", {}))
    users = _users(_take(table, "users", dict, "", {}))
    tls = parse_tls(_take(table, "tls", dict, "", {}))
    http = parse_http_limits(_take(table, "http", dict, "", {}))
    _no_extra(table, "")
    return Config(
        td,
        store_url,
        server,
        svid,
        lifetime,
        issuers,
        policy_dir,
        tasks,
        audit,
        gateways=gateways,
        revocation=revocation,
        grants=grants,
        users=users,
        tls=tls,
        http=http,
    )


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
    if config.gateways:
        doc["gateways"] = [_render_gateway(entry) for entry in config.gateways]
    if config.users.issuers:
        issuers = [_render_issuer(issuer) for issuer in config.users.issuers]
        doc["users"] = {"issuers": [{k: v for k, v in i.items() if k != "claims"} for i in issuers]}
    doc["revocation"] = {"grace_seconds": config.revocation.grace_seconds}
    if config.grants != GrantsConfig():
        doc["grants"] = _render_grants(config.grants)
    if config.svid.x509_ttl != DEFAULT_X509_TTL:
        doc["svid"]["x509_ttl"] = config.svid.x509_ttl
    if config.tls != TlsConfig():
        doc["tls"] = render_tls(config.tls)
    if config.http != HttpLimits():
        doc["http"] = render_http_limits(config.http)
    return tomli_w.dumps(doc)


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
