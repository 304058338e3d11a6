"""The MCP gateway's configuration file (TOML).

Strict like the deployment's config (:mod:`zerolane.settings`): an unknown key, a wrong
type or a missing value is refused, every problem of a file at once, one line each
with the file and the dotted name (``servers[0].call_timeout``), so a typo never
silently opens or closes anything. A server's ``cwd`` and the ``[tls]`` files are
relative to the configuration file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, ValidationInfo, model_validator

from zerolane.errors import InvalidInput
from zerolane.gateway.normalize import HOP_BY_HOP, OWN, SPOOFABLE, SPOOFABLE_PREFIXES
from zerolane.hosts import is_loopback
from zerolane.settings.listener import HttpLimits, TlsConfig, tls_under
from zerolane.settings.validate import (
    STRICT,
    Float,
    Int,
    Level,
    Str,
    Texts,
    base_of,
    reason,
    refuse,
    validate,
    within,
)
from zerolane.types import Sensitivity

#: server names and prefixes become part of actions and resources: keep them plain
SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: tool names that map safely onto one resource segment (SEP-986 charset, without '/')
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
PREFIX = re.compile(r"[A-Za-z0-9_.-]{0,64}")
DESTINATION = re.compile(r"[A-Za-z0-9._:-]{1,256}")
MAX_URI = 1024
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
DEFAULT_PATH = "/mcp"
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_CALL_TIMEOUT = 300.0
#: what a credential may be injected as: a header name, an environment variable name
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: headers the upstream hop sets itself (never a credential's)
_MCP_HEADERS = frozenset(
    {b"mcp-session-id", b"mcp-protocol-version", b"last-event-id", b"content-type", b"accept"}
)
MIN_CALL_TIMEOUT, MAX_CALL_TIMEOUT = 0.1, 3600.0
#: how a server's decided requests (or one tool's, one prompt's) are decided:
#: ``enforce``, or ``shadow`` (what the policies deny is relayed and audited as a
#: would-deny; docs/mcp-gateway.md)
Mode = Annotated[Literal["enforce", "shadow"], reason("config.mode")]


def _matching(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise refuse("config.name", f"{value!r} must match {pattern.pattern}")
        return value

    return AfterValidator(check)


def _http_url(value: str, *, path: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse("config.url", "must be an absolute http(s) URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise refuse("config.url", "may not carry a query, fragment or user info")
    if not path and parts.path not in ("", "/"):
        raise refuse("config.url", "is an origin (no path): use 'path' for one")
    return value.rstrip("/") if not path else value


def _url(value: str) -> str:
    return _http_url(value, path=True)


def _origin(value: str) -> str:
    return _http_url(value, path=False)


def _urls(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise refuse("config.missing", "needs at least one entry")
    return tuple(_url(value) for value in values)


def _path(value: str) -> str:
    if not _PATH.fullmatch(value):
        raise refuse("config.path", "must look like /mcp (no trailing slash)")
    return value


def _tools(tools: dict[str, ToolConfig]) -> dict[str, ToolConfig]:
    for tool in tools:
        if not TOOL_NAME.fullmatch(tool):
            raise refuse("config.name", f"{tool!r} must match {TOOL_NAME.pattern}")
    return tools


def _uri_glob(value: str) -> str:
    if not 1 <= len(value) <= MAX_URI:
        raise refuse("config.uri", f"is 1..{MAX_URI} characters")
    return value


def _call_timeout(seconds: float) -> float:
    if not MIN_CALL_TIMEOUT <= seconds <= MAX_CALL_TIMEOUT:
        raise refuse(
            "config.range",
            f"is {MIN_CALL_TIMEOUT:g}..{MAX_CALL_TIMEOUT:g} seconds, not {seconds!r}",
        )
    return seconds


def _credential_header(header: str) -> str:
    name = header.lower().encode()
    reserved = HOP_BY_HOP | SPOOFABLE | OWN | _MCP_HEADERS
    if not _HEADER.fullmatch(header) or (
        name != b"authorization" and (name in reserved or name.startswith(SPOOFABLE_PREFIXES))
    ):
        raise refuse("config.header", f"{header!r} cannot be injected")
    return header


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise refuse("config.env", f"{value!r} must match {_ENV_NAME.pattern}")
    return value


def _endpoint(value: str) -> str:
    """An authorization server's endpoint: https, or plain http to loopback only."""
    parts = urlsplit(value)
    if not parts.hostname or parts.fragment or parts.username or parts.password:
        raise refuse("config.url", "must be an absolute URL without fragment or user info")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return value
    raise refuse("config.url", "must be https (plain http only to a loopback address)")


OAuthEndpoint = Annotated[Str, AfterValidator(_endpoint)]


