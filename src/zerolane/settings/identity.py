"""What the identity service is configured with: SVID lifetimes and trusted JWT issuers.

``zerolane.toml``'s ``[svid]``, ``[[jwt_issuers]]`` and ``[[users.issuers]]`` hold
these; the core (:mod:`zerolane.identity`) receives them as these types and never reads
the deployment's file itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Self

from pydantic import AfterValidator, model_validator

from zerolane.settings.validate import STRICT, Int, Required, Str, Texts, refuse, within

DEFAULT_X509_TTL = 3600
#: the longest an X.509-SVID may be set to live (365 days)
MAX_X509_TTL = 365 * 86400


@dataclass(frozen=True, slots=True)
class SvidConfig:
    """``[svid]``: how long SVIDs live (seconds); ``0 < default_ttl <= max_ttl``."""

    __pydantic_config__ = STRICT

    default_ttl: Int = 300
    max_ttl: Int = 3600
    #: the longest an X.509-SVID lives (seconds; the CA's own validity caps it too)
    x509_ttl: Int = DEFAULT_X509_TTL

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not 0 < self.x509_ttl <= MAX_X509_TTL:
            raise refuse("config.svid_ttl", "x509_ttl is 1 second to 365 days")
        if not 0 < self.default_ttl <= self.max_ttl:
            raise refuse("config.svid_ttl", "need 0 < default_ttl <= max_ttl")
        return self


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values or not all(values):
        raise refuse("config.type", "must be a list of names, at least one")
    return values


def _selector_types(claims: dict[str, str]) -> dict[str, str]:
    for claim, selector_type in claims.items():
        if not selector_type:
            raise refuse("config.type", f"{claim} must be a selector type, not empty")
    return claims


@dataclass(frozen=True, slots=True)
class JwtIssuerConfig:
    """A trusted issuer of workload JWTs (Kubernetes service accounts, CI OIDC), or
    of people's ID tokens (``[[users.issuers]]``, without ``claims``); exactly one of
    ``jwks_file`` and ``jwks_url``."""

    __pydantic_config__ = STRICT

    name: Required
    issuer: Required
    audience: Required
    jwks_file: Str | None = None
    jwks_url: Str | None = None
    jwks_cache_seconds: Annotated[Int, within("config.jwt_issuer", 0, 86400, " seconds")] = 300
    algorithms: Annotated[Texts, AfterValidator(_names)] = ("RS256", "ES256")
    #: claim name (dotted path for nested claims) -> selector type
    claims: Annotated[dict[Str, Str], AfterValidator(_selector_types)] = field(default_factory=dict)

    @model_validator(mode="after")
    def _one_jwks(self) -> Self:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise refuse("config.jwks", "set exactly one of jwks_file, jwks_url")
        return self
