"""``[oauth]``: the control plane as the authorization server of standard MCP clients.

Agent hosts that speak the MCP authorization flow (OAuth 2.1 authorization code with
PKCE, dynamic client registration) rather than zerolane's SDK get their task tokens
here. Off by default. ``resources`` are the audiences (RFC 8707 resource URLs) of the
MCP gateways tokens may be asked for; ``allow_bearer_clients`` lets a client that sends
no DPoP proof get a short-lived unbound token (``bearer_token_ttl`` seconds, at most
900); ``local_user`` is the one person of a laptop setup, who signs in on the consent
page with a password whose scrypt hash is in a 0600 file (``zerolane oauth
set-password``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, model_validator

from zerolane.settings.validate import STRICT, Bool, Int, Required, Texts, refuse, within

DEFAULT_BEARER_TTL = 300
MAX_BEARER_TTL = 900
MAX_USERNAME = 64


def _resources(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise refuse("config.oauth_resource", f"{value!r} is not an http(s) URL")
    return values


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

    @model_validator(mode="after")
    def _usable(self) -> Self:
        if self.enabled and not self.resources:
            raise refuse("config.oauth_resource", "name the MCP gateways' audiences in resources")
        if self.enabled and self.local_user is None:
            raise refuse("config.oauth_user", "set [oauth.local_user]: nobody could sign in")
        return self