@dataclass(frozen=True, slots=True)
class McpCredential:
    """``[servers.credential]``: what the gateway injects on an upstream connection,
    never seen by the agent. ``static``: one secret (``secret_file``, mode 0600, or
    ``secret_env``); ``oauth``: an access token for this upstream from an external
    authorization server (``client_credentials``, or ``token_exchange`` for the task's
    verified person), cached per task. An HTTP upstream gets it as ``header`` (default
    ``Authorization``, value ``format``: ``Bearer {secret}`` there, ``{secret}``
    otherwise); a stdio upstream as environment variable ``env``."""

    __pydantic_config__ = STRICT

    type: Annotated[Literal["static", "oauth"], reason("config.credential")]
    header: Annotated[Str, AfterValidator(_credential_header)] | None = None
    env: Annotated[Str, AfterValidator(_env_name)] | None = None
    #: [default: by ``header``]
    format: Str = ""
    secret_file: Path | None = None
    secret_env: Annotated[Str, AfterValidator(_env_name)] | None = None
    token_endpoint: OAuthEndpoint | None = None
    #: RFC 7009: tokens of an ended task are revoked here
    revocation_endpoint: OAuthEndpoint | None = None
    client_id: Str | None = None
    client_secret_file: Path | None = None
    client_secret_env: Annotated[Str, AfterValidator(_env_name)] | None = None
    grant: Annotated[Literal["client_credentials", "token_exchange"], reason("config.grant")] = (
        "client_credentials"
    )
    #: the upstream the token is for: ``audience`` (RFC 8693) and/or ``resource`` (RFC 8707)
    audience: Str | None = None
    resource: Annotated[Str, AfterValidator(_url)] | None = None
    scope: Str | None = None

    @model_validator(mode="after")
    def _kind(self, info: ValidationInfo) -> Self:
        static = self.type == "static"
        oauth_only = (
            "token_endpoint",
            "revocation_endpoint",
            "client_id",
            "client_secret_file",
            "client_secret_env",
            "audience",
            "resource",
            "scope",
        )
        for key in ("secret_file", "secret_env") if not static else oauth_only:
            if getattr(self, key) is not None:
                raise refuse("config.unknown_key", f"{key}: unknown key for a {self.type} one")
        if static and (self.secret_file is None) == (self.secret_env is None):
            raise refuse("config.credential", "set exactly one of secret_file, secret_env")
        if not static:
            if self.token_endpoint is None or not self.client_id:
                raise refuse("config.missing", "an oauth one needs token_endpoint and client_id")
            if (self.client_secret_file is None) == (self.client_secret_env is None):
                raise refuse(
                    "config.credential", "set exactly one of client_secret_file, client_secret_env"
                )
            if self.audience is None and self.resource is None:
                raise refuse(
                    "config.credential",
                    "name the upstream the token is for: audience and/or resource",
                )
        if self.header is not None and self.env is not None:
            raise refuse("config.credential", "set header (HTTP) or env (stdio), not both")
        bearer = self.env is None and (self.header or "Authorization").lower() == "authorization"
        fmt = self.format or ("Bearer {secret}" if bearer else "{secret}")
        if fmt.count("{secret}") != 1 or fmt.replace("{secret}", "").count("{"):
            raise refuse("config.format", "holds '{secret}' exactly once")
        # frozen: the default format, and files under the document's folder, set once here
        object.__setattr__(self, "format", fmt)
        base = base_of(info)
        for key in ("secret_file", "client_secret_file"):
            value = getattr(self, key)
            if base is not None and value is not None:
                object.__setattr__(self, key, base / value)
        return self

    @property
    def grant_exchanges(self) -> bool:
        """Its tokens are exchanged for a task's person (RFC 8693)."""
        return self.type == "oauth" and self.grant == "token_exchange"

    @property
    def header_name(self) -> str:
        """The header an HTTP upstream gets it in."""
        return self.header or "Authorization"


