"""Strict JWS verification over PyJWT, with our rules on algorithms and keys.

zerolane issues and accepts only asymmetric signatures: ES256 for its own tokens,
EdDSA where configured, and RS256, PS256 or ES384 when a caller verifying an external
issuer passes them in ``algorithms``. A token with any other ``alg`` (``none``, HMAC,
RS384...) is refused before a key is even looked at, so no algorithm-confusion trick
applies. A JWK whose ``kty``/``crv``, ``use``, ``key_ops`` or ``alg`` says it is not
for verifying this algorithm is never used; RSA keys under 2048 bits or with the ROCA
fingerprint (CVE-2017-15361) are refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm
from jwt.exceptions import DecodeError
from jwt.types import SigOptions

from zerolane.errors import Unauthenticated

#: alg -> (kty, crv or None, JWK members of the public key, PyJWT algorithm)
_ALGORITHMS: dict[str, tuple[str, str | None, tuple[str, ...], Algorithm]] = {
    "ES256": ("EC", "P-256", ("x", "y"), ECAlgorithm(ECAlgorithm.SHA256)),
    "ES384": ("EC", "P-384", ("x", "y"), ECAlgorithm(ECAlgorithm.SHA384)),
    "EdDSA": ("OKP", "Ed25519", ("x",), OKPAlgorithm()),
    "RS256": ("RSA", None, ("n", "e"), RSAAlgorithm(RSAAlgorithm.SHA256)),
    "PS256": ("RSA", None, ("n", "e"), RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256)),
}
SUPPORTED_ALGORITHMS = frozenset(_ALGORITHMS)
MIN_RSA_BITS = 2048
_OPTIONS: SigOptions = {"verify_signature": True, "enforce_minimum_key_length": True}


#: a base64url segment: the alphabet, then at most two '=' (accepted as PyJWT does)
_SEGMENT = re.compile(rb"([A-Za-z0-9_-]*)(={0,2})")
#: distinct verification keys kept parsed (a proof's key is parsed once per agent key)
KEY_CACHE_SIZE = 4096


class _Jws(jwt.PyJWS):
    """PyJWT's JWS with its base64url segment check done by one regular expression.

    PyJWT checks each character of every segment in a Python loop, which made reading
    a DPoP proof cost more than verifying its signature. This accepts and refuses
    exactly what PyJWT's ``_decode_base64url_segment`` does (alphabet, at most two
    ``=`` of padding only where the length needs it, canonical encoding), and is
    tested against it.
    """

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise DecodeError(f"Invalid {name} padding")
        stripped, padding = match.group(1), match.group(2)
        if (padding and len(segment) % 4 != 0) or len(stripped) % 4 == 1:
            raise DecodeError(f"Invalid {name} padding")
        try:
            decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
        except (TypeError, binascii.Error) as err:
            raise DecodeError(f"Invalid {name} padding") from err
        if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
            raise DecodeError(f"Invalid {name} padding")
        return decoded

    def parse(self, token: str) -> ParsedJws:
        """The first half of ``decode_complete`` (split, decode, check the header)."""
        payload, signing_input, header, signature = self._load(token)
        self._validate_headers(header)
        return ParsedJws(header, payload, signing_input, signature)

    def signature_verifies(self, parsed: ParsedJws, key: Any, alg: str) -> bool:
        """The second half of ``decode_complete``: False when the signature does not
        verify with ``key``; PyJWT's other errors propagate."""
        try:
            self._verify_signature(
                parsed.signing_input, parsed.header, parsed.signature, key, [alg], options=_OPTIONS
            )
        except jwt.InvalidSignatureError:
            return False
        return True


def _verifier() -> _Jws:
    """A PyJWS that knows only our algorithms (PyJWT's others are unregistered)."""
    verifier = _Jws(algorithms=[])
    for name, (*_, algorithm) in _ALGORITHMS.items():
        verifier.register_algorithm(name, algorithm)
    return verifier


_jws = _verifier()


class JwsError(Unauthenticated):
    """A JWS failed verification; ``reason`` says which check."""


