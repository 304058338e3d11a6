"""The probe file (``zerolane probe --credentials FILE``): how the probe gets a
legitimate credential for the target, and what the target is (docs/probe.md).

``[credentials]`` is one of four kinds:

- ``zerolane``: a zerolane home and a playbook; the probe registers its own workloads in
  the home and opens its own tasks through the control plane;
- ``client_credentials``: an OAuth token endpoint (RFC 6749 4.4), DPoP-bound when the
  authorization server offers it;
- ``token_exchange``: an OAuth token endpoint exchanging a subject token (RFC 8693);
- ``static``: a bearer token, for targets that offer nothing else.

Secrets are never written in the file: ``*_file`` names a file (relative to the probe
file's folder) and ``*_env`` an environment variable holding them.

``[target]`` names one request the credential may make (``allowed = "GET /path"``), one
it may not (``forbidden``), a forbidden path for the path tricks, one or more echo
routes, and the MCP endpoint with a tool of each kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from zerolane.settings.validate import STRICT, Bool, Int, Str, Texts, refuse, within

_REQUEST = re.compile(r"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (/[\x21-\x7e]*)")
_URL = re.compile(r"https?://[^\s/?#]+[^\s#]*")


def _request(value: str) -> str:
    if _REQUEST.fullmatch(value) is None:
        raise refuse("probe.request", f"a request is 'METHOD /path', not {value!r}")
    return value


def _url(value: str) -> str:
    if _URL.fullmatch(value) is None:
        raise refuse("probe.url", f"an http(s) URL, not {value!r}")
    if "@" in urlsplit(value).netloc:  # it would be shown in reports and evidence
        raise refuse("probe.url", "a URL holds no user or password (user:secret@host)")
    return value


def _callback_url(value: str) -> str:
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    plain = parts.path in ("", "/") and not parts.query and not parts.fragment
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc or not plain:
        raise refuse("probe.callback_url", f"an http://host[:port] URL, not {value!r}")
    if port == -1:
        raise refuse("probe.callback_url", f"a port is 0-65535, not in {value!r}")
    return value


Request = Annotated[Str, AfterValidator(_request)]
Url = Annotated[Str, AfterValidator(_url)]
CallbackUrl = Annotated[Str, AfterValidator(_callback_url)]


def _one_source(file: str | None, env: str | None, what: str, *, required: bool) -> None:
    if file is not None and env is not None:
        raise refuse("probe.secret", f"{what}: give {what}_file or {what}_env, not both")
    if required and file is None and env is None:
        raise refuse("probe.secret", f"{what}: give {what}_file or {what}_env")


def _endpoint(token_url: str | None, issuer: str | None) -> None:
    if token_url is None and issuer is None:
        raise refuse("probe.token_url", "give token_url, or issuer to discover it from")


@dataclass(frozen=True, slots=True)
class ZerolaneCredentials:
    """Tasks the probe opens in a zerolane home (its own workloads, registered there)."""

    __pydantic_config__ = STRICT

    kind: Literal["zerolane"]
    playbook: Str
    #: the home folder [default: --home, $ZEROLANE_HOME, ./.zerolane]
    home: Str | None = None
    #: the control plane's URL [default: --control-plane, else the running zerolane up's]
    control_plane: Url | None = None
    #: the audiences the probe's tokens name (the target's) [default: the playbook's]
    audience: Texts = ()
    #: an RFC 9396 ``zerolane_task`` entry narrowing the playbook
    authorization_details: tuple[dict[str, Any], ...] = ()
    #: the probe's SPIFFE ID [default: spiffe://<trust domain>/zerolane/probe]
    workload: Str | None = None


@dataclass(frozen=True, slots=True)
class ClientCredentialsFile:
    """An OAuth client of the target's authorization server."""

    __pydantic_config__ = STRICT

    kind: Literal["client_credentials"]
    client_id: Str
    #: the token endpoint; or ``issuer``, whose metadata names it (and the others)
    token_url: Url | None = None
    #: the authorization server's issuer: its RFC 8414 metadata (else its OpenID Connect
    #: configuration) names the token, revocation and JWKS endpoints not given here
    issuer: Url | None = None
    client_secret_file: Str | None = None
    client_secret_env: Str | None = None
    scope: Str | None = None
    #: RFC 8707 ``resource``: the target's audience
    resource: Str | None = None
    #: another resource of the same server (the wrong-audience scenario)
    other_resource: Str | None = None
    #: RFC 7009 revocation: ending a credential early (the reuse-after-end scenarios)
    revocation_url: Url | None = None
    #: the issuer's keys (the algorithm-confusion forgeries)
    jwks_url: Url | None = None
    #: ask for DPoP-bound tokens (RFC 9449)
    dpop: Bool = True
    #: the token endpoint also exchanges tokens (RFC 8693): the delegation scenarios
    exchange: Bool = False
    #: how the client authenticates (RFC 6749 2.3.1)
    client_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"

    @model_validator(mode="after")
    def _secret(self) -> Self:
        _one_source(self.client_secret_file, self.client_secret_env, "client_secret", required=True)
        _endpoint(self.token_url, self.issuer)
        return self


