"""Task tokens: JWT access tokens (RFC 9068) bound to the workload's DPoP key.

A task token is ES256, ``typ: at+jwt``, and carries ``iss``, ``sub`` (the workload's
SPIFFE ID), ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``, ``client_id``, ``cnf`` with
exactly one of ``jkt`` (RFC 9449, the default) or ``x5t#S256`` (RFC 8705, a task
opened over mutual TLS with an X.509-SVID), the ``task`` id, the granted
``authorization_details`` (RFC 9396) and, for a delegated task, the ``act`` chain
(RFC 8693).

One kind is unbound: a token issued to a standard MCP client that proves no key
(``[oauth] allow_bearer_clients``) has no ``cnf`` and says so with ``"bearer": true``;
it is short-lived and meant for one MCP gateway only, and the authenticator accepts it
only where the deployment allows bearer clients. A token without ``cnf`` and without
that mark is refused (``token.unbound``), and one with both is malformed.

Verification checks the signature and every claim; :class:`TaskTokenVerifier` caches
verified claims by token hash and key set, and re-checks issuer, audience, the
verifying key's publication and the time on every call.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.tokens import jws
from zerolane.tokens.algorithms import SIGNING_ALG
from zerolane.tokens.errors import UnknownSigningKey
from zerolane.tokens.rfc8693 import Actor, parse_act
from zerolane.tokens.rfc8705 import CNF_MEMBER, is_thumbprint

TYP = "at+jwt"
_TYPS = frozenset({"at+jwt", "application/at+jwt"})
ALGORITHMS = (SIGNING_ALG,)
MAX_TOKEN_CHARS = 32 * 1024
DEFAULT_LEEWAY = 5.0


class TokenError(Unauthenticated):
    """A task token was refused; ``reason`` names the check."""


class TokenUnknownKey(TokenError, UnknownSigningKey):
    """The token names a signing key the verifier was not given (``token.unknown_key``):
    the control plane may have rotated since the verifier fetched its keys."""

    def __init__(self, message: str) -> None:
        super().__init__("token.unknown_key", message)


@dataclass(frozen=True)
class TaskTokenClaims:
    issuer: str
    subject: str
    audience: tuple[str, ...]
    issued_at: int
    not_before: int
    expires_at: int
    jti: str
    #: the DPoP key's RFC 7638 thumbprint; None for a certificate-bound token (``x5t``)
    jkt: str | None
    task_id: str
    authorization_details: tuple[dict[str, Any], ...]
    act: dict[str, Any] | None = None
    client_id: str | None = None
    #: RFC 8705 ``cnf.x5t#S256``: the client certificate's SHA-256 (instead of ``jkt``)
    x5t: str | None = None
    #: unbound (no ``cnf``): a bearer client's token, marked ``"bearer": true``
    bearer: bool = False

    @property
    def cnf(self) -> dict[str, str]:
        """The confirmation claim: exactly one of ``jkt`` and ``x5t#S256``."""
        if self.x5t is not None:
            return {CNF_MEMBER: self.x5t}
        return {"jkt": self.jkt or ""}

    def to_claims(self) -> dict[str, Any]:
        """The JWT claims set; ``client_id`` defaults to ``sub``, ``act`` only when set."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": list(self.audience),
            "iat": self.issued_at,
            "nbf": self.not_before,
            "exp": self.expires_at,
            "jti": self.jti,
            "client_id": self.client_id if self.client_id is not None else self.subject,
            "task": self.task_id,
            "authorization_details": [dict(d) for d in self.authorization_details],
        }
        if self.bearer:
            claims["bearer"] = True
        else:
            claims["cnf"] = self.cnf
        if self.act is not None:
            claims["act"] = self.act
        return claims

    @property
    def actors(self) -> tuple[Actor, ...]:
        """The ``act`` chain (RFC 8693), current actor first; ``()`` for a root task."""
        return parse_act(self.act)


def issue_task_token(sign: Callable[[dict[str, Any], str], str], claims: TaskTokenClaims) -> str:
    """Sign ``claims`` as an ``at+jwt`` with ``sign`` (the control plane's ``Keyring.sign``)."""
    bound = (claims.jkt is not None) + (claims.x5t is not None)
    if not claims.audience or claims.expires_at <= claims.not_before:
        raise InvalidInput("token.claims", "a task token needs an audience and a window")
    if claims.bearer:
        if bound:
            raise InvalidInput("token.claims", "a bearer token is bound to nothing")
    elif bound != 1 or not (claims.jkt or is_thumbprint(claims.x5t)):
        raise InvalidInput("token.claims", "a task token is bound by exactly one jkt or x5t#S256")
    return sign(claims.to_claims(), TYP)


def _signed(token: str, keys: Sequence[Mapping[str, Any]]) -> jws.VerifiedJws:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("token.malformed", "a task token is a compact JWS of at most 32 KiB")
    try:
        parsed = jws.parse(token)
        typ = parsed.header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _TYPS:
            raise TokenError("token.typ", f"a task token has typ {TYP}")
        return jws.verify(parsed, keys, algorithms=ALGORITHMS)
    except jws.JwsMalformed as err:
        raise TokenError("token.malformed", err.message) from err
    except jws.JwsUnknownKey as err:
        raise TokenUnknownKey(err.message) from err
    except jws.JwsError as err:
        raise TokenError("token.signature", err.message) from err


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError("token.claims", f"the token lacks a string '{name}'")
    return value


def _time(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise TokenError("token.claims", f"the token lacks an integer '{name}'")
    return value


def _audience(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud
    if not isinstance(auds, list) or not auds or not all(isinstance(a, str) for a in auds):
        raise TokenError("token.claims", "the token lacks an audience")
    return tuple(auds)


def _binding(claims: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(jkt, x5t)``: the token is bound by exactly one of them; ``(None, None)`` for
    a token marked ``"bearer": true`` without ``cnf``."""
    cnf = claims.get("cnf")
    marked = claims.get("bearer", False)
    if marked is not False:
        if marked is not True or cnf is not None:
            raise TokenError("token.claims", "a bearer token has bearer true and no cnf")
        return None, None
    members = {"jkt", CNF_MEMBER}.intersection(cnf) if isinstance(cnf, dict) else set()
    if cnf is None or (isinstance(cnf, dict) and not members):
        raise TokenError("token.unbound", "the token is not bound to a key (no cnf.jkt)")
    if not isinstance(cnf, dict) or len(members) != 1:
        raise TokenError("token.claims", "the token's cnf holds exactly one of jkt, x5t#S256")
    if "jkt" in members:
        jkt = cnf["jkt"]
        if not isinstance(jkt, str) or not jkt:
            raise TokenError("token.claims", "the token's cnf.jkt is not a string")
        return jkt, None
    x5t = cnf[CNF_MEMBER]
    if not is_thumbprint(x5t):
        raise TokenError("token.claims", "the token's cnf.x5t#S256 is not a SHA-256 thumbprint")
    return None, str(x5t)


def _details(claims: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    details = claims.get("authorization_details")
    if not isinstance(details, list) or not all(
        isinstance(d, dict) and isinstance(d.get("type"), str) for d in details
    ):
        raise TokenError("token.claims", "authorization_details is a list of typed objects")
    return tuple(details)


def _act(claims: Mapping[str, Any]) -> dict[str, Any] | None:
    act = claims.get("act")
    try:  # each actor in the chain names its subject; the chain is bounded
        parse_act(act)
    except ValueError as err:
        raise TokenError(
            "token.claims", f"act is a chain of objects with a string 'sub': {err}"
        ) from err
    return act if isinstance(act, dict) else None


def _parse(payload: bytes) -> TaskTokenClaims:
    """The claims of a signature-checked payload, checked except for issuer, audience
    and time (which depend on the caller and the moment)."""
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise TokenError("token.malformed", "the token's claims are not JSON") from err
    if not isinstance(claims, dict):
        raise TokenError("token.malformed", "the token's claims are not an object")
    jkt, x5t = _binding(claims)
    return TaskTokenClaims(
        issuer=_string(claims, "iss"),
        subject=_string(claims, "sub"),
        audience=_audience(claims),
        issued_at=_time(claims, "iat"),
        not_before=_time(claims, "nbf"),
        expires_at=_time(claims, "exp"),
        jti=_string(claims, "jti"),
        jkt=jkt,
        task_id=_string(claims, "task"),
        authorization_details=_details(claims),
        act=_act(claims),
        client_id=_string(claims, "client_id") if "client_id" in claims else None,
        x5t=x5t,
        bearer=claims.get("bearer") is True,
    )


def _check_for(claims: TaskTokenClaims, *, issuer: str, audience: str) -> TaskTokenClaims:
    if claims.issuer != issuer:
        raise TokenError("token.issuer", "the token is from another issuer")
    if audience not in claims.audience:
        raise TokenError(
            "token.audience",
            f"the token is not meant for this audience: expected {audience!r}, "
            f"the token is for {', '.join(repr(a) for a in claims.audience[:8])}",
        )
    return claims


def _check_time(claims: TaskTokenClaims, now: float, leeway: float) -> TaskTokenClaims:
    if now >= claims.expires_at + leeway:
        raise TokenError("token.expired", "the token has expired")
    if claims.not_before > now + leeway:
        raise TokenError("token.not_yet_valid", "the token is not valid yet")
    return claims


def verify_task_token(
    token: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    issuer: str,
    audience: str,
    now: float,
    leeway: float = DEFAULT_LEEWAY,
) -> TaskTokenClaims:
    """Verify a task token's signature (ES256 against ``keys``), claims and time."""
    claims = _parse(_signed(token, keys).payload)
    return _check_time(_check_for(claims, issuer=issuer, audience=audience), now, leeway)


#: the claims that are immutable values, copied by reference out of the cache
_SHARED_FIELDS = tuple(
    f.name for f in fields(TaskTokenClaims) if f.name not in ("authorization_details", "act")
)


@dataclass(frozen=True, slots=True)
class _Verified:
    """A cached verification: what :func:`_parse` returned, and the published key
    whose signature check passed (a hit counts only while that key is still given)."""

    shared: dict[str, Any]
    #: ``[authorization_details, act]`` as JSON: decoded afresh for every caller, so no
    #: caller can change what another is handed
    mutable_json: str
    key: Mapping[str, Any]

    @classmethod
    def of(cls, claims: TaskTokenClaims, key: Mapping[str, Any]) -> _Verified:
        shared = {name: getattr(claims, name) for name in _SHARED_FIELDS}
        mutable = [list(claims.authorization_details), claims.act]
        return cls(shared, json.dumps(mutable), dict(key))

    def claims(self) -> TaskTokenClaims:
        details, act = json.loads(self.mutable_json)
        return TaskTokenClaims(**self.shared, authorization_details=tuple(details), act=act)


class TaskTokenVerifier:
    """:func:`verify_task_token` with a bounded LRU cache of verified tokens.

    A task's token comes with every request of the task, and checking its signature
    and parsing its claims again each time was most of the cost of reading it. The
    cache key is SHA-256(token) plus ``keys_version``: callers change the version
    whenever the key set changes. A hit counts only while the key that verified the
    signature is still among ``keys`` (a key stops being published by time, without a
    new version); then issuer and audience are checked, and ``exp``/``nbf`` compared
    with ``now``, on every call. Only tokens that passed every check are cached.
    """

    def __init__(self, *, leeway: float = DEFAULT_LEEWAY, max_entries: int = 4096) -> None:
        self.leeway = leeway
        self._max = max_entries
        self._verified: OrderedDict[tuple[bytes, str], _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._verified)

    def verify(
        self,
        token: str,
        keys: Sequence[Mapping[str, Any]],
        *,
        keys_version: str,
        issuer: str,
        audience: str,
        now: float,
    ) -> TaskTokenClaims:
        digest = hashlib.sha256(token.encode("utf-8")).digest() if isinstance(token, str) else b""
        cache_key = (digest, keys_version)
        with self._lock:
            cached = self._verified.get(cache_key)
            if cached is not None and cached.key not in keys:
                del self._verified[cache_key]
                cached = None
            if cached is not None:
                self._verified.move_to_end(cache_key)
        if cached is not None:
            claims = _check_for(cached.claims(), issuer=issuer, audience=audience)
            return _check_time(claims, now, self.leeway)
        signed = _signed(token, keys)
        claims = _check_for(_parse(signed.payload), issuer=issuer, audience=audience)
        _check_time(claims, now, self.leeway)
        with self._lock:
            self._verified[cache_key] = _Verified.of(claims, signed.key)
            while len(self._verified) > self._max:
                self._verified.popitem(last=False)
        return claims
