"""The one table of JWS algorithms zerolane signs or accepts, and the key each needs.

Every verifier reads it: :mod:`zerolane.tokens.jws` (which algorithms exist at all),
DPoP proofs (:mod:`zerolane.tokens.rfc9449`, :data:`DPOP_ALGS`), the X.509 federation
attestor's proof of possession (:func:`algorithm_for_key`) and the enforcement points
that advertise the DPoP algorithms in ``WWW-Authenticate`` (:data:`DPOP_ALGS_HEADER`).
Only asymmetric algorithms are here: ``none`` and HMAC never verify anything.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class KeyType:
    """The JWK that may verify an algorithm: ``kty``, ``crv`` (None for RSA), the
    members that make up its public key and, for a curve, the exact size in bytes of
    each coordinate (a shorter or longer encoding of the same point is refused)."""

    kty: str
    crv: str | None
    members: tuple[str, ...]
    coordinate_bytes: int | None = None


#: alg -> the key type that verifies it
ALGORITHMS: Mapping[str, KeyType] = MappingProxyType(
    {
        "ES256": KeyType("EC", "P-256", ("x", "y"), 32),
        "ES384": KeyType("EC", "P-384", ("x", "y"), 48),
        "EdDSA": KeyType("OKP", "Ed25519", ("x",), 32),
        "RS256": KeyType("RSA", None, ("n", "e")),
        "PS256": KeyType("RSA", None, ("n", "e")),
    }
)
SUPPORTED_ALGORITHMS = frozenset(ALGORITHMS)

#: what zerolane signs its own tokens (SVIDs, task tokens) with
SIGNING_ALG = "ES256"
#: the algorithms a DPoP proof (and an X.509-SVID proof of possession) may use
DPOP_ALGS: tuple[str, ...] = ("ES256", "EdDSA")
#: the value of the ``algs`` parameter of a ``DPoP`` challenge (RFC 9449 section 7.1)
DPOP_ALGS_HEADER = " ".join(DPOP_ALGS)


def algorithm_for_key(kty: str, crv: str | None, among: Collection[str] = DPOP_ALGS) -> str | None:
    """The one algorithm of ``among`` a ``kty``/``crv`` key signs with, or None.

    Only for key types that name their algorithm (EC curves, Ed25519): an RSA key
    signs with several, so it never has one here.
    """
    found = [
        alg
        for alg in among
        if (spec := ALGORITHMS.get(alg)) is not None
        and spec.crv is not None
        and (spec.kty, spec.crv) == (kty, crv)
    ]
    return found[0] if len(found) == 1 else None
