"""DPoP proofs (RFC 9449): make them on the client, verify them at every entry point.

A proof is a JWS (``typ: dpop+jwt``, ES256 or EdDSA) carrying its own public key in the
``jwk`` header and binding one request: the method (``htm``), the URL without query or
fragment (``htu``), the time (``iat``), a one-time ``jti`` and, with an access token,
the token's hash (``ath``). The verifier checks all of them, then the thumbprint of the
key against the token's ``cnf.jkt``, and only then spends the ``jti`` in the replay
cache, so a refused proof never burns an id.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.store.ports import ReplayCache
from zerolane.store.records import SpentProof
from zerolane.tokens import jws
from zerolane.tokens.algorithms import ALGORITHMS as _TABLE
from zerolane.tokens.algorithms import DPOP_ALGS
from zerolane.tokens.rfc7638 import b64url, thumbprint

TYP = "dpop+jwt"
#: the algorithms a proof may use (the ``algs`` of a ``DPoP`` challenge)
ALGORITHMS = DPOP_ALGS
MAX_PROOF_CHARS = 8 * 1024
MAX_JTI_CHARS = 256
DEFAULT_WINDOW = 60.0

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_REG_NAME = re.compile(r"[a-z0-9._~!$&'()*+,;=%-]+")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class DpopError(Unauthenticated):
    """A DPoP proof was refused; ``reason`` names the check. ``jkt`` and ``jti``: the
    thumbprint of the key that signed it and its ``jti``, when the refusal came after
    its signature was verified (None before)."""

    jkt: str | None = None
    jti: str | None = None


@dataclass(frozen=True)
class VerifiedProof:
    jkt: str
    jti: str
    iat: int
    htm: str
    htu: str
    #: when no enforcement point accepts the proof any more (``iat`` + the window)
    expires_at: float = 0.0

    @property
    def replay_key(self) -> str:
        """What makes the proof one-time: its ``jti`` under its key's thumbprint."""
        return f"{self.jkt}:{self.jti}"

    def spent(self) -> SpentProof:
        """The proof as the durable stores remember it once spent."""
        return SpentProof.of(self.replay_key, self.expires_at)


def normalize_htu(url: str) -> str:
    """The form in which ``htu`` values are compared (RFC 9449 section 4.3).

    Query and fragment are dropped, scheme and host lowercased, a default port removed
    and an empty path becomes ``/``; the path is otherwise kept as it is.
    """
    if not isinstance(url, str) or not _VISIBLE_ASCII.fullmatch(url):
        raise DpopError("dpop.htu", "the URL is empty or holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise DpopError("dpop.htu", "the URL is malformed") from err
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise DpopError("dpop.htu", "the URL is not http or https")
    if "@" in parts.netloc:
        raise DpopError("dpop.htu", "the URL carries userinfo")
    host = _host(parts.hostname or "")
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path or '/'}"


def _host(hostname: str) -> str:
    if ":" in hostname:  # an IPv6 literal; urlsplit removed its brackets
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError as err:
            raise DpopError("dpop.htu", "the URL has a malformed IPv6 host") from err
    if not _REG_NAME.fullmatch(hostname):
        raise DpopError("dpop.htu", "the URL has no valid host")
    return hostname


def access_token_hash(access_token: str) -> str:
    """The ``ath`` of a token: base64url SHA-256 of its ASCII value."""
    return b64url(hashlib.sha256(access_token.encode("utf-8")).digest())


def proof_jwk(private_key: PrivateKey) -> dict[str, str]:
    """The public JWK (public members only) that proofs made with ``private_key`` carry."""
    return dict(_proof_signer(private_key).jwk)


@dataclass(frozen=True, slots=True)
class _ProofSigner:
    """A proof key made ready: its signer, ``alg`` and public JWK (exported once)."""

    signer: jws.Signer
    alg: str
    jwk: Mapping[str, str]


@lru_cache(maxsize=64)
def _proof_signer(private_key: PrivateKey) -> _ProofSigner:
    """The signer of ``private_key``, built once per key: an agent signs a proof for
    every request, and importing the key and exporting its JWK again each time cost
    more than the signature. Key objects hash by identity and the cache holds them,
    so an entry is never found for another key."""
    alg = _algorithm(private_key)
    spec = _TABLE[alg]
    signer = jws.Signer(private_key)
    full = signer.public_jwk()
    jwk = {"kty": spec.kty, "crv": str(spec.crv), **{m: str(full[m]) for m in spec.members}}
    return _ProofSigner(signer, alg, jwk)


def _algorithm(private_key: object) -> str:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        return "ES256"
    raise InvalidInput("dpop.key", "DPoP keys are EC P-256 or Ed25519 private keys")


def make_proof(
    private_key: PrivateKey,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    nonce: str | None = None,
    iat: int | None = None,
    jti: str | None = None,
) -> str:
    """Sign a DPoP proof for one request (``ath`` when an access token goes with it)."""
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": method.upper(),
        "htu": normalize_htu(url),
        "iat": iat if iat is not None else int(time.time()),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    ready = _proof_signer(private_key)
    header = {"alg": ready.alg, "typ": TYP, "jwk": dict(ready.jwk)}
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    return ready.signer.sign(header, payload)


