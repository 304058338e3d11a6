"""People a task acts for, proven by an OIDC ID token from a configured issuer.

A workload may open a task on a person's behalf only with that person's ID token from
an issuer of ``[[users.issuers]]`` in ``zerolane.toml``. The token is checked exactly as
a workload JWT of ``[[jwt_issuers]]`` is (the same code: :class:`JwtIssuerAttestor`):
issuer picked by its exact ``iss``, signature by a key of that issuer's JWKS with its
configured algorithms, ``aud`` containing the configured audience, ``exp`` required and
in the future (no leeway), ``nbf``/``iat`` not in the future. It must also name the
person: a non-empty string ``sub``.

Refusals are ``Unauthenticated`` with reasons ``id_token.<check>``
(``id_token.typ``, ``id_token.unknown_issuer``, ``id_token.audience``, ``id_token.expired``,
``id_token.signature``, ``id_token.subject``...). The free-text ``on_behalf_of`` of a
task is never a substitute: only a :class:`VerifiedUser` from here sets a task's user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zerolane.errors import Unauthenticated
from zerolane.identity.attestors.base import AttestationError
from zerolane.identity.attestors.jwt_issuer import JwtIssuerAttestor
from zerolane.identity.attestors.jwt_issuer.jwks import Fetch, fetch_jwks
from zerolane.settings.identity import JwtIssuerConfig
from zerolane.tokens import jws
from zerolane.types import Clock

MAX_SUBJECT = 256
#: an ID token has no ``typ`` or a plain JWT one; any other (an access token's
#: ``at+jwt``, a DPoP proof, a logout token) is another kind of token of the issuer
ID_TOKEN_TYPES = frozenset({"jwt", "application/jwt"})


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    """A person, as an ID token proved them: ``subject`` is its ``sub``, ``issuer`` its
    ``iss`` (the pair is the person's identity), ``issuer_name`` the configured name."""

    subject: str
    issuer: str
    issuer_name: str


class UserTokenVerifier:
    """Verifies ID tokens against the configured ``[[users.issuers]]``."""

    def __init__(
        self,
        issuers: Sequence[JwtIssuerConfig],
        clock: Clock,
        *,
        base: Path,
        fetch: Fetch = fetch_jwks,
    ) -> None:
        self._by_name = {issuer.name: issuer for issuer in issuers}
        self._checker = JwtIssuerAttestor(issuers, clock, base=base, fetch=fetch)

    @property
    def configured(self) -> bool:
        return bool(self._by_name)

    def verify(self, id_token: str) -> VerifiedUser:
        """The person ``id_token`` proves, or ``Unauthenticated`` (``id_token.*``)."""
        if not self._by_name:
            raise Unauthenticated(
                "id_token.unknown_issuer", "no ID token issuer is configured ([[users.issuers]])"
            )
        try:
            typ = jws.unverified_header(id_token).get("typ")
        except jws.JwsError as err:
            raise Unauthenticated("id_token.malformed", "the ID token is not a JWS") from err
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ID_TOKEN_TYPES):
            raise Unauthenticated("id_token.typ", "the token is typed as another kind of JWT")
        try:
            attested = self._checker.attest(id_token)
        except AttestationError as err:
            check = err.reason.partition(".")[2] or "invalid"
            raise Unauthenticated(f"id_token.{check}", err.message) from err
        name, sub = attested.details.get("issuer"), attested.details.get("sub")
        issuer = self._by_name.get(name) if isinstance(name, str) else None
        if issuer is None:  # the checker only answers for the issuers it was given
            raise Unauthenticated("id_token.unknown_issuer", "the token's issuer is not trusted")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > MAX_SUBJECT:
            raise Unauthenticated(
                "id_token.subject", f"the ID token names no person (a 'sub' of 1..{MAX_SUBJECT})"
            )
        return VerifiedUser(subject=sub, issuer=issuer.issuer, issuer_name=issuer.name)