@dataclass(frozen=True, slots=True)
class TokenExchangeFile:
    """An RFC 8693 token exchange of a subject token the probe is given."""

    __pydantic_config__ = STRICT

    kind: Literal["token_exchange"]
    token_url: Url | None = None
    issuer: Url | None = None
    subject_token_file: Str | None = None
    subject_token_env: Str | None = None
    subject_token_type: Str = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
    client_id: Str | None = None
    client_secret_file: Str | None = None
    client_secret_env: Str | None = None
    scope: Str | None = None
    resource: Str | None = None
    other_resource: Str | None = None
    revocation_url: Url | None = None
    jwks_url: Url | None = None
    dpop: Bool = True

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        _one_source(self.subject_token_file, self.subject_token_env, "subject_token", required=True)
        _one_source(
            self.client_secret_file, self.client_secret_env, "client_secret", required=False
        )
        _endpoint(self.token_url, self.issuer)
        return self


@dataclass(frozen=True, slots=True)
class StaticFile:
    """A bearer token and nothing else."""

    __pydantic_config__ = STRICT

    kind: Literal["static"]
    token_file: Str | None = None
    token_env: Str | None = None

    @model_validator(mode="after")
    def _secret(self) -> Self:
        _one_source(self.token_file, self.token_env, "token", required=True)
        return self


CredentialsFile = Annotated[
    ZerolaneCredentials | ClientCredentialsFile | TokenExchangeFile | StaticFile,
    Field(discriminator="kind"),
]


@dataclass(frozen=True, slots=True)
class McpFile:
    """The target's MCP endpoint (streamable HTTP) and a tool of each kind."""

    __pydantic_config__ = STRICT

    path: Str
    allowed_tool: Str
    forbidden_tool: Str
    allowed_arguments: dict[str, Any] = field(default_factory=dict)
    forbidden_arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TargetFile:
    """What the probe knows of the target."""

    __pydantic_config__ = STRICT

    #: a request the credential may make (every attack's legitimate twin)
    allowed: Request
    #: the target's base URL [default: --target]
    url: Url | None = None
    #: a request the credential may not make (another method of the same path, or another path)
    forbidden: Request | None = None
    #: a path the credential may not reach (the path tricks aim at it)
    forbidden_path: Request | None = None
    #: allowed routes whose upstream answers with the headers that reached it: one
    #: request, or a list (each route of a gateway may have its own upstream)
    echo: Request | tuple[Request, ...] | None = None
    mcp: McpFile | None = None


@dataclass(frozen=True, slots=True)
class ProbeFile:
    __pydantic_config__ = STRICT

    credentials: CredentialsFile
    target: TargetFile
    #: seconds the probe waits for an answer
    timeout: Annotated[Int, within("probe.timeout", 1, 300)] = 10
    #: where the target reaches the probe's own listener, which serves the key material
    #: the jku / x5u forgeries name: http://host[:port] (port 0 or none: any free one)
    #: [default: http://127.0.0.1:0, a target on this machine]
    callback_url: CallbackUrl | None = None


_DURATION = re.compile(r"(\d{1,7})([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: object) -> object:
    """``"24h"``, ``"90m"``, ``"3600"`` or ``3600`` -> seconds (anything else as is:
    the ``Int`` check refuses it)."""
    if isinstance(value, str):
        found = _DURATION.fullmatch(value.strip())
        if found is None:
            raise refuse("config.probe", f"a duration like '24h' or '90m', not {value!r}")
        return int(found.group(1)) * _UNITS[found.group(2)]
    return value


@dataclass(frozen=True, slots=True)
class ProbeSchedule:
    """``[probe]`` of zerolane.toml: ``zerolane up`` probes its own deployment every
    ``every`` (off when unset) with the probe file ``file`` (relative to the home; its
    ``[target] url`` names what is probed). Each run is a ``probe.run`` audit event;
    each ``fail`` a ``detection`` of detector ``probe`` (severity high), which the
    ``[[response.rules]]`` alert on like any other."""

    __pydantic_config__ = STRICT

    every: (
        Annotated[
            Int,
            BeforeValidator(_seconds),
            within("config.probe", 60, 30 * 86400, " seconds"),
        ]
        | None
    ) = None
    file: Str = "probe.toml"
    #: the scenarios run (ids or families); all by default
    only: Texts = ()
    #: seconds after ``zerolane up`` started before the first run
    first_after: Annotated[Int, within("config.probe", 0, 86400, " seconds")] = 60