def _header_key(header: Mapping[str, Any], alg: str) -> dict[str, str]:
    """The public key in the proof header, validated; only its public members."""
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DpopError("dpop.jwk", "the proof carries no jwk header")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise DpopError("dpop.jwk", "the proof's jwk holds private key material")
    spec = _TABLE[alg]
    if jwk.get("kty") != spec.kty or jwk.get("crv") != spec.crv:
        raise DpopError("dpop.jwk", f"an {alg} proof needs an {spec.kty} {spec.crv} jwk")
    if not all(isinstance(jwk.get(m), str) for m in spec.members):
        raise DpopError("dpop.jwk", "the proof's jwk is malformed")
    public = {"kty": spec.kty, "crv": str(spec.crv), **{m: jwk[m] for m in spec.members}}
    try:  # parsing checks the point is on the curve (once per key: jws caches it)
        jws.public_key(public, alg)
    except jws.JwsError as err:
        raise DpopError("dpop.jwk", "the proof's jwk is not a valid public key") from err
    return public


def _signed_claims(proof: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Check the header and signature; return the header key and the claims."""
    if not isinstance(proof, str) or not proof or len(proof) > MAX_PROOF_CHARS:
        raise DpopError("dpop.malformed", "a proof is a compact JWS of at most 8 KiB")
    try:
        parsed = jws.parse(proof)
    except jws.JwsAlgorithmRefused as err:  # the header names no alg
        raise DpopError("dpop.alg", err.message) from err
    except jws.JwsError as err:
        raise DpopError("dpop.malformed", "the proof is not a compact JWS") from err
    header = parsed.header
    if header.get("typ") != TYP:
        raise DpopError("dpop.typ", f"a proof has typ {TYP}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise DpopError("dpop.alg", f"algorithm {alg!r} is not accepted for proofs")
    public = _header_key(header, alg)
    candidate = {**public, **({"kid": header["kid"]} if "kid" in header else {})}
    try:
        verified = jws.verify(parsed, [candidate], algorithms=ALGORITHMS)
    except jws.JwsBadSignature as err:
        raise DpopError("dpop.signature", err.message) from err
    except jws.JwsAlgorithmRefused as err:
        raise DpopError("dpop.alg", err.message) from err
    except (jws.JwsBadKey, jws.JwsUnknownKey) as err:
        raise DpopError("dpop.jwk", err.message) from err
    except jws.JwsError as err:
        raise DpopError("dpop.malformed", err.message) from err
    try:
        claims = json.loads(verified.payload)
    except (ValueError, RecursionError) as err:
        raise DpopError("dpop.malformed", "the proof's claims are not JSON") from err
    if not isinstance(claims, dict):
        raise DpopError("dpop.malformed", "the proof's claims are not an object")
    return public, claims


def _claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise DpopError("dpop.claims", f"the proof lacks a string '{name}'")
    return value


def _iat(claims: Mapping[str, Any]) -> int:
    value = claims.get("iat")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise DpopError("dpop.claims", "the proof lacks a numeric 'iat'")
    return math.floor(value)


@lru_cache(maxsize=jws.KEY_CACHE_SIZE)
def _thumbprint(public: tuple[tuple[str, str], ...]) -> str:
    """The RFC 7638 thumbprint of a proof key, computed once per key: an agent signs
    every proof with the same key, and hashing it cost as much as reading the proof."""
    return thumbprint(dict(public))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None,
    replay: ReplayCache,
    now: float,
    window: float = DEFAULT_WINDOW,
    expected_jkt: str | None = None,
) -> VerifiedProof:
    """Verify ``proof`` for the request ``method url`` at ``now``; spend its ``jti`` last.

    ``iat`` must be within ``window`` seconds of ``now``: strictly younger than the
    window, since the replay cache forgets the ``jti`` at ``iat + window``. Raises
    :class:`DpopError` naming the first check that failed.
    """
    public, claims = _signed_claims(proof)
    jkt = _thumbprint(tuple(public.items()))
    try:
        return _checked(claims, jkt, method, url, access_token, replay, now, window, expected_jkt)
    except DpopError as err:  # signed: who signed it and which proof, for the audit
        err.jkt = jkt
        jti = claims.get("jti")
        if isinstance(jti, str) and 0 < len(jti) <= MAX_JTI_CHARS:
            err.jti = jti
        raise


def _checked(
    claims: Mapping[str, Any],
    jkt: str,
    method: str,
    url: str,
    access_token: str | None,
    replay: ReplayCache,
    now: float,
    window: float,
    expected_jkt: str | None,
) -> VerifiedProof:
    """The checks of a proof whose signature verified (by the key ``jkt``)."""
    jti, htm, htu, iat = (
        _claim(claims, "jti"),
        _claim(claims, "htm"),
        _claim(claims, "htu"),
        _iat(claims),
    )
    if len(jti) > MAX_JTI_CHARS:
        raise DpopError("dpop.claims", f"the proof's jti is longer than {MAX_JTI_CHARS}")
    if htm != method.upper():
        raise DpopError("dpop.htm", "the proof is for another HTTP method")
    proof_htu = normalize_htu(htu)  # once: a client sends htu as the URL it requests
    if proof_htu != (proof_htu if url == htu else normalize_htu(url)):
        raise DpopError("dpop.htu", "the proof is for another URL")
    if now - iat >= window or iat - now > window:
        raise DpopError("dpop.iat", "the proof is too old or from the future")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not _same(ath, access_token_hash(access_token)):
            raise DpopError("dpop.ath", "the proof is not bound to this access token")
    if expected_jkt is not None and not _same(jkt, expected_jkt):
        raise DpopError("dpop.key_mismatch", "the proof is signed by another key than the token's")
    verified = VerifiedProof(
        jkt=jkt, jti=jti, iat=iat, htm=htm, htu=proof_htu, expires_at=iat + window
    )
    if not replay.first_use(verified.replay_key, verified.expires_at, now):
        raise DpopError("dpop.replayed", "the proof was already used (or cannot be remembered)")
    return verified
