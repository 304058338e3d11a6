"""The MCP gateway's configuration file (TOML).

Strict like the deployment's config: an unknown key, a wrong type or a missing value
is refused with its dotted name, so a typo never silently opens or closes anything.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zerolane.errors import InvalidInput
from zerolane.gateway.config import parse_gateway_tls
from zerolane.settings.listener import HttpLimits, TlsConfig, parse_http_limits
from zerolane.types import Sensitivity

#: server names and prefixes become part of actions and resources: keep them plain
SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: tool names that map safely onto one resource segment (SEP-986 charset, without '/')
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
PREFIX = re.compile(r"[A-Za-z0-9_.-]{0,64}")
DESTINATION = re.compile(r"[A-Za-z0-9._:-]{1,256}")
DEFAULT_PATH = "/mcp"
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_CALL_TIMEOUT = 300.0
MIN_CALL_TIMEOUT, MAX_CALL_TIMEOUT = 0.1, 3600.0


@dataclass(frozen=True, slots=True)
class ToolConfig:
    """Per-tool settings of one upstream server."""

    sensitivity: Sensitivity | None = None


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream MCP server: a streamable HTTP ``url`` or a stdio ``command``."""

    name: str
    destination: str
    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    default_sensitivity: Sensitivity = Sensitivity.INTERNAL
    #: what a tool the server calls destructive (or does not call read-only) is at least
    destructive_sensitivity: Sensitivity = Sensitivity.CONFIDENTIAL
    #: prepended to the server's tool names in the gateway's tools/list
    prefix: str = ""
    #: the longest a tools/call may take upstream, start to answer (a server that
    #: trickles its answer, or never ends it, is cut off and the call fails closed)
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    tools: dict[str, ToolConfig] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    public_url: str
    authorization_servers: tuple[str, ...]
    servers: tuple[UpstreamConfig, ...]
    host: str = "127.0.0.1"
    port: int = 8800
    path: str = DEFAULT_PATH
    #: this gateway's resource id (RFC 8707); task tokens must name it in ``aud``
    audience: str = ""
    resource_name: str = "zerolane MCP gateway"
    max_body_bytes: int = DEFAULT_MAX_BODY
    #: TLS served here, and where client certificates come from (RFC 8705)
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the listener reads, and for how long (``[http]``)
    http: HttpLimits = field(default_factory=HttpLimits)

    @property
    def endpoint(self) -> str:
        """The URL agents POST to (and name in their DPoP proofs)."""
        return self.public_url + self.path

    @property
    def client_certificates(self) -> bool:
        """True when requests can carry a client certificate (certificate-bound tokens):
        TLS served here asking for one, or a trusted proxy's header."""
        tls = self.tls
        served = tls.serves_tls and tls.client_cert != "none"
        return served or tls.client_cert_header is not None


