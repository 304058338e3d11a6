"""The gateway's configuration file (TOML, or YAML by its suffix), parsed strictly.

Unknown keys and wrong types are refused with the key's dotted name
(``upstreams[0].routes[2].resource``), so a typo never silently opens or closes a
route. Relative file names (secrets, keys, OpenAPI documents) are relative to the
configuration file. See ``docs/gateway.md`` for the reference and a full example.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from zerolane.errors import InvalidInput, ZerolaneError
from zerolane.gateway.normalize import HOP_BY_HOP, OWN, SPOOFABLE, SPOOFABLE_PREFIXES
from zerolane.gateway.openapi import import_routes
from zerolane.gateway.routes import Route, RouteTable, check_sensitivity, make_route
from zerolane.settings.listener import HttpLimits, TlsConfig, parse_http_limits, parse_tls
from zerolane.tokens.rfc9449 import normalize_htu

MIB = 1 << 20
DEFAULT_MAX_REQUEST = 10 * MIB
DEFAULT_MAX_RESPONSE = 100 * MIB
RESERVED_PATHS = ("/healthz", "/metrics")
_SIZE = re.compile(r"\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*")
_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8800


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_body: int = DEFAULT_MAX_REQUEST
    max_response_body: int = DEFAULT_MAX_RESPONSE
    #: seconds to connect, and between two reads, before ``upstream.timeout``
    upstream_timeout: float = 30.0
    #: keep-alive connections kept open to each upstream host
    upstream_connections: int = 100


@dataclass(frozen=True, slots=True)
class Normalization:
    #: allow percent-encoded UTF-8 (NFKC, no controls) in paths; raw bytes never
    allow_non_ascii: bool = False


@dataclass(frozen=True, slots=True)
class CredentialConfig:
    type: str  # "static" or "hmac"
    header: str
    format: str
    secret_file: Path | None = None
    secret_env: str | None = None
    key_file: Path | None = None
    ttl: int = 300


@dataclass(frozen=True)
class Upstream:
    name: str
    base_url: str
    prefix: str
    destination: str
    default_sensitivity: str
    routes: RouteTable
    credential: CredentialConfig | None = None


@dataclass(frozen=True)
class GatewayConfig:
    public_url: str
    audience: str
    upstreams: tuple[Upstream, ...]
    listen: Listen = Listen()
    limits: Limits = Limits()
    normalization: Normalization = Normalization()
    metrics: bool = False
    #: TLS served here, and where client certificates come from (RFC 8705)
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the listener reads, and for how long (``[http]``)
    http: HttpLimits = field(default_factory=HttpLimits)

    def upstream_for(self, path: str) -> tuple[Upstream, str] | None:
        """The upstream whose prefix ``path`` is under, and the rest of the path."""
        for upstream in self.upstreams:
            prefix = upstream.prefix
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return upstream, path[len(prefix) :]
        return None


class _Table:
    """A config table being consumed key by key; leftovers are unknown keys."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise InvalidInput("config.type", f"{where or 'the document'} must be a table")
        self.data = dict(raw)
        self.where = f"{where}." if where else ""

    def key(self, name: str) -> str:
        return f"{self.where}{name}"

    def take(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if name not in self.data:
            if default is _REQUIRED:
                raise InvalidInput("config.missing", f"{self.key(name)} is required")
            return default
        value = self.data.pop(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise InvalidInput("config.type", f"{self.key(name)} must be of type {names}")
        return value

    def text(self, name: str, default: Any = None) -> Any:
        value = self.take(name, str, default)
        if isinstance(value, str) and not value.strip():
            raise InvalidInput("config.type", f"{self.key(name)} must not be empty")
        return value

    def done(self) -> None:
        if self.data:
            names = ", ".join(self.key(str(k)) for k in sorted(self.data, key=str))
            raise InvalidInput("config.unknown_key", f"unknown configuration key(s): {names}")


_REQUIRED = object()


def _size(table: _Table, name: str, default: int) -> int:
    value = table.take(name, (int, str), default)
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if not match:
            raise InvalidInput(
                "config.size", f"{table.key(name)} is bytes or a size like '10 MiB' or '512 KiB'"
            )
        value = int(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0:
        raise InvalidInput("config.size", f"{table.key(name)} must be positive")
    return int(value)


def _url(value: str, key: str, *, allow_path: bool) -> str:
    parts = urlsplit(value)
    try:
        normalize_htu(value)
    except ZerolaneError as err:
        raise InvalidInput("config.url", f"{key}: {err.message}") from None
    if parts.query or parts.fragment or value.endswith("?") or value.endswith("#"):
        raise InvalidInput("config.url", f"{key} must have no query or fragment")
    path = parts.path.rstrip("/")
    if path and (not allow_path or "//" in path or "%" in path or "/." in path):
        raise InvalidInput("config.url", f"{key} may only have a plain path")
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


def _header(table: _Table, default: str) -> str:
    header: str = table.text("header", default)
    name = header.lower().encode()
    if not _HEADER.fullmatch(header) or (
        name != b"authorization"
        and (name in HOP_BY_HOP | SPOOFABLE | OWN or name.startswith(SPOOFABLE_PREFIXES))
    ):
        raise InvalidInput("config.header", f"{table.key('header')} {header!r} cannot be injected")
    return header


def _file(table: _Table, name: str, base: Path) -> Path | None:
    value = table.text(name)
    return None if value is None else (base / value)


def _credential(raw: object, where: str, base: Path) -> CredentialConfig:
    table = _Table(raw, where)
    kind = table.text("type", _REQUIRED)
    if kind == "static":
        header = _header(table, "Authorization")
        default_format = "Bearer {secret}" if header.lower() == "authorization" else "{secret}"
        fmt = table.text("format", default_format)
        secret_file, secret_env = _file(table, "secret_file", base), table.text("secret_env")
        table.done()
        if (secret_file is None) == (secret_env is None):
            raise InvalidInput(
                "config.credential", f"{where}: set exactly one of secret_file, secret_env"
            )
        return CredentialConfig("static", header, fmt, secret_file, secret_env)
    if kind == "hmac":
        header = _header(table, "X-Api-Key")
        fmt = table.text("format", "{secret}")
        key_file = _file(table, "key_file", base)
        ttl = table.take("ttl", int, 300)
        table.done()
        if key_file is None:
            raise InvalidInput("config.missing", f"{where}.key_file is required")
        if ttl <= 0:
            raise InvalidInput("config.credential", f"{where}.ttl must be positive")
        return CredentialConfig("hmac", header, fmt, key_file=key_file, ttl=ttl)
    raise InvalidInput("config.credential", f"{where}.type is 'static' or 'hmac', not {kind!r}")


def _prefix(value: str, key: str) -> str:
    segments = value.split("/")
    if (
        not value.startswith("/")
        or len(segments) < 2
        or not all(_PREFIX_SEGMENT.fullmatch(s) for s in segments[1:])
        or value in RESERVED_PATHS
    ):
        raise InvalidInput(
            "config.prefix",
            f"{key} is a path like '/finance' (no trailing '/'; not /healthz or /metrics)",
        )
    return value


def _route(raw: object, where: str) -> Route:
    table = _Table(raw, where)
    method = table.text("method", _REQUIRED)
    path = table.text("path", _REQUIRED)
    action = table.text("action", _REQUIRED)
    resource = table.text("resource", _REQUIRED)
    sensitivity = table.text("sensitivity")
    table.done()
    return make_route(method, path, action, resource, sensitivity, f"{where}.")


def _upstream(raw: object, where: str, base: Path) -> Upstream:
    table = _Table(raw, where)
    name = table.text("name", _REQUIRED)
    if not _NAME.fullmatch(name):
        raise InvalidInput("config.name", f"{where}.name is 1..64 of [a-z0-9_-]")
    base_url = _url(table.text("base_url", _REQUIRED), table.key("base_url"), allow_path=True)
    prefix = _prefix(table.text("prefix", _REQUIRED), table.key("prefix"))
    destination = table.text("destination", urlsplit(base_url).hostname)
    sensitivity = check_sensitivity(
        table.text("default_sensitivity", "internal"), table.key("default_sensitivity")
    )
    raw_credential = table.take("credential", dict)
    credential = (
        None
        if raw_credential is None
        else _credential(raw_credential, table.key("credential"), base)
    )
    routes = [
        _route(r, f"{where}.routes[{i}]") for i, r in enumerate(table.take("routes", list, []))
    ]
    openapi = table.text("openapi")
    table.done()
    if openapi is not None:
        routes += import_routes(base / openapi, name, f"{where}.")
    if not routes:
        raise InvalidInput("config.routes", f"{where} maps no routes (routes or openapi)")
    return Upstream(
        name, base_url, prefix, destination, sensitivity, RouteTable(routes, where), credential
    )


def _check_prefixes(upstreams: list[Upstream]) -> None:
    names: set[str] = set()
    for index, upstream in enumerate(upstreams):
        if upstream.name in names:
            raise InvalidInput("config.name", f"upstreams[{index}].name repeats {upstream.name!r}")
        names.add(upstream.name)
        for other in upstreams[:index]:
            a, b = sorted((upstream.prefix + "/", other.prefix + "/"), key=len)
            if b.startswith(a):
                raise InvalidInput(
                    "config.prefix",
                    f"upstreams[{index}].prefix {upstream.prefix!r} overlaps {other.prefix!r}",
                )


def parse_gateway_config(doc: object, base: Path) -> GatewayConfig:
    """Parse a loaded document; ``base`` is the folder relative file names start from."""
    table = _Table(doc, "")
    public_url = _url(table.text("public_url", _REQUIRED), "public_url", allow_path=True)
    audience = table.text("audience", public_url)
    listen_t = _Table(table.take("listen", dict, {}), "listen")
    listen = Listen(listen_t.text("host", "127.0.0.1"), listen_t.take("port", int, 8800))
    listen_t.done()
    if not 0 < listen.port < 65536:
        raise InvalidInput("config.port", "listen.port must be 1..65535")
    limits_t = _Table(table.take("limits", dict, {}), "limits")
    limits = Limits(
        max_request_body=_size(limits_t, "max_request_body", DEFAULT_MAX_REQUEST),
        max_response_body=_size(limits_t, "max_response_body", DEFAULT_MAX_RESPONSE),
        upstream_timeout=float(limits_t.take("upstream_timeout", (int, float), 30.0)),
        upstream_connections=limits_t.take("upstream_connections", int, 100),
    )
    limits_t.done()
    if not (0 < limits.upstream_timeout <= 3600 and 0 < limits.upstream_connections <= 10_000):
        raise InvalidInput(
            "config.limits",
            "limits.upstream_timeout is 0..3600 s, limits.upstream_connections 1..10000",
        )
    norm_t = _Table(table.take("normalization", dict, {}), "normalization")
    normalization = Normalization(norm_t.take("allow_non_ascii", bool, False))
    norm_t.done()
    metrics = table.take("metrics", bool, False)
    tls = parse_gateway_tls(table.take("tls", dict, {}), base)
    http = parse_http_limits(table.take("http", dict, {}))
    raw_upstreams = table.take("upstreams", list, _REQUIRED)
    table.done()
    upstreams = [_upstream(u, f"upstreams[{i}]", base) for i, u in enumerate(raw_upstreams)]
    if not upstreams:
        raise InvalidInput("config.missing", "upstreams must list at least one upstream")
    _check_prefixes(upstreams)
    return GatewayConfig(
        public_url, audience, tuple(upstreams), listen, limits, normalization, metrics, tls, http
    )


def parse_gateway_tls(raw: dict[str, Any], base: Path) -> TlsConfig:
    """A gateway's ``[tls]`` (HTTP or MCP), its files made absolute (relative to ``base``,
    the configuration file's folder)."""
    tls = parse_tls(raw)

    def absolute(value: str | None) -> str | None:
        return str(base / value) if value is not None else None

    return replace(
        tls,
        cert_file=absolute(tls.cert_file),
        key_file=absolute(tls.key_file),
        client_ca_file=absolute(tls.client_ca_file),
    )


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and parse the file at ``path`` (``.yaml``/``.yml`` as YAML, else TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput("config.file", f"cannot read {path}: {err}") from err
    try:
        yaml_file = path.suffix in (".yaml", ".yml")
        doc = yaml.safe_load(text) if yaml_file else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise InvalidInput("config.syntax", f"{path}: {err}") from err
    return parse_gateway_config(doc, path.resolve().parent)
