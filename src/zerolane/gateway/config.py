"""The gateway's configuration file (TOML, or YAML by its suffix), parsed strictly.

The file is read in two steps, each refusing every problem it finds at once, one line
each with the file and the dotted name (``upstreams[0].routes[2].resource``), so a typo
never silently opens or closes a route: its shape (:mod:`zerolane.settings`: unknown
keys, wrong types, values out of bounds), then its routes (each route's template, the
OpenAPI documents, duplicates and overlapping prefixes). Relative file names (secrets,
keys, OpenAPI documents, ``[tls]`` files) are relative to the configuration file. See
``docs/gateway.md`` for the reference and a full example.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BeforeValidator, ValidationInfo, model_validator

from zerolane.errors import InvalidInput, ZerolaneError
from zerolane.gateway.normalize import HOP_BY_HOP, OWN, SPOOFABLE, SPOOFABLE_PREFIXES
from zerolane.gateway.openapi import import_routes
from zerolane.gateway.routes import Route, RouteTable, make_route
from zerolane.settings.listener import HttpLimits, TlsConfig, tls_under
from zerolane.settings.validate import (
    STRICT,
    Bool,
    Float,
    Int,
    SensitivityLabel,
    Str,
    base_of,
    combine,
    reason,
    refuse,
    up_to,
    validate,
    within,
)
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


#: how a route's requests are decided: ``enforce``, or ``shadow`` (what the policies deny
#: is let through and audited as a would-deny; docs/gateway.md)
Mode = Annotated[Literal["enforce", "shadow"], reason("config.mode")]


def _given(value: str) -> str:
    if not value.strip():
        raise refuse("config.missing", "is required, not empty")
    return value


#: a string that is not empty nor only spaces
Text = Annotated[Str, AfterValidator(_given)]


def _size(value: object) -> object:
    """``"10 MiB"``, ``"512 KiB"``... as bytes (a number of bytes as it is)."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if not match:
            raise refuse("config.size", "is bytes or a size like '10 MiB' or '512 KiB'")
        return int(match.group(1)) * _UNITS[match.group(2)]
    return value


def _positive_size(value: int) -> int:
    if value <= 0:
        raise refuse("config.size", "must be positive")
    return value


Size = Annotated[Int, BeforeValidator(_size), AfterValidator(_positive_size)]


@dataclass(frozen=True, slots=True)
class Listen:
    __pydantic_config__ = STRICT

    host: Text = "127.0.0.1"
    port: Annotated[Int, within("config.port", 1, 65535)] = 8800


@dataclass(frozen=True, slots=True)
class Limits:
    __pydantic_config__ = STRICT

    max_request_body: Size = DEFAULT_MAX_REQUEST
    max_response_body: Size = DEFAULT_MAX_RESPONSE
    #: seconds to connect, and between two reads, before ``upstream.timeout``
    upstream_timeout: Annotated[Float, up_to("config.limits", 3600, " seconds")] = 30.0
    #: keep-alive connections kept open to each upstream host
    upstream_connections: Annotated[Int, within("config.limits", 1, 10_000)] = 100
    #: seconds a body read before the decision (up to 64 KiB, once the token and its
    #: proof are verified) may take to arrive whole; slower: 408 ``request.body_timeout``
    body_timeout: Annotated[Float, up_to("config.limits", 3600, " seconds")] = 10.0
    #: seconds a body streamed upstream after the decision (chunked, or larger than
    #: 64 KiB) may take to arrive whole: an upload's time, not a small body's;
    #: slower: 408 ``request.body_timeout``
    body_stream_timeout: Annotated[Float, up_to("config.limits", 86_400, " seconds")] = 300.0
    #: seconds a body may pause between two of its parts (a chunked body trickled in, a
    #: large one stalled mid-way); longer: 408 ``request.body_timeout``
    body_idle_timeout: Annotated[Float, up_to("config.limits", 3600, " seconds")] = 5.0


@dataclass(frozen=True, slots=True)
class Normalization:
    __pydantic_config__ = STRICT

    #: allow percent-encoded UTF-8 (NFKC, no controls) in paths; raw bytes never
    allow_non_ascii: Bool = False


def _header(header: str) -> str:
    name = header.lower().encode()
    if not _HEADER.fullmatch(header) or (
        name != b"authorization"
        and (name in HOP_BY_HOP | SPOOFABLE | OWN or name.startswith(SPOOFABLE_PREFIXES))
    ):
        raise refuse("config.header", f"{header!r} cannot be injected")
    return header