class _Table:
    """A TOML table read key by key; :meth:`done` refuses whatever is left."""

    def __init__(self, doc: object, where: str) -> None:
        if not isinstance(doc, dict):
            raise InvalidInput("config.type", f"{where or 'the file'} must be a table")
        self.doc: dict[str, Any] = dict(doc)
        self.where = where

    def name(self, key: str) -> str:
        return f"{self.where}{key}"

    def take(self, key: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
        if key not in self.doc:
            if required:
                raise InvalidInput("config.missing", f"{self.name(key)} is required")
            return default
        value = self.doc.pop(key)
        wrong_int = kind is int and isinstance(value, bool)
        if wrong_int or not isinstance(value, kind):
            raise InvalidInput("config.type", f"{self.name(key)} must be of type {kind.__name__}")
        return value

    def strings(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        value = self.take(key, list, [], required=required)
        if not all(isinstance(item, str) and item for item in value):
            raise InvalidInput("config.type", f"{self.name(key)} must be a list of strings")
        if required and not value:
            raise InvalidInput("config.missing", f"{self.name(key)} needs at least one entry")
        return tuple(value)

    def sensitivity(self, key: str, default: Sensitivity) -> Sensitivity:
        found = self.optional_sensitivity(key)
        return default if found is None else found

    def optional_sensitivity(self, key: str) -> Sensitivity | None:
        label = self.take(key, str)
        if label is None:
            return None
        try:
            return Sensitivity.parse(label)
        except ValueError as err:
            raise InvalidInput("config.sensitivity", f"{self.name(key)}: {err}") from None

    def done(self) -> None:
        if self.doc:
            unknown = ", ".join(self.name(key) for key in sorted(self.doc))
            raise InvalidInput("config.unknown", f"unknown key(s): {unknown}")


def _http_url(value: str, what: str, *, path: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("config.url", f"{what} must be an absolute http(s) URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput("config.url", f"{what} may not carry a query, fragment or user info")
    if not path and parts.path not in ("", "/"):
        raise InvalidInput("config.url", f"{what} is an origin (no path): use 'path' for one")
    return value.rstrip("/") if not path else value


def _match(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInput("config.name", f"{what} {value!r} must match {pattern.pattern}")
    return value


def _tools(doc: object, where: str) -> dict[str, ToolConfig]:
    table = _Table(doc, where)
    tools: dict[str, ToolConfig] = {}
    for tool in sorted(table.doc):
        _match(TOOL_NAME, tool, f"{where}{tool}:")
        entry = _Table(table.doc.pop(tool), f"{where}{tool}.")
        tools[tool] = ToolConfig(sensitivity=entry.optional_sensitivity("sensitivity"))
        entry.done()
    return tools


def _call_timeout(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("config.type", f"{where} is a number of seconds")
    if not MIN_CALL_TIMEOUT <= value <= MAX_CALL_TIMEOUT:
        raise InvalidInput(
            "config.range",
            f"{where} is {MIN_CALL_TIMEOUT:g}..{MAX_CALL_TIMEOUT:g} seconds, not {value!r}",
        )
    return float(value)


def _server(doc: object, index: int, base: Path) -> UpstreamConfig:
    table = _Table(doc, f"servers[{index}].")
    name = _match(SERVER_NAME, table.take("name", str, required=True), table.name("name"))
    table.where = f"servers.{name}."
    url = table.take("url", str)
    command = table.take("command", str)
    if (url is None) == (command is None):
        raise InvalidInput("config.server", f"server {name}: give exactly one of url or command")
    cwd = table.take("cwd", str)
    env = _Table(table.take("env", dict, {}), table.name("env."))
    variables = {key: env.take(key, str) for key in list(env.doc)}
    default = table.sensitivity("default_sensitivity", Sensitivity.INTERNAL)
    destructive = table.sensitivity("destructive_sensitivity", Sensitivity.CONFIDENTIAL)
    server = UpstreamConfig(
        name=name,
        destination=_match(
            DESTINATION, table.take("destination", str, required=True), table.name("destination")
        ),
        url=_http_url(url, table.name("url"), path=True) if url is not None else None,
        command=command,
        args=table.strings("args"),
        env=variables,
        cwd=str((base / cwd).resolve()) if cwd is not None else None,
        default_sensitivity=default,
        destructive_sensitivity=max(default, destructive),
        prefix=_match(PREFIX, table.take("prefix", str, ""), table.name("prefix")),
        call_timeout=_call_timeout(
            table.take("call_timeout", object, DEFAULT_CALL_TIMEOUT), table.name("call_timeout")
        ),
        tools=_tools(table.take("tools", dict, {}), table.name("tools.")),
    )
    if command is None and server.args:
        raise InvalidInput("config.server", f"server {name}: args need a command")
    table.done()
    return server


def _servers(value: object, base: Path) -> tuple[UpstreamConfig, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInput("config.missing", "servers must list at least one [[servers]] table")
    servers = tuple(_server(doc, index, base) for index, doc in enumerate(value))
    for attribute in ("name", "prefix"):
        seen = [getattr(server, attribute) for server in servers]
        if len(set(seen)) != len(seen):
            raise InvalidInput(
                "config.duplicate", f"each server needs its own {attribute} (tool names collide)"
            )
    return servers


def parse_gateway_config(doc: object, base: Path | None = None) -> GatewayConfig:
    """Validate a parsed TOML document; relative ``cwd`` values and ``[tls]`` files are
    taken from ``base``."""
    table = _Table(doc, "")
    listen = _Table(table.take("listen", dict, {}), "listen.")
    host = listen.take("host", str, "127.0.0.1")
    port = listen.take("port", int, 8800)
    listen.done()
    if not 0 < port < 65536:
        raise InvalidInput("config.port", "listen.port must be 1..65535")
    public_url = _http_url(table.take("public_url", str, required=True), "public_url", path=False)
    path = table.take("path", str, DEFAULT_PATH)
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path):
        raise InvalidInput("config.path", "path must look like /mcp (no trailing slash)")
    audience = table.take("audience", str, public_url + path)
    _http_url(audience, "audience", path=True)
    servers = tuple(
        _http_url(url, "authorization_servers", path=True)
        for url in table.strings("authorization_servers", required=True)
    )
    max_body = table.take("max_body_bytes", int, DEFAULT_MAX_BODY)
    if not 1024 <= max_body <= 64 * 1024 * 1024:
        raise InvalidInput("config.max_body_bytes", "max_body_bytes must be 1 KiB..64 MiB")
    base = base or Path.cwd()
    tls = parse_gateway_tls(table.take("tls", dict, {}), base)
    http = parse_http_limits(table.take("http", dict, {}))
    config = GatewayConfig(
        public_url=public_url,
        authorization_servers=servers,
        servers=_servers(table.doc.pop("servers", None), base),
        host=host,
        port=port,
        path=path,
        audience=audience,
        resource_name=table.take("resource_name", str, "zerolane MCP gateway"),
        max_body_bytes=max_body,
        tls=tls,
        http=http,
    )
    table.done()
    return config


def load_gateway_config(path: Path) -> GatewayConfig:
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise InvalidInput("config.missing", f"no gateway config at {path}") from err
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput("config.syntax", f"{path}: {err}") from err
    return parse_gateway_config(doc, path.parent)
