"""``[oauth]``: the control plane as the authorization server of standard MCP clients.

Agent hosts that speak the MCP authorization flow (OAuth 2.1 authorization code with
PKCE, dynamic client registration) rather than zerolane's SDK get their task tokens
here. Off by default. ``resources`` are the audiences (RFC 8707 resource URLs) of the
MCP gateways tokens may be asked for; ``allow_bearer_clients`` lets a client that sends
no DPoP proof get a short-lived unbound token (``bearer_token_ttl`` seconds, at most
900); ``local_user`` is the one person of a laptop setup, who signs in on the consent
page with a password whose scrypt hash is in a 0600 file (``zerolane oauth
set-password``).

``sign_in`` (``[[oauth.sign_in]]``) lets people sign in on the consent page through an
OpenID provider instead: each entry registers the control plane as a relying party
(authorization code with PKCE) of an issuer of ``[[users.issuers]]`` (``issuer`` is
that entry's ``name``; its ``audience`` must be this ``client_id``, as the ID token's
``aud`` is the client). ``client_secret_file`` (relative to the home, mode 0600) holds
the client secret of a confidential client; without it the client is public. The
provider's redirect URI is ``<server.public_url>/oauth/callback``. At least one of
``local_user`` and ``sign_in`` is required.

``client_metadata_documents`` (on by default) accepts clients whose ``client_id`` is
the ``https`` URL of their metadata document (draft-ietf-oauth-client-id-metadata-document,
:mod:`zerolane.server.oauth_client_documents`), kept at most
``client_metadata_max_age`` seconds; ``client_metadata_loopback`` lets a development
server (its ``public_url`` on loopback) fetch them from loopback addresses, over plain
``http`` too.

Failed sign-ins are limited (:mod:`zerolane.server.oauth_throttle`): past
``failed_sign_ins_per_user`` failures for a username typed, or
``failed_sign_ins_per_address`` from one client address, each further failure locks
it for ``sign_in_backoff`` seconds, doubled each time up to 15 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, model_validator

from zerolane.hosts import is_loopback
from zerolane.settings.validate import STRICT, Bool, Int, Required, Str, Texts, refuse, within

DEFAULT_BEARER_TTL = 300
MAX_BEARER_TTL = 900
MAX_USERNAME = 64
MAX_SCOPES = 20
DEFAULT_DOCUMENT_MAX_AGE = 3600
MAX_DOCUMENT_MAX_AGE = 86_400
DEFAULT_FAILURES_PER_USER = 5
DEFAULT_FAILURES_PER_ADDRESS = 20
DEFAULT_SIGN_IN_BACKOFF = 30


def _resources(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise refuse("config.oauth_resource", f"{value!r} is not an http(s) URL")
    return values


def _endpoint(value: str) -> str:
    parts = urlsplit(value)
    host = parts.hostname or ""
    secure = parts.scheme == "https" and host
    if not (secure or (parts.scheme == "http" and is_loopback(host))) or parts.fragment:
        raise refuse("config.url", f"{value!r}: use https (plain http only to loopback)")
    return value


def _scopes(values: tuple[str, ...]) -> tuple[str, ...]:
    if "openid" not in values or len(values) > MAX_SCOPES:
        raise refuse("config.oauth_sign_in", "scopes include openid (at most 20 scopes)")
    for value in values:
        if not value or not all(c.isascii() and c.isprintable() and c not in ' "\\' for c in value):
            raise refuse("config.oauth_sign_in", f"{_short(value)} is not a scope token")
    return values


def _short(value: str) -> str:
    return repr(value) if len(value) <= 32 else f"a {len(value)}-character value"


def _username(value: str) -> str:
    if len(value) > MAX_USERNAME or not value.isprintable() or value != value.strip():
        raise refuse("config.oauth_user", f"a username is 1..{MAX_USERNAME} printable characters")
    return value


@dataclass(frozen=True, slots=True)
class LocalUserConfig:
    """``[oauth.local_user]``: the one person who signs in on this laptop's consent
    page; ``password_file`` (relative to the home) holds the scrypt hash, mode 0600."""

    __pydantic_config__ = STRICT

    username: Annotated[Required, AfterValidator(_username)]
    password_file: Required = "oauth-password"  # noqa: S105 (a file name)


@dataclass(frozen=True, slots=True)
class SignInConfig:
    """``[[oauth.sign_in]]``: the control plane as a relying party of an OpenID
    provider of ``[[users.issuers]]`` (``issuer``: that entry's ``name``)."""

    __pydantic_config__ = STRICT

    issuer: Required
    client_id: Required
    authorization_endpoint: Annotated[Required, AfterValidator(_endpoint)]
    token_endpoint: Annotated[Required, AfterValidator(_endpoint)]
    #: the client secret's file (relative to the home, mode 0600); none: a public client
    client_secret_file: Str | None = None
    scopes: Annotated[Texts, AfterValidator(_scopes)] = ("openid",)
    #: the button's text, ``Sign in with <display_name>`` (default: ``issuer``)
    display_name: Str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.issuer


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    __pydantic_config__ = STRICT

    enabled: Bool = False
    #: the MCP gateways' audiences a client may name as ``resource``
    resources: Annotated[Texts, AfterValidator(_resources)] = ()
    #: a client that sends no DPoP proof gets a short-lived unbound token (else none)
    allow_bearer_clients: Bool = False
    bearer_token_ttl: Annotated[
        Int, within("config.oauth_bearer_ttl", 1, MAX_BEARER_TTL, " seconds")
    ] = DEFAULT_BEARER_TTL
    local_user: LocalUserConfig | None = None
    #: OpenID providers people may sign in with on the consent page
    sign_in: tuple[SignInConfig, ...] = ()
    #: clients may be named by the URL of their metadata document
    client_metadata_documents: Bool = True
    #: the longest a fetched document is kept, seconds (its Cache-Control within it)
    client_metadata_max_age: Annotated[
        Int, within("config.oauth_client_metadata", 60, MAX_DOCUMENT_MAX_AGE, " seconds")
    ] = DEFAULT_DOCUMENT_MAX_AGE
    #: development only: fetch documents from loopback addresses (and over http)
    client_metadata_loopback: Bool = False
    #: failed sign-ins for one username typed before each further one locks it
    failed_sign_ins_per_user: Annotated[Int, within("config.oauth_sign_in_limit", 1, 1000)] = (
        DEFAULT_FAILURES_PER_USER
    )
    #: failed sign-ins from one client address before each further one locks it
    failed_sign_ins_per_address: Annotated[Int, within("config.oauth_sign_in_limit", 1, 10_000)] = (
        DEFAULT_FAILURES_PER_ADDRESS
    )
    #: the first lock, seconds; doubled with each further failure, at most 900
    sign_in_backoff: Annotated[Int, within("config.oauth_sign_in_limit", 1, 900, " seconds")] = (
        DEFAULT_SIGN_IN_BACKOFF
    )

    @model_validator(mode="after")
    def _usable(self) -> Self:
        if self.enabled and not self.resources:
            raise refuse("config.oauth_resource", "name the MCP gateways' audiences in resources")
        if self.enabled and self.local_user is None and not self.sign_in:
            raise refuse(
                "config.oauth_user",
                "set [oauth.local_user] or [[oauth.sign_in]]: nobody could sign in",
            )
        names = [entry.issuer for entry in self.sign_in]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise refuse(
                    "config.oauth_sign_in", f"sign_in[{index}].issuer {name!r} is there twice"
                )
        return self
