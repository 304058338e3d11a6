"""Typed JWS refusals: each class is one check and carries its reason id.

Callers decide by type (``except JwsBadSignature``), never by reading a reason string;
the reason (``jws.*``) is still what the API returns and the audit log records. All
are :class:`~zerolane.errors.Unauthenticated`: a token that fails a check proves no one.
"""

from __future__ import annotations

from typing import ClassVar

from zerolane.errors import Unauthenticated


class JwsError(Unauthenticated):
    """A JWS failed verification; ``reason`` says which check."""


class _Check(JwsError):
    REASON: ClassVar[str]

    def __init__(self, message: str) -> None:
        super().__init__(self.REASON, message)


class UnknownSigningKey(Unauthenticated):
    """Marker: a token names (or needs) a verification key the verifier was not given.

    A verifier holding keys that may have rotated looks for fresh keys and tries once
    more on this, and on nothing else."""


class JwsMalformed(_Check):
    """Not a compact JWS, or a header member of the wrong type."""

    REASON = "jws.malformed"


class JwsAlgorithmRefused(_Check):
    """The ``alg`` is absent, symmetric, ``none`` or not among those the caller accepts."""

    REASON = "jws.algorithm"


class JwsCriticalHeader(_Check):
    """The header lists ``crit`` extensions: zerolane understands none."""

    REASON = "jws.crit"


class JwsUnencodedPayload(_Check):
    """``b64`` is not true: unencoded payloads (RFC 7797) are not accepted."""

    REASON = "jws.b64"


class JwsUnknownKey(_Check, UnknownSigningKey):
    """No key given fits the token (its ``kid``, key type, ``use``, ``key_ops``, ``alg``)."""

    REASON = "jws.unknown_key"


class JwsBadKey(_Check):
    """The verification key is malformed (not a point on its curve, bad members)."""

    REASON = "jws.bad_key"


class JwsWeakKey(JwsBadKey):
    """An RSA key under the minimum size or with the ROCA fingerprint."""

    REASON = "jws.weak_key"


class JwsBadSignature(_Check):
    """The signature does not verify with any usable key."""

    REASON = "jws.signature"
