"""Strict JWS verification over joserfc's public API, with our rules on algorithms and keys.

zerolane issues and accepts only asymmetric signatures: ES256 for its own tokens,
EdDSA where configured, and RS256, PS256 or ES384 when a caller verifying an external
issuer passes them in ``algorithms`` (the table is :mod:`zerolane.tokens.algorithms`).
A token with any other ``alg`` (``none``, HMAC, RS384...) is refused before a key is
even looked at, so no algorithm-confusion trick applies. A JWK whose ``kty``/``crv``,
``use``, ``key_ops`` or ``alg`` says it is not for verifying this algorithm is never
used; an EC coordinate of the wrong length, RSA keys under 2048 bits or with the ROCA
fingerprint (CVE-2017-15361) are refused.

joserfc splits and decodes the token (``jws.extract_compact``: base64url without
padding, canonical, a JSON header naming an ``alg``), imports keys (``jwk``) and checks
the signature (``jws.validate_compact``, with a registry that knows only our
algorithms). Every refusal is a typed :class:`~zerolane.tokens.errors.JwsError`.

Signing goes through joserfc too (:class:`Signer`, :func:`sign`): every token zerolane
issues (SVIDs and task tokens by the keyring, DPoP proofs by agents) and every public
JWK it publishes (:func:`public_jwk`) comes from here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jws as jose
from joserfc.errors import JoseError, MissingAlgorithmError, MissingCritHeaderError
from joserfc.jwa import EdDSAAlgorithm, ESAlgorithm, JWSAlgModel, RSAAlgorithm, RSAPSSAlgorithm
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from zerolane.tokens.algorithms import ALGORITHMS, SUPPORTED_ALGORITHMS
from zerolane.tokens.errors import (
    JwsAlgorithmRefused,
    JwsBadKey,
    JwsBadSignature,
    JwsCriticalHeader,
    JwsError,
    JwsMalformed,
    JwsUnencodedPayload,
    JwsUnknownKey,
    JwsWeakKey,
)

__all__ = [
    "KEY_CACHE_SIZE",
    "MIN_RSA_BITS",
    "SUPPORTED_ALGORITHMS",
    "JwsAlgorithmRefused",
    "JwsBadKey",
    "JwsBadSignature",
    "JwsCriticalHeader",
    "JwsError",
    "JwsMalformed",
    "JwsUnencodedPayload",
    "JwsUnknownKey",
    "JwsWeakKey",
    "ParsedJws",
    "Signer",
    "SigningKey",
    "VerifiedJws",
    "b64url_decode",
    "parse",
    "public_jwk",
    "public_key",
    "sign",
    "unverified_header",
    "verify",
]

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
MIN_RSA_BITS = 2048
#: the base64url alphabet, no padding (RFC 7515 section 2)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
#: distinct verification keys kept parsed (a proof's key is parsed once per agent key)
KEY_CACHE_SIZE = 4096
_KEY_CLASSES: dict[str, type[ECKey] | type[OKPKey] | type[RSAKey]] = {
    "EC": ECKey,
    "OKP": OKPKey,
    "RSA": RSAKey,
}


class _EdDSA(EdDSAAlgorithm):
    """RFC 8037's ``EdDSA``, the name RFC 9449 proofs use. RFC 9864 deprecates it for
    being polymorphic (Ed25519 or Ed448); here only an ``OKP``/``Ed25519`` key ever
    reaches it (the algorithm table says so), which is what ``Ed25519`` specifies."""

    security_warning = None  # type: ignore[assignment]  # joserfc's base allows None


class _Registry(jose.JWSRegistry):
    """Only our algorithms, whatever joserfc registers by default. Sizes are bounds on a
    token's parts that no caller of ours comes near (entry points cap whole tokens at
    8 to 32 KiB); an unknown header member is allowed (issuers add their own) while a
    registered one must have its registered type."""

    # joserfc keeps these on the class; ours are our own, not the default registry's
    algorithms: dict[str, JWSAlgModel] = {}  # noqa: RUF012
    recommended: list[str] = []  # noqa: RUF012
    max_header_length = 64 * 1024
    max_payload_length = 1024 * 1024
    max_signature_length = 4 * 1024


#: joserfc's model of each algorithm in the table (a new row without one fails here)
_MODELS: dict[str, JWSAlgModel] = {
    "ES256": ESAlgorithm("ES256", "P-256", 256),
    "ES384": ESAlgorithm("ES384", "P-384", 384),
    "EdDSA": _EdDSA(),
    "RS256": RSAAlgorithm(256),
    "PS256": RSAPSSAlgorithm(256),
}
for _name in sorted(SUPPORTED_ALGORITHMS):
    _Registry.register(_MODELS[_name])
_REGISTRY = _Registry(algorithms=sorted(SUPPORTED_ALGORITHMS), strict_check_header=False)


@dataclass(frozen=True, slots=True)
class ParsedJws:
    """A compact JWS split and decoded once, nothing in it trusted yet: callers read the
    header to choose keys and checks, then hand this to :func:`verify`, so no token is
    decoded twice."""

    header: dict[str, Any]
    payload: bytes
    compact: jose.CompactSignature


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    header: dict[str, Any]
    payload: bytes
    key: Mapping[str, Any]


def parse(token: str) -> ParsedJws:
    """Split and decode a compact JWS without trusting it. Raises :class:`JwsMalformed`;
    :class:`JwsAlgorithmRefused` when the header names no ``alg`` and
    :class:`JwsUnencodedPayload` when ``b64`` is false without ``crit`` (RFC 7797)."""
    if not isinstance(token, str):
        raise JwsMalformed("the token is not a compact JWS")
    try:
        compact = jose.extract_compact(token.encode("utf-8"), registry=_REGISTRY)
    except MissingAlgorithmError as err:
        raise JwsAlgorithmRefused("the JWS header names no algorithm") from err
    except MissingCritHeaderError as err:
        raise JwsUnencodedPayload("unencoded payloads are not supported") from err
    except (JoseError, ValueError, TypeError, LookupError, RecursionError) as err:
        raise JwsMalformed("the token is not a compact JWS") from err
    # joserfc reads the signature segment only when it verifies (an undecodable one does
    # not verify); one that is not even base64url is malformed, like a bad header
    if b64url_decode(token.rpartition(".")[2]) is None:
        raise JwsMalformed("the JWS signature is not base64url")
    header = compact.headers()
    if not isinstance(header, dict):
        raise JwsMalformed("the JWS header is not an object")
    if not isinstance(header.get("kid", ""), str):
        raise JwsMalformed("the JWS header's kid is not a string")
    return ParsedJws(header, compact.payload, compact)


def b64url_decode(segment: str) -> bytes | None:
    """The bytes of canonical unpadded base64url (RFC 7515 section 2), else None: no
    padding, no character outside the alphabet, no unused bits set."""
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        return None
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error:
        return None
    return decoded if base64.urlsafe_b64encode(decoded).rstrip(b"=") == segment.encode() else None


def unverified_header(token: str) -> dict[str, Any]:
    """Read a compact JWS header without trusting it (for ``kid`` selection)."""
    return parse(token).header


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The JSON object a compact JWS carries, read without trusting it (to choose how to
    read a token, never to grant anything); None when it is not one."""
    try:
        payload = json.loads(parse(token).payload)
    except (JwsError, ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def _key_allows(jwk: Mapping[str, Any], alg: str) -> bool:
    spec = ALGORITHMS[alg]
    if jwk.get("kty") != spec.kty or (spec.crv is not None and jwk.get("crv") != spec.crv):
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


def public_key(jwk: Mapping[str, Any], alg: str) -> Key:
    """The verification key ``jwk`` holds for ``alg``: only its public members, checked
    (on the curve, coordinates of the curve's size; RSA size and ROCA), parsed once per
    distinct key and kept in a bounded cache. Raises :class:`JwsBadKey` or
    :class:`JwsWeakKey`."""
    members = ALGORITHMS[alg].members
    values = tuple(v for m in members if isinstance(v := jwk.get(m), str))
    if len(values) != len(members):
        raise JwsBadKey("the verification key is malformed")
    return _parsed_key(alg, values)


def _encoded_length(size: int) -> int:
    """Characters of unpadded base64url for ``size`` bytes."""
    return (4 * size + 2) // 3


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _parsed_key(alg: str, values: tuple[str, ...]) -> Key:
    spec = ALGORITHMS[alg]
    size = spec.coordinate_bytes
    if size is not None and any(len(v) != _encoded_length(size) for v in values):
        raise JwsBadKey(f"the verification key's coordinates are not {size} bytes")
    public: dict[str, Any] = {"kty": spec.kty, **({"crv": spec.crv} if spec.crv else {})}
    public.update(zip(spec.members, values, strict=True))
    if spec.kty == "RSA":  # checked first: joserfc warns about small keys as it imports
        modulus = b64url_decode(public["n"])
        if modulus is None:
            raise JwsBadKey("the verification key is malformed")
        n = int.from_bytes(modulus, "big")
        if n.bit_length() < MIN_RSA_BITS or _is_roca(n):
            raise JwsWeakKey(f"RSA keys need {MIN_RSA_BITS}+ bits and no ROCA flaw")
    try:
        key = _KEY_CLASSES[spec.kty].import_key(public)
    except (JoseError, ValueError, TypeError, LookupError) as err:
        raise JwsBadKey("the verification key is malformed") from err
    return key


def _signature_verifies(parsed: ParsedJws, key: Key) -> bool:
    try:
        return jose.validate_compact(parsed.compact, key, registry=_REGISTRY)
    except (JoseError, ValueError, TypeError) as err:  # a registered header of the wrong type
        raise JwsMalformed("the token is not a valid JWS") from err


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
    tried. Raises a :class:`JwsError` naming the first check that failed.
    """
    allowed = SUPPORTED_ALGORITHMS.intersection(algorithms)
    parsed = token if isinstance(token, ParsedJws) else parse(token)
    header = parsed.header
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise JwsAlgorithmRefused(f"algorithm {alg!r} is not accepted")
    if "crit" in header:
        raise JwsCriticalHeader("critical header extensions are not supported")
    if header.get("b64", True) is not True:  # joserfc refuses it without crit already
        raise JwsUnencodedPayload("unencoded payloads are not supported")
    kid = header.get("kid")
    candidates = [k for k in keys if _key_allows(k, alg)]
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
    if not candidates:
        raise JwsUnknownKey("no usable key for this token")
    for jwk in candidates:
        if _signature_verifies(parsed, public_key(jwk, alg)):
            return VerifiedJws(header=header, payload=parsed.payload, key=jwk)
    raise JwsBadSignature("the signature does not verify")


def _signing_key(private_key: SigningKey) -> ECKey | OKPKey:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(private_key)
    return OKPKey.import_key(private_key)


class Signer:
    """A private key made ready to sign, for a key that signs many tokens (the keyring's
    keys): joserfc exports a key object's JWK the first time it signs (about 50 us, as
    long as the ES256 signature itself), so the object is built once and kept here.
    Its repr shows no key material."""

    __slots__ = ("_key",)

    def __init__(self, private_key: SigningKey) -> None:
        self._key = _signing_key(private_key)

    def __repr__(self) -> str:
        return f"Signer({self._key.key_type})"

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (``kty``, ``crv`` and the public members) of the key."""
        return dict(self._key.as_dict(private=False))

    def sign(self, header: Mapping[str, Any], payload: bytes) -> str:
        """A compact JWS of ``payload`` under ``header`` (exactly these members, in this
        order; its ``alg`` is one of the table that fits the key)."""
        return jose.serialize_compact(dict(header), payload, self._key, registry=_REGISTRY)


def public_jwk(private_key: SigningKey) -> dict[str, Any]:
    """The public JWK (``kty``, ``crv`` and the public members) of ``private_key``."""
    return Signer(private_key).public_jwk()


def sign(header: Mapping[str, Any], payload: bytes, private_key: SigningKey) -> str:
    """A compact JWS of ``payload`` under ``header`` (which names an ``alg`` of the table
    that fits the key), signed with ``private_key``; see :class:`Signer` for a key that
    signs many."""
    return Signer(private_key).sign(header, payload)
