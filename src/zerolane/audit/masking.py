"""Mask secrets before they reach an audit event or a log line.

Values under secret-looking keys, and any value that looks like a JWT or PEM key
wherever it appears, are replaced by ``"***"`` plus a short SHA-256 fingerprint, so an
investigation can still correlate two events about the same secret without it.

Every decision is masked on the request path, so the tests are kept cheap: a key name's
verdict is memoized (the same few names recur), and a string is only searched with a
regex when it holds the literal that each secret shape starts with.
"""

from __future__ import annotations

import functools
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
#: the literal each shape above starts with: no match is possible without it
_JWT_START = "eyJ"
_PEM_START = "-----BEGIN "
#: Keys whose values are identifiers safe to keep even though their name matches.
_SAFE_KEYS = frozenset({"token_id", "jti", "svid_expires_at", "svid_id", "svid_kid"})
#: how many key names keep their verdict, and the longest name kept (bounded memory,
#: whatever keys untrusted input brings)
_KEY_VERDICTS = 4096
_KEY_VERDICT_CHARS = 128
#: exact types that hold nothing to mask
_PLAIN: frozenset[type] = frozenset({int, float, bool, type(None)})


def fingerprint(secret: str | bytes) -> str:
    raw = secret.encode() if isinstance(secret, str) else secret
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:12]


def mask_value(value: str) -> str:
    return f"***({fingerprint(value)})"


def _looks_secret(value: str) -> bool:
    return (_JWT_START in value and _JWT_SHAPE.search(value) is not None) or (
        _PEM_START in value and _PEM_SHAPE.search(value) is not None
    )


def _key_verdict(key: str) -> bool:
    return bool(key) and key not in _SAFE_KEYS and bool(_SECRET_KEYS.search(key))


_memoized_key_verdict = functools.lru_cache(maxsize=_KEY_VERDICTS)(_key_verdict)


def _secret_key(key: str) -> bool:
    if len(key) <= _KEY_VERDICT_CHARS:
        return _memoized_key_verdict(key)
    return _key_verdict(key)


def mask(data: object, key: str = "") -> object:
    """Return a copy of ``data`` with secrets masked (recursing into dicts and lists).

    Everything under a secret-looking key is secret, however deeply nested:
    ``{"client_secret": {"value": ...}}`` masks ``value`` too.
    """
    return _mask(data, _secret_key(key))


def _mask(data: object, secret: bool) -> object:
    # exact built-in types first: the common cases skip the slower Mapping (ABC) check
    if type(data) is str:
        return mask_value(data) if secret or _looks_secret(data) else data
    if type(data) in _PLAIN:
        return data
    if type(data) is list:
        return [_mask(v, secret) for v in data]
    if isinstance(data, dict | Mapping):
        return {str(k): _mask(v, secret or _secret_key(str(k))) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_mask(v, secret) for v in data]
    if isinstance(data, str | bytes):
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if secret or _looks_secret(text):
            return mask_value(text)
        return text
    return data
