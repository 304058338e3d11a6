"""Forward-auth's configuration: where it listens, which proxy asks, and the route table.

A document (TOML, YAML or JSON) names ``public_url`` (the origin the proxy serves),
``destination``, ``proxy`` (``nginx``, ``traefik`` or ``envoy``), ``endpoint``,
``audience``, ``host``/``port``, ``[tls]`` (``client_cert_header`` and
``trusted_proxies`` only: forward-auth serves plain HTTP to its proxy), ``[http]`` (head
limits) and ``routes``: method and path template -> action, resource template and
sensitivity. Unknown keys are refused. The request handling is
:mod:`zerolane.gateway.forward_auth`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from zerolane.errors import InvalidInput
from zerolane.settings.listener import HttpLimits, TlsConfig, parse_http_limits, parse_tls
from zerolane.tokens.rfc9449 import DpopError, normalize_htu
from zerolane.types import Sensitivity

PROXIES = ("nginx", "traefik", "envoy")
#: an HTTP method as forward-auth accepts it
METHOD = re.compile(r"[A-Z]{1,16}")
#: a ``{var}`` path segment of a route
VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: printable ASCII, no space
PRINTABLE = re.compile(r"[\x21-\x7e]+")
_BAD_IN_SEGMENT = ("/", "\\", "%", ";", "*")
#: the ``[tls]`` keys forward-auth reads: it serves plain HTTP to its proxy, which
#: terminates TLS and passes the client certificate it verified in a header
_TLS_KEYS = frozenset({"client_cert_header", "trusted_proxies"})


@dataclass(frozen=True, slots=True)
class RouteRule:
    """``method`` (or ``*``) and ``path`` (``{var}`` segments) -> what the request does."""

    method: str
    path: str
    action: str
    resource: str
    sensitivity: str | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return () if self.path == "/" else tuple(self.path[1:].split("/"))

    def match(self, method: str, segments: Sequence[str]) -> dict[str, str] | None:
        """The path variables when this rule maps the request, else ``None``."""
        if self.method not in ("*", method) or len(segments) != len(self.segments):
            return None
        values: dict[str, str] = {}
        for pattern, segment in zip(self.segments, segments, strict=True):
            var = VAR.fullmatch(pattern)
            if var:
                values[var.group(1)] = segment
            elif pattern != segment:
                return None
        return values

    def resource_for(self, values: Mapping[str, str]) -> str:
        """The resource template filled with the matched path variables."""
        return VAR.sub(lambda m: values[m.group(1)], self.resource)


@dataclass(frozen=True, slots=True)
class ForwardAuthConfig:
    public_url: str
    destination: str
    routes: tuple[RouteRule, ...]
    proxy: str = "nginx"
    endpoint: str = "/forward-auth"
    audience: str | None = None
    host: str = "127.0.0.1"
    port: int = 8790
    #: ``client_cert_header`` and ``trusted_proxies``: where a client certificate comes from
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the listener reads, and for how long (``[http]``);
    #: the proxy's forwarded headers must fit
    http: HttpLimits = field(default_factory=HttpLimits)

    @property
    def origin(self) -> str:
        return self.public_url.rstrip("/")


def _text(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.pop(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidInput("forward_auth.config", f"{where}{key} must be a non-empty string")
    return value


def _rule(raw: object, index: int) -> RouteRule:
    where = f"routes[{index}]."
    if not isinstance(raw, dict):
        raise InvalidInput("forward_auth.config", f"routes[{index}] must be a table")
    table = dict(raw)
    method, path = _text(table, "method", where).upper(), _text(table, "path", where)
    action, resource = _text(table, "action", where), _text(table, "resource", where)
    sensitivity = table.pop("sensitivity", None)
    if table:
        raise InvalidInput("forward_auth.config", f"unknown key(s) in {where}: {sorted(table)}")
    if method != "*" and not METHOD.fullmatch(method):
        raise InvalidInput("forward_auth.config", f"{where}method {method!r} is not a method")
    rule = RouteRule(method, path, action, resource, sensitivity)
    names = [m.group(1) for s in rule.segments if (m := VAR.fullmatch(s))]
    literals = [s for s in rule.segments if not VAR.fullmatch(s)]
    if not path.startswith("/") or (path != "/" and not all(map(safe_segment, literals))):
        raise InvalidInput("forward_auth.config", f"{where}path {path!r} is not a clean path")
    if len(set(names)) != len(names):
        raise InvalidInput("forward_auth.config", f"{where}path repeats a variable")
    unknown = set(VAR.findall(resource)) - set(names)
    if unknown or not PRINTABLE.fullmatch(resource):
        raise InvalidInput("forward_auth.config", f"{where}resource names {sorted(unknown)}")
    if sensitivity is not None:
        try:
            Sensitivity.parse(str(sensitivity))
        except ValueError as err:
            raise InvalidInput("forward_auth.config", f"{where}sensitivity: {err}") from None
    return rule


def _is_origin(url: str) -> bool:
    try:
        normalize_htu(url)  # a valid http(s) URL with a valid host, no userinfo
    except DpopError:
        return False
    parts = urlsplit(url)
    return not (parts.path.strip("/") or parts.query or parts.fragment or url.endswith(("?", "#")))


def parse_config(doc: Mapping[str, Any]) -> ForwardAuthConfig:
    """Validate a forward-auth config document; unknown keys are refused."""
    table = dict(doc)
    public_url = _text(table, "public_url", "")
    if not _is_origin(public_url):
        raise InvalidInput("forward_auth.config", "public_url is an origin: scheme://host[:port]")
    proxy = _text(table, "proxy", "", "nginx")
    if proxy not in PROXIES:
        raise InvalidInput("forward_auth.config", f"proxy must be one of {', '.join(PROXIES)}")
    endpoint = _text(table, "endpoint", "", "/forward-auth")
    if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", endpoint) or endpoint == "/healthz":
        raise InvalidInput("forward_auth.config", f"endpoint {endpoint!r} is not a clean path")
    destination = _text(table, "destination", "")
    audience = table.pop("audience", None)
    if audience is not None and (not isinstance(audience, str) or not audience):
        raise InvalidInput("forward_auth.config", "audience must be a non-empty string")
    host = _text(table, "host", "", "127.0.0.1")
    port = table.pop("port", 8790)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidInput("forward_auth.config", "port must be an integer 1..65535")
    raw_routes = table.pop("routes", None)
    if not isinstance(raw_routes, list) or not raw_routes:
        raise InvalidInput("forward_auth.config", "routes must be a non-empty list")
    tls = _tls(table.pop("tls", {}))
    try:
        http = parse_http_limits(table.pop("http", {}))
    except InvalidInput as err:
        raise InvalidInput("forward_auth.config", err.message) from None
    if table:
        raise InvalidInput("forward_auth.config", f"unknown key(s): {sorted(table)}")
    routes = tuple(_rule(raw, i) for i, raw in enumerate(raw_routes))
    return ForwardAuthConfig(
        public_url, destination, routes, proxy, endpoint, audience, host, port, tls, http
    )


def _tls(raw: object) -> TlsConfig:
    """``[tls]``: only ``client_cert_header`` and ``trusted_proxies`` (both or neither)."""
    if not isinstance(raw, dict):
        raise InvalidInput("forward_auth.config", "tls must be a table")
    unknown = sorted(set(raw) - _TLS_KEYS)
    if unknown:
        raise InvalidInput(
            "forward_auth.config",
            f"unknown key(s) in tls: {unknown} (forward-auth serves plain HTTP to its proxy: "
            "only client_cert_header and trusted_proxies)",
        )
    try:
        return parse_tls(raw)
    except InvalidInput as err:
        raise InvalidInput("forward_auth.config", err.message) from None


def load_config(path: Path) -> ForwardAuthConfig:
    """Read a config file: TOML (``.toml``), else YAML or JSON."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise InvalidInput("forward_auth.config", f"{path}: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidInput("forward_auth.config", f"{path}: expected a table")
    return parse_config(doc)


def safe_segment(segment: str) -> bool:
    """A decoded path segment forward-auth maps: printable ASCII, not ``.``/``..``, none of
    ``/ \\ % ; *``."""
    return (
        bool(PRINTABLE.fullmatch(segment))
        and segment not in (".", "..")
        and not any(bad in segment for bad in _BAD_IN_SEGMENT)
    )
