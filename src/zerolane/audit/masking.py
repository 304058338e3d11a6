"""Mask secrets before they reach an audit event or a log line.

Values under secret-looking keys, and any value that looks like a JWT or PEM key
wherever it appears, are replaced by ``"***"`` plus a short SHA-256 fingerprint, so an
investigation can still correlate two events about the same secret without it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

_SECRET_KEYS = re.compile(
    r"(token|secret|password|passwd|credential|authorization|private|assertion|"
    r"jwt|svid|cookie|api[_-]?key|^d$|^k$|dpop)",
    re.IGNORECASE,
)
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_PEM_SHAPE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
#: Keys whose values are identifiers safe to keep even though their name matches.
_SAFE_KEYS = frozenset({"token_id", "jti", "svid_expires_at", "svid_id", "svid_kid"})


def fingerprint(secret: str | bytes) -> str:
    raw = secret.encode() if isinstance(secret, str) else secret
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:12]


def mask_value(value: str) -> str:
    return f"***({fingerprint(value)})"


def _looks_secret(value: str) -> bool:
    return bool(_JWT_SHAPE.search(value) or _PEM_SHAPE.search(value))


def _secret_key(key: str) -> bool:
    return bool(key) and key not in _SAFE_KEYS and bool(_SECRET_KEYS.search(key))


def mask(data: object, key: str = "") -> object:
    """Return a copy of ``data`` with secrets masked (recursing into dicts and lists).

    Everything under a secret-looking key is secret, however deeply nested:
    ``{"client_secret": {"value": ...}}`` masks ``value`` too.
    """
    return _mask(data, _secret_key(key))


def _mask(data: object, secret: bool) -> object:
    if isinstance(data, Mapping):
        return {str(k): _mask(v, secret or _secret_key(str(k))) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_mask(v, secret) for v in data]
    if isinstance(data, str | bytes):
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if secret or _looks_secret(text):
            return mask_value(text)
        return text
    return data