@dataclass(frozen=True, slots=True)
class CredentialConfig:
    """``credential``: what the gateway adds to a forwarded request. ``static``: a
    secret (``secret_file`` or ``secret_env``), ``header`` default ``Authorization``
    (``format`` ``Bearer {secret}``); ``hmac``: task-long keys from ``key_file`` living
    ``ttl`` seconds, ``header`` default ``X-Api-Key`` (``format`` ``{secret}``)."""

    __pydantic_config__ = STRICT

    type: Annotated[Literal["static", "hmac"], reason("config.credential")]
    #: [default: by ``type``]
    header: Annotated[Text, AfterValidator(_header)] = ""
    #: [default: by ``type`` and ``header``]
    format: Text = ""
    secret_file: Path | None = None
    secret_env: Text | None = None
    key_file: Path | None = None
    ttl: Int = 300

    @model_validator(mode="after")
    def _kind(self, info: ValidationInfo) -> Self:
        static = self.type == "static"
        wrong = ("key_file",) if static else ("secret_file", "secret_env")
        for key in wrong:
            if getattr(self, key) is not None:
                raise refuse("config.unknown_key", f"{key}: unknown key for a {self.type} one")
        if static and (self.secret_file is None) == (self.secret_env is None):
            raise refuse("config.credential", "set exactly one of secret_file, secret_env")
        if not static and self.key_file is None:
            raise refuse("config.missing", "key_file is required")
        if self.ttl <= 0:
            raise refuse("config.credential", "ttl must be positive")
        header = self.header or ("Authorization" if static else "X-Api-Key")
        bearer = static and header.lower() == "authorization"
        # frozen: the defaults that depend on the type, and files under the document's
        # folder, set once here
        object.__setattr__(self, "header", header)
        object.__setattr__(
            self, "format", self.format or ("Bearer {secret}" if bearer else "{secret}")
        )
        base = base_of(info)
        for key in ("secret_file", "key_file"):
            value = getattr(self, key)
            if base is not None and value is not None:
                object.__setattr__(self, key, base / value)
        return self


def _url(value: str, *, allow_path: bool) -> str:
    parts = urlsplit(value)
    try:
        normalize_htu(value)
    except ZerolaneError as err:
        raise refuse("config.url", err.message) from None
    if parts.query or parts.fragment or value.endswith("?") or value.endswith("#"):
        raise refuse("config.url", "must have no query or fragment")
    path = parts.path.rstrip("/")
    if path and (not allow_path or "//" in path or "%" in path or "/." in path):
        raise refuse("config.url", "may only have a plain path")
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


def _base_url(value: str) -> str:
    return _url(value, allow_path=True)


def _prefix(value: str) -> str:
    segments = value.split("/")
    if (
        not value.startswith("/")
        or len(segments) < 2
        or not all(_PREFIX_SEGMENT.fullmatch(s) for s in segments[1:])
        or value in RESERVED_PATHS
    ):
        raise refuse(
            "config.prefix",
            "is a path like '/finance' (no trailing '/'; not /healthz or /metrics)",
        )
    return value


