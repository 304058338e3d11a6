"""Checks on a verified JWT's claims, and the selectors its claims prove.

Time rules: ``exp`` is required and must be strictly in the future (no leeway: an
expired token is never accepted). ``nbf`` and ``iat``, when present, may be up to
:data:`LEEWAY` seconds in the future, to absorb clock skew between issuer and us.

Claim paths: ``a.b.c`` walks nested objects. Because claim names may themselves hold
dots (Kubernetes puts everything under one key, ``"kubernetes.io"``), each step takes
the *longest* run of path parts that is a key of the current object, then continues
from there; there is no backtracking. So ``kubernetes.io.namespace`` reads
``claims["kubernetes.io"]["namespace"]``, and a top-level ``"a.b"`` key wins over
``claims["a"]["b"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from zerolane.errors import InvalidInput
from zerolane.identity.attestors.base import AttestationError
from zerolane.identity.selectors import parse_selector

LEEWAY = 30.0
_MISSING = object()


def lookup(claims: Mapping[str, object], path: str) -> object:
    """The value at dotted ``path`` (longest key first at each level), or ``None``."""
    parts = path.split(".")
    node: object = claims
    i = 0
    while i < len(parts):
        if not isinstance(node, Mapping):
            return None
        for j in range(len(parts), i, -1):
            value = node.get(".".join(parts[i:j]), _MISSING)
            if value is not _MISSING:
                node, i = value, j
                break
        else:
            return None
    return node


def _number(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AttestationError("jwt.claims", f"the '{name}' claim must be a number")
    return float(value)


def check_times(claims: Mapping[str, object], now: float) -> None:
    """``exp`` required and in the future; ``nbf``/``iat`` not beyond the leeway ahead."""
    exp = _number(claims, "exp")
    if exp is None:
        raise AttestationError("jwt.claims", "the token has no 'exp' claim")
    if exp <= now:
        raise AttestationError("jwt.expired", "the token has expired")
    for name in ("nbf", "iat"):
        moment = _number(claims, name)
        if moment is not None and moment > now + LEEWAY:
            raise AttestationError("jwt.not_yet_valid", f"the token's '{name}' is in the future")


def check_audience(claims: Mapping[str, object], audience: str) -> None:
    """``aud`` (a string or a list of strings) must contain ``audience``."""
    aud = claims.get("aud")
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or audience not in values:
        raise AttestationError("jwt.audience", "the token is not meant for this audience")


def claim_selectors(claims: Mapping[str, object], mapping: Mapping[str, str]) -> list[str]:
    """``<type>:<value>`` for each mapped claim holding a string or number.

    Missing claims, other value types, and values that do not make a valid selector
    (spaces, non-ASCII, too long) yield nothing; a workload that requires such a
    selector then simply does not match.
    """
    selectors = []
    for path, kind in mapping.items():
        value = lookup(claims, path)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        try:
            selectors.append(parse_selector(f"{kind}:{value}"))
        except InvalidInput:
            continue
    return selectors
