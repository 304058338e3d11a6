"""Forward-auth's configuration: where it listens, which proxy asks, and the route table.

A document (TOML, YAML or JSON) names ``public_url`` (the origin the proxy serves),
``destination``, ``proxy`` (``nginx``, ``traefik`` or ``envoy``), ``endpoint``,
``audience`` (what task tokens must name in ``aud``; default: the origin of
``public_url``, as the HTTP gateway's is its ``public_url``), ``host``/``port``,
``[tls]`` (``client_cert_header`` and ``trusted_proxies`` only: forward-auth serves
plain HTTP to its proxy), ``[http]`` (head limits), ``mode`` (``enforce`` or
``shadow``: the routes' default) and ``routes``: method and path template -> action,
resource template, sensitivity and ``mode``. :class:`ForwardAuthConfig` checks
it strictly (:mod:`zerolane.settings`): every problem is refused at once, one line each
with the file and the dotted key, with the reason ids of every configuration file
(``config.unknown_key``, ``config.route_path``, ``config.audience``...). The request
handling is :mod:`zerolane.gateway.forward_auth`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, model_validator

from zerolane.errors import InvalidInput
from zerolane.settings.listener import HttpLimits, TlsConfig
from zerolane.settings.validate import (
    STRICT,
    Int,
    Required,
    SensitivityLabel,
    reason,
    refuse,
    validate,
    within,
)
from zerolane.tokens.rfc9449 import DpopError, normalize_htu

PROXIES = ("nginx", "traefik", "envoy")
#: an HTTP method as forward-auth accepts it
METHOD = re.compile(r"[A-Z]{1,16}")
#: a ``{var}`` path segment of a route
VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: printable ASCII, no space
PRINTABLE = re.compile(r"[\x21-\x7e]+")
_BAD_IN_SEGMENT = ("/", "\\", "%", ";", "*")
_ENDPOINT = re.compile(r"(/[A-Za-z0-9._-]+)+")
#: the ``[tls]`` keys forward-auth reads: it serves plain HTTP to its proxy, which
#: terminates TLS and passes the client certificate it verified in a header
_TLS_KEYS = frozenset({"client_cert_header", "trusted_proxies"})
#: the longest name a route in shadow may be decided under (``/v1/decide``'s bound)
MAX_SHADOW_NAME = 256

#: how a route's requests are decided: ``enforce``, or ``shadow`` (what the policies deny
#: is answered 200 with ``X-Zerolane-Shadow`` and audited as a would-deny)
Mode = Annotated[Literal["enforce", "shadow"], reason("config.mode")]


def _method(method: str) -> str:
    method = method.upper()
    if method != "*" and not METHOD.fullmatch(method):
        raise refuse("config.route_method", f"{method!r} is not a method")
    return method


@dataclass(frozen=True, slots=True)
class RouteRule:
    """``method`` (or ``*``) and ``path`` (``{var}`` segments) -> what the request does."""

    __pydantic_config__ = STRICT

    method: Annotated[Required, AfterValidator(_method)]
    path: Required
    action: Required
    resource: Required
    sensitivity: SensitivityLabel | None = None
    #: [default: the config's ``mode``]
    mode: Mode | None = None

    @model_validator(mode="after")
    def _template(self) -> Self:
        names = [m.group(1) for s in self.segments if (m := VAR.fullmatch(s))]
        literals = [s for s in self.segments if not VAR.fullmatch(s)]
        path = self.path
        if not path.startswith("/") or (path != "/" and not all(map(safe_segment, literals))):
            raise refuse("config.route_path", f"path {path!r} is not a clean path")
        if len(set(names)) != len(names):
            raise refuse("config.route_path", f"path {path!r} repeats a variable")
        unknown = set(VAR.findall(self.resource)) - set(names)
        if unknown or not PRINTABLE.fullmatch(self.resource):
            raise refuse(
                "config.route_resource",
                f"resource {self.resource!r} names {sorted(unknown)} (not in the path) "
                "or is not printable",
            )
        return self

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

    def shadow_name(self, destination: str) -> str:
        """What its decisions name it by in shadow mode:
        ``route:<destination> <METHOD> <path>``."""
        return f"route:{destination} {self.method} {self.path}"


def _origin(url: str) -> str:
    try:
        normalize_htu(url)  # a valid http(s) URL with a valid host, no userinfo
    except DpopError:
        raise refuse("config.url", "is an origin: scheme://host[:port]") from None
    parts = urlsplit(url)
    if parts.path.strip("/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        raise refuse("config.url", "is an origin: scheme://host[:port]")
    return url


def _endpoint(endpoint: str) -> str:
    if not _ENDPOINT.fullmatch(endpoint) or endpoint == "/healthz":
        raise refuse("config.path", f"must be a clean path like /forward-auth, not {endpoint!r}")
    return endpoint


def _audience(audience: str) -> str:
    scheme, sep, rest = audience.partition("://")
    if sep and scheme.lower() == "spiffe" and "/" not in rest.rstrip("/"):
        # every task token names its issuer, the trust domain, among its audiences
        raise refuse(
            "config.audience",
            f"{audience!r} is a trust domain: every task token of it names it, one meant "
            "for another enforcement point too; name this API's own audience (default: "
            "public_url)",
        )
    return audience


def _routes(routes: tuple[RouteRule, ...]) -> tuple[RouteRule, ...]:
    if not routes:
        raise refuse("config.routes", "must map at least one route")
    return routes


@dataclass(frozen=True, slots=True)
class ForwardAuthConfig:
    __pydantic_config__ = STRICT

    public_url: Annotated[Required, AfterValidator(_origin)]
    destination: Required
    routes: Annotated[tuple[RouteRule, ...], AfterValidator(_routes)]
    proxy: Annotated[Literal["nginx", "traefik", "envoy"], reason("config.proxy")] = "nginx"
    endpoint: Annotated[Required, AfterValidator(_endpoint)] = "/forward-auth"
    #: what task tokens must name in ``aud`` [default: the origin of ``public_url``]
    audience: Annotated[Required, AfterValidator(_audience)] = ""
    host: Required = "127.0.0.1"
    port: Annotated[Int, within("config.port", 1, 65535)] = 8790
    #: ``client_cert_header`` and ``trusted_proxies``: where a client certificate comes from
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the listener reads, and for how long (``[http]``);
    #: the proxy's forwarded headers must fit
    http: HttpLimits = field(default_factory=HttpLimits)
    #: the mode of the routes that name none: ``enforce``, or ``shadow`` (a request the
    #: policies deny is answered 200 with ``X-Zerolane-Shadow``, audited as a would-deny)
    mode: Mode = "enforce"

    @model_validator(mode="before")
    @classmethod
    def _plain_http(cls, data: Any) -> Any:
        """``[tls]``: only ``client_cert_header`` and ``trusted_proxies``."""
        tls = data.get("tls") if isinstance(data, dict) else None
        unknown = sorted(set(tls) - _TLS_KEYS) if isinstance(tls, dict) else []
        if unknown:
            raise refuse(
                "config.unknown_key",
                f"tls.{unknown[0]}: unknown key (forward-auth serves plain HTTP to its proxy: "
                "[tls] holds only client_cert_header and trusted_proxies)",
            )
        return data

    @model_validator(mode="after")
    def _default_audience(self) -> Self:
        """No ``audience``: this API's own, its origin (proofs name it too), so a token
        meant for another enforcement point is refused ``token.audience`` here."""
        if not self.audience:  # frozen: the default a file leaves, set once here
            object.__setattr__(self, "audience", self.origin)
        return self

    @model_validator(mode="after")
    def _shadow_names(self) -> Self:
        for index, rule in enumerate(self.routes):
            if len(rule.shadow_name(self.destination)) > MAX_SHADOW_NAME:
                raise refuse(
                    "config.mode",
                    f"routes[{index}]: its shadow name (route:<destination> <METHOD> <path>) "
                    f"is over {MAX_SHADOW_NAME} characters: shorten the path or destination",
                )
        return self

    def shadow_of(self, rule: RouteRule) -> str | None:
        """The name ``rule``'s decisions give it when it runs in shadow (its own
        ``mode``, else the config's); None: enforced."""
        mode = rule.mode or self.mode
        return rule.shadow_name(self.destination) if mode == "shadow" else None

    @property
    def origin(self) -> str:
        return self.public_url.rstrip("/")


def parse_config(doc: Mapping[str, Any], source: str | None = None) -> ForwardAuthConfig:
    """Validate a forward-auth config document (``source`` names its file in each line of
    a refusal); unknown keys are refused."""
    return validate(ForwardAuthConfig, doc, source=source)


def load_config(path: Path) -> ForwardAuthConfig:
    """Read a config file: TOML (``.toml``), else YAML or JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput("config.file", f"cannot read {path}: {err}") from err
    try:
        doc = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise InvalidInput("config.syntax", f"{path}: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidInput("config.type", f"{path}: expected a table")
    return parse_config(doc, str(path))


def safe_segment(segment: str) -> bool:
    """A decoded path segment forward-auth maps: printable ASCII, not ``.``/``..``, none of
    ``/ \\ % ; *``."""
    return (
        bool(PRINTABLE.fullmatch(segment))
        and segment not in (".", "..")
        and not any(bad in segment for bad in _BAD_IN_SEGMENT)
    )