@dataclass(frozen=True, slots=True)
class ParsedJws:
    """A compact JWS split and decoded once, nothing in it trusted yet: callers read the
    header to choose keys and checks, then hand this to :func:`verify`, so no token is
    decoded twice."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    header: dict[str, Any]
    payload: bytes
    key: Mapping[str, Any]


def parse(token: str) -> ParsedJws:
    """Split and decode a compact JWS without trusting it (PyJWT's checks of the
    segments and header). Raises :class:`JwsError` (``jws.malformed``)."""
    try:
        parsed = _jws.parse(token)
    except (jwt.PyJWTError, RecursionError) as err:
        raise JwsError("jws.malformed", "the token is not a compact JWS") from err
    if not isinstance(parsed.header, dict):
        raise JwsError("jws.malformed", "the JWS header is not an object")
    return parsed


def unverified_header(token: str) -> dict[str, Any]:
    """Read a compact JWS header without trusting it (for ``kid`` selection)."""
    return parse(token).header


def _key_allows(jwk: Mapping[str, Any], alg: str) -> bool:
    kty, crv, _, _ = _ALGORITHMS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    if "use" in jwk and jwk["use"] not in ("sig", "jwt-svid"):
        return False
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    return not ("alg" in jwk and jwk["alg"] != alg)


def _roca_fingerprints() -> tuple[tuple[int, frozenset[int]], ...]:
    """For each small prime p, the residues of the subgroup 65537 generates mod p."""
    primes = [p for p in range(3, 168) if all(p % q for q in range(2, p))]
    table = []
    for p in primes:
        residues, r = set(), 1
        while r not in residues:
            residues.add(r)
            r = r * 65537 % p
        table.append((p, frozenset(residues)))
    return tuple(table)


_ROCA = _roca_fingerprints()


def _is_roca(modulus: int) -> bool:
    """True when ``modulus`` has the structure of an Infineon ROCA-weak key."""
    return all(modulus % p in residues for p, residues in _ROCA)


def public_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """The verification key ``jwk`` holds for ``alg``: only its public members, checked
    (on the curve; RSA size and ROCA), parsed once per distinct key and kept in a
    bounded cache. Raises :class:`JwsError` (``jws.bad_key``, ``jws.weak_key``)."""
    _, _, members, _ = _ALGORITHMS[alg]
    values = tuple(v for m in members if isinstance(v := jwk.get(m), str))
    if len(values) != len(members):
        raise JwsError("jws.bad_key", "the verification key is malformed")
    return _parsed_key(alg, values)


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _parsed_key(alg: str, values: tuple[str, ...]) -> Any:
    kty, crv, members, algorithm = _ALGORITHMS[alg]
    public = {"kty": kty, **({"crv": crv} if crv else {})}
    public.update(zip(members, values, strict=True))
    try:
        key = algorithm.from_jwk(public)
    except (jwt.PyJWTError, ValueError, TypeError) as err:
        raise JwsError("jws.bad_key", "the verification key is malformed") from err
    if kty == "RSA" and (key.key_size < MIN_RSA_BITS or _is_roca(key.public_numbers().n)):
        raise JwsError("jws.weak_key", f"RSA keys need {MIN_RSA_BITS}+ bits and no ROCA flaw")
    return key


def verify(
    token: str | ParsedJws,
    keys: Iterable[Mapping[str, Any]],
    *,
    algorithms: Collection[str] = ("ES256",),
) -> VerifiedJws:
    """Verify a compact JWS (or one :func:`parse` already split) against ``keys`` (JWKs);
    return header, payload and the key that verified it.

    Only algorithms both in ``algorithms`` and supported here are accepted. The key is
    chosen by ``kid`` when the header names one; without a ``kid`` each usable key is
    tried. Raises :class:`JwsError` on any failure.
    """
    allowed = SUPPORTED_ALGORITHMS.intersection(algorithms)
    parsed = token if isinstance(token, ParsedJws) else parse(token)
    header = parsed.header
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise JwsError("jws.algorithm", f"algorithm {alg!r} is not accepted")
    if "crit" in header:
        raise JwsError("jws.crit", "critical header extensions are not supported")
    if header.get("b64", True) is not True:
        raise JwsError("jws.b64", "unencoded payloads are not supported")
    kid = header.get("kid")
    candidates = [k for k in keys if _key_allows(k, alg)]
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
    if not candidates:
        raise JwsError("jws.unknown_key", "no usable key for this token")
    for jwk in candidates:
        try:
            verifies = _jws.signature_verifies(parsed, public_key(jwk, alg), alg)
        except jwt.PyJWTError as err:
            raise JwsError("jws.malformed", "the token is not a valid JWS") from err
        if verifies:
            return VerifiedJws(header=header, payload=parsed.payload, key=jwk)
    raise JwsError("jws.signature", "the signature does not verify")