@dataclass(frozen=True, slots=True)
class ToolConfig:
    """Per-tool (or per-prompt) settings of one upstream server."""

    __pydantic_config__ = STRICT

    sensitivity: Level | None = None
    #: ``enforce`` or ``shadow`` [default: the server's ``mode``]
    mode: Mode | None = None


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """``[[servers.resources]]``: the sensitivity of the resources whose URI matches
    ``uri``, an ``fnmatch`` glob on the whole URI (``*`` crosses ``/``; case-sensitive)."""

    __pydantic_config__ = STRICT

    uri: Annotated[Str, AfterValidator(_uri_glob)]
    sensitivity: Level

    def matches(self, uri: str) -> bool:
        return fnmatchcase(uri, self.uri)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream MCP server: a streamable HTTP ``url`` or a stdio ``command``."""

    __pydantic_config__ = STRICT

    name: Annotated[Str, _matching(SERVER_NAME)]
    destination: Annotated[Str, _matching(DESTINATION)]
    url: Annotated[Str, AfterValidator(_url)] | None = None
    command: Str | None = None
    args: Texts = ()
    env: dict[Str, Str] = field(default_factory=dict)
    #: the server's working directory (in a file: relative to the file's folder)
    cwd: Str | None = None
    default_sensitivity: Level = Sensitivity.INTERNAL
    #: what a tool the server calls destructive (or does not call read-only) is at
    #: least; never below ``default_sensitivity``
    destructive_sensitivity: Level = Sensitivity.CONFIDENTIAL
    #: prepended to the server's tool names in the gateway's tools/list
    prefix: Annotated[Str, _matching(PREFIX)] = ""
    #: the longest a tools/call may take upstream, start to answer (a server that
    #: trickles its answer, or never ends it, is cut off and the call fails closed)
    call_timeout: Annotated[Float, AfterValidator(_call_timeout)] = DEFAULT_CALL_TIMEOUT
    tools: Annotated[dict[str, ToolConfig], AfterValidator(_tools)] = field(default_factory=dict)
    #: resource sensitivities by URI: the first rule that matches wins, else the default
    resources: tuple[ResourceRule, ...] = ()
    #: per-prompt settings, by the prompt's name on the server (as ``tools``)
    prompts: Annotated[dict[str, ToolConfig], AfterValidator(_tools)] = field(default_factory=dict)
    #: injected on the upstream connection (a header, or the stdio server's environment)
    credential: McpCredential | None = None
    #: the mode of its tools, prompts and resources (a tool's or prompt's own ``mode``
    #: wins): ``enforce``, or ``shadow``
    mode: Mode = "enforce"

    @model_validator(mode="after")
    def _runs(self, info: ValidationInfo) -> Self:
        if (self.url is None) == (self.command is None):
            raise refuse("config.server", f"server {self.name}: give exactly one of url or command")
        if self.command is None and self.args:
            raise refuse("config.server", f"server {self.name}: args need a command")
        credential = self.credential
        if credential is not None and self.url is not None and credential.env is not None:
            raise refuse(
                "config.credential",
                f"server {self.name}: credential.env is for a stdio server: use header",
            )
        if credential is not None and self.command is not None:
            if credential.header is not None:
                raise refuse(
                    "config.credential",
                    f"server {self.name}: credential.header is for an HTTP server: use env",
                )
            if credential.env is None:
                raise refuse(
                    "config.missing",
                    f"server {self.name}: credential.env names the variable a stdio server"
                    " reads it from",
                )
            if credential.env in self.env:
                raise refuse(
                    "config.credential",
                    f"server {self.name}: credential.env {credential.env} is also set in env",
                )
        # frozen: the values the server runs with, set once here
        base = base_of(info)
        if base is not None and self.cwd is not None:
            object.__setattr__(self, "cwd", str((base / self.cwd).resolve()))
        if self.destructive_sensitivity < self.default_sensitivity:
            object.__setattr__(self, "destructive_sensitivity", self.default_sensitivity)
        return self


@dataclass(frozen=True, slots=True)
class Listen:
    """``[listen]``: where the gateway listens."""

    __pydantic_config__ = STRICT

    host: Str = "127.0.0.1"
    port: Annotated[Int, within("config.port", 1, 65535)] = 8800


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    __pydantic_config__ = STRICT

    public_url: Annotated[Str, AfterValidator(_origin)]
    authorization_servers: Annotated[Texts, AfterValidator(_urls)]
    servers: tuple[UpstreamConfig, ...]
    listen: Listen = field(default_factory=Listen)
    path: Annotated[Str, AfterValidator(_path)] = DEFAULT_PATH
    #: this gateway's resource id (RFC 8707); task tokens must name it in ``aud``
    #: [in a file, default: ``public_url`` + ``path``]
    audience: Annotated[Str, AfterValidator(_url)] = ""
    resource_name: Str = "zerolane MCP gateway"
    max_body_bytes: Annotated[
        Int, within("config.max_body_bytes", 1024, 64 * 1024 * 1024, " bytes")
    ] = DEFAULT_MAX_BODY
    #: TLS served here, and where client certificates come from (RFC 8705)
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the listener reads, and for how long (``[http]``)
    http: HttpLimits = field(default_factory=HttpLimits)

    @model_validator(mode="after")
    def _document(self, info: ValidationInfo) -> Self:
        if not self.servers:
            raise refuse("config.missing", "servers must list at least one [[servers]] table")
        for attribute in ("name", "prefix"):
            seen = [getattr(server, attribute) for server in self.servers]
            if len(set(seen)) != len(seen):
                raise refuse(
                    "config.duplicate",
                    f"each server needs its own {attribute} (tool names collide)",
                )
        # frozen: the defaults a file leaves to the gateway, set once here
        if not self.audience:
            object.__setattr__(self, "audience", self.public_url + self.path)
        base = base_of(info)
        if base is not None:
            object.__setattr__(self, "tls", tls_under(self.tls, base))
        return self

    @property
    def host(self) -> str:
        return self.listen.host

    @property
    def port(self) -> int:
        return self.listen.port

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


def parse_gateway_config(
    doc: object, base: Path | None = None, source: str | None = None
) -> GatewayConfig:
    """Validate a parsed TOML document; relative ``cwd`` values and ``[tls]`` files are
    taken from ``base`` (default: the current directory), ``source`` names the file in
    each line of a refusal."""
    base = base or Path.cwd()
    return validate(GatewayConfig, doc, source=source, context={"base": base})


def load_gateway_config(path: Path) -> GatewayConfig:
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise InvalidInput("config.missing", f"no gateway config at {path}") from err
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput("config.syntax", f"{path}: {err}") from err
    return parse_gateway_config(doc, path.parent, str(path))
