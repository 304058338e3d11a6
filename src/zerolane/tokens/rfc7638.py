"""JWK thumbprints (RFC 7638): the key id and the ``cnf.jkt`` binding.

The members that count are chosen and checked here (RFC 7638 section 3.2, RFC 8037 for
OKP); joserfc's ``jwk.thumbprint`` hashes them in their canonical JSON form.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from joserfc import jwk

from zerolane.errors import InvalidInput

# The required members per key type (RFC 7638 section 3.2, RFC 8037 for OKP).
_REQUIRED = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(key: Mapping[str, object]) -> str:
    """Return the base64url SHA-256 thumbprint of ``key``'s required members."""
    kty = key.get("kty")
    if not isinstance(kty, str) or kty not in _REQUIRED:
        raise InvalidInput("jwk.kty", "the JWK has no supported 'kty'")
    members: dict[str, object] = {}
    for name in _REQUIRED[kty]:
        value = key.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidInput("jwk.member", f"the JWK lacks its '{name}' member")
        members[name] = value
    return jwk.thumbprint(members)