def _upstream_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise refuse("config.name", "is 1..64 of [a-z0-9_-]")
    return value


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One ``[[upstreams.routes]]`` table as written (:func:`make_route` checks the
    templates)."""

    __pydantic_config__ = STRICT

    method: Text
    path: Text
    action: Text
    resource: Text
    sensitivity: Text | None = None
    #: [default: the upstream's ``mode``]
    mode: Mode | None = None


@dataclass(frozen=True, slots=True)
class UpstreamEntry:
    """One ``[[upstreams]]`` table as written; its routes are built by
    :func:`parse_gateway_config`."""

    __pydantic_config__ = STRICT

    name: Annotated[Text, AfterValidator(_upstream_name)]
    base_url: Annotated[Text, AfterValidator(_base_url)]
    prefix: Annotated[Text, AfterValidator(_prefix)]
    #: the destination decisions name [default: ``base_url``'s host]
    destination: Text | None = None
    default_sensitivity: SensitivityLabel = "internal"
    credential: CredentialConfig | None = None
    routes: tuple[RouteEntry, ...] = ()
    #: an OpenAPI document whose operations are routes too
    openapi: Text | None = None
    #: the mode of its routes (a route's own ``mode`` wins): ``enforce`` or ``shadow``
    mode: Mode = "enforce"


@dataclass(frozen=True, slots=True)
class GatewayFile:
    """The file as written: :class:`GatewayConfig` once its routes are built."""

    __pydantic_config__ = STRICT

    public_url: Annotated[Text, AfterValidator(_base_url)]
    upstreams: tuple[UpstreamEntry, ...]
    #: the audience task tokens must name [default: ``public_url``]
    audience: Text | None = None
    listen: Listen = field(default_factory=Listen)
    limits: Limits = field(default_factory=Limits)
    normalization: Normalization = field(default_factory=Normalization)
    metrics: Bool = False
    #: TLS served here, and where client certificates come from (RFC 8705)
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the listener reads, and for how long (``[http]``)
    http: HttpLimits = field(default_factory=HttpLimits)

    @model_validator(mode="after")
    def _some(self) -> Self:
        if not self.upstreams:
            raise refuse("config.missing", "upstreams must list at least one upstream")
        return self


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
    listen: Listen = field(default_factory=Listen)
    limits: Limits = field(default_factory=Limits)
    normalization: Normalization = field(default_factory=Normalization)
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


def _routes(entry: UpstreamEntry, where: str, base: Path) -> RouteTable:
    routes: list[Route] = []
    problems: list[InvalidInput] = []
    modes: list[str | None] = []
    for index, raw in enumerate(entry.routes):
        try:
            routes.append(
                make_route(
                    raw.method,
                    raw.path,
                    raw.action,
                    raw.resource,
                    raw.sensitivity,
                    f"{where}.routes[{index}].",
                )
            )
            modes.append(raw.mode)
        except InvalidInput as err:
            problems.append(err)
    if entry.openapi is not None:
        try:
            imported = import_routes(base / entry.openapi, entry.name, f"{where}.")
            routes += imported
            modes += [None] * len(imported)
        except InvalidInput as err:
            problems.append(err)
    if problems:
        raise _together(problems)
    pairs = zip(routes, modes, strict=True)
    routes = [_moded(route, mode or entry.mode, entry.name) for route, mode in pairs]
    if not routes:
        raise InvalidInput("config.routes", f"{where}: maps no routes (routes or openapi)")
    return RouteTable(routes, where)


def _moded(route: Route, mode: str, upstream: str) -> Route:
    """``route`` in ``mode``: in shadow, named as its decisions name it."""
    if mode != "shadow":
        return route
    return dataclasses.replace(route, shadow=f"route:{upstream} {route.method} {route.path}")


def _together(problems: list[InvalidInput]) -> InvalidInput:
    lines = [(p.reason, line) for p in problems for line in p.message.splitlines()]
    return combine(lines, source=None, scheme="config")


def _upstreams(entries: tuple[UpstreamEntry, ...], base: Path) -> tuple[Upstream, ...]:
    built: list[Upstream] = []
    problems: list[InvalidInput] = []
    for index, entry in enumerate(entries):
        where = f"upstreams[{index}]"
        try:
            table = _routes(entry, where, base)
        except InvalidInput as err:
            problems.append(err)
            continue
        destination = entry.destination or urlsplit(entry.base_url).hostname or ""
        built.append(
            Upstream(
                entry.name,
                entry.base_url,
                entry.prefix,
                destination,
                entry.default_sensitivity,
                table,
                entry.credential,
            )
        )
    problems += _clashes(entries)
    if problems:
        raise _together(problems)
    return tuple(built)


def _clashes(entries: tuple[UpstreamEntry, ...]) -> list[InvalidInput]:
    problems: list[InvalidInput] = []
    names: set[str] = set()
    for index, upstream in enumerate(entries):
        if upstream.name in names:
            problems.append(
                InvalidInput("config.name", f"upstreams[{index}].name: repeats {upstream.name!r}")
            )
        names.add(upstream.name)
        for other in entries[:index]:
            a, b = sorted((upstream.prefix + "/", other.prefix + "/"), key=len)
            if b.startswith(a):
                problems.append(
                    InvalidInput(
                        "config.prefix",
                        f"upstreams[{index}].prefix: {upstream.prefix!r} overlaps {other.prefix!r}",
                    )
                )
    return problems


def parse_gateway_config(doc: object, base: Path, source: str | None = None) -> GatewayConfig:
    """Parse a loaded document; ``base`` is the folder relative file names start from,
    ``source`` names the file in each line of a refusal."""
    if not isinstance(doc, dict):
        where = f"{source}: " if source else ""
        raise InvalidInput("config.type", f"{where}the document must be a table")
    written = validate(GatewayFile, doc, source=source, context={"base": base})
    try:
        upstreams = _upstreams(written.upstreams, base)
    except InvalidInput as err:
        prefix = f"{source}: " if source else ""
        lines = "\n".join(prefix + line for line in err.message.splitlines())
        raise InvalidInput(err.reason, lines) from None
    return GatewayConfig(
        written.public_url,
        written.audience or written.public_url,
        upstreams,
        written.listen,
        written.limits,
        written.normalization,
        written.metrics,
        tls_under(written.tls, base),
        written.http,
    )


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and parse the file at ``path`` (``.yaml``/``.yml`` as YAML, else TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput("config.file", f"cannot read {path}: {err}") from err
    try:
        yaml_file = path.suffix in (".yaml", ".yml")
        doc: Any = yaml.safe_load(text) if yaml_file else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise InvalidInput("config.syntax", f"{path}: {err}") from err
    return parse_gateway_config(doc, path.resolve().parent, str(path))
