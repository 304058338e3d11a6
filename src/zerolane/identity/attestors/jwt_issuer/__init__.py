"""JWT-issuer attestation: a signed JWT from a configured issuer (Kubernetes
service-account tokens, CI OIDC tokens such as GitHub Actions').

The issuer is picked by the token's (unverified) ``iss``, matched exactly; the
signature is then checked against that issuer's JWKS with its configured algorithms,
and only after that are the claims trusted: ``iss`` exact, ``aud`` contains the
configured audience, time rules in :mod:`.claims`. The token proves the selector
``jwt_issuer:<name>`` plus one ``<type>:<value>`` per configured claim mapping; it
names no SPIFFE ID, so the registry picks the workload whose selectors all match.

Selector types from different issuers share one namespace: register
``jwt_issuer:<name>`` on a workload alongside its claim selectors, so that another
trusted issuer cannot prove them. Such JWTs are reusable until they expire.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from zerolane.errors import InvalidInput
from zerolane.identity.attestors.base import AttestationError, Attested
from zerolane.identity.attestors.jwt_issuer.claims import (
    check_audience,
    check_times,
    claim_selectors,
)
from zerolane.identity.attestors.jwt_issuer.jwks import (
    Fetch,
    FileJwks,
    JwksSource,
    UrlJwks,
    fetch_jwks,
)
from zerolane.identity.selectors import parse_selector
from zerolane.settings.identity import JwtIssuerConfig
from zerolane.tokens import jws
from zerolane.types import Clock

METHOD = "jwt_issuer"
MAX_TOKEN_CHARS = 16384


def _jws_reason(err: jws.JwsError) -> str:
    """This attestor's reason for a JWS refusal, by the refusal's type."""
    if isinstance(err, jws.JwsAlgorithmRefused):
        return "jwt.algorithm"
    if isinstance(err, jws.JwsUnknownKey):
        return "jwt.unknown_key"
    if isinstance(err, jws.JwsBadKey):  # a weak RSA key too
        return "jwt.bad_key"
    if isinstance(err, jws.JwsBadSignature):
        return "jwt.signature"
    return "jwt.malformed"  # not a JWS, crit, b64


def _malformed(message: str = "the evidence is not a compact JWT") -> AttestationError:
    return AttestationError("jwt.malformed", message)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise _malformed("the JWT claims are not a JSON object") from err
    if not isinstance(value, dict):
        raise _malformed("the JWT claims are not a JSON object")
    return value


def _unverified_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    raw = jws.b64url_decode(parts[1]) if len(parts) == 3 else None
    if raw is None:
        raise _malformed()
    return _json_object(raw)


class JwtIssuerAttestor:
    method = METHOD
    evidence_field = "jwt"

    def __init__(
        self,
        issuers: Sequence[JwtIssuerConfig],
        clock: Clock,
        *,
        base: Path,
        fetch: Fetch = fetch_jwks,
    ) -> None:
        """Check the issuer configs (``InvalidInput``) and set up their key sources.

        A relative ``jwks_file`` is resolved against ``base`` (the zerolane home);
        ``fetch`` is how ``jwks_url`` documents are downloaded.
        """
        self._clock = clock
        self._issuers: dict[str, JwtIssuerConfig] = {}
        self._sources: dict[str, JwksSource] = {}
        for issuer in issuers:
            _check_config(issuer, self._issuers)
            self._issuers[issuer.issuer] = issuer
            self._sources[issuer.issuer] = _source(issuer, clock, base, fetch)

    def attest(self, evidence: object) -> Attested:
        if not isinstance(evidence, str) or not 0 < len(evidence) <= MAX_TOKEN_CHARS:
            raise _malformed()
        iss = _unverified_claims(evidence).get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AttestationError("jwt.unknown_issuer", "the token's issuer is not trusted")
        claims = self._verified_claims(evidence, issuer)
        if claims.get("iss") != issuer.issuer:
            raise AttestationError("jwt.issuer", "the token's issuer does not match")
        check_audience(claims, issuer.audience)
        check_times(claims, self._clock.now())
        sub = claims.get("sub")
        return Attested(
            method=METHOD,
            selectors=(f"jwt_issuer:{issuer.name}", *claim_selectors(claims, issuer.claims)),
            spiffe_id=None,
            details={"issuer": issuer.name, "sub": sub if isinstance(sub, str) else None},
        )

    def _verified_claims(self, token: str, issuer: JwtIssuerConfig) -> dict[str, Any]:
        try:
            header = jws.unverified_header(token)
            if header.get("alg") not in issuer.algorithms:
                raise jws.JwsAlgorithmRefused(f"algorithm {header.get('alg')!r} refused")
            kid = header.get("kid")
            keys = self._sources[issuer.issuer].keys(kid if isinstance(kid, str) else None)
            verified = jws.verify(token, keys, algorithms=issuer.algorithms)
        except jws.JwsError as err:
            raise AttestationError(_jws_reason(err), err.message) from err
        return _json_object(verified.payload)


def _check_config(issuer: JwtIssuerConfig, seen: Mapping[str, JwtIssuerConfig]) -> None:
    where = f"jwt_issuers.{issuer.name}"
    try:
        parse_selector(f"{METHOD}:{issuer.name}")
    except InvalidInput as err:
        raise InvalidInput("config.jwt_issuer", f"{where}: name must be selector-safe") from err
    if issuer.issuer in seen or any(i.name == issuer.name for i in seen.values()):
        raise InvalidInput("config.jwt_issuer", f"{where}: issuer and name must be unique")
    unsupported = set(issuer.algorithms) - jws.SUPPORTED_ALGORITHMS
    if not issuer.algorithms or unsupported:
        supported = ", ".join(sorted(jws.SUPPORTED_ALGORITHMS))
        raise InvalidInput("config.jwt_issuer", f"{where}: algorithms must be among {supported}")
    if issuer.jwks_cache_seconds < 0:
        raise InvalidInput("config.jwt_issuer", f"{where}: jwks_cache_seconds must be >= 0")


def _source(issuer: JwtIssuerConfig, clock: Clock, base: Path, fetch: Fetch) -> JwksSource:
    if issuer.jwks_file is not None:
        return FileJwks(base / issuer.jwks_file)
    if issuer.jwks_url is not None:
        return UrlJwks(issuer.jwks_url, issuer.jwks_cache_seconds, clock, fetch)
    raise InvalidInput("config.jwks", f"jwt_issuers.{issuer.name}: set jwks_file or jwks_url")
