"""Where an issuer's public keys come from: a JWKS file, or a JWKS URL with a cache.

A JWKS document must be ``{"keys": [...]}`` of at most :data:`MAX_KEYS` objects, each
with a string ``kty``, no two sharing a ``kid``, and no private or secret members
(``d``, ``p``, ``k``...): a document that leaks key material is refused whole.

URL sources: HTTPS, or plain HTTP to a loopback address only; no redirects; 5 s
timeout; body at most :data:`MAX_BODY` bytes. A fetched set is reused for
``cache_seconds``. A ``kid`` the set lacks triggers a refetch at most once per
:data:`REFETCH_INTERVAL` seconds (so random ``kid`` values cannot hammer the issuer);
a failed fetch is retried no more often. While fetches fail the last good set stays
in use until it is ``STALE_FACTOR * cache_seconds`` old; after that, fail closed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from zerolane.errors import InvalidInput
from zerolane.hosts import is_loopback
from zerolane.identity.attestors.base import AttestationError
from zerolane.types import Clock

MAX_KEYS = 100
MAX_BODY = 1 << 20
TIMEOUT = 5.0
REFETCH_INTERVAL = 30.0
STALE_FACTOR = 10
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

Keys = tuple[Mapping[str, Any], ...]
#: fetches a URL and returns the body; raises :class:`AttestationError` on failure
Fetch = Callable[[str], bytes]


def _unavailable(message: str) -> AttestationError:
    return AttestationError("jwt.jwks_unavailable", message)


class JwksSource(Protocol):
    def keys(self, kid: str | None) -> Keys:
        """The current keys; ``kid`` is the key the caller is looking for, if named."""


def parse_jwks(body: bytes) -> Keys:
    """Parse and check a JWKS document; raise ``jwt.jwks_unavailable`` if it is unfit."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise _unavailable("the JWKS is not JSON") from err
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or len(keys) > MAX_KEYS:
        raise _unavailable(f'a JWKS is {{"keys": [...]}} with at most {MAX_KEYS} keys')
    kids: set[str] = set()
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            raise _unavailable("every JWKS key is an object with a string 'kty'")
        if _PRIVATE_MEMBERS.intersection(key):
            raise _unavailable("the JWKS holds private or secret key material")
        kid = key.get("kid")
        if kid is not None and (not isinstance(kid, str) or kid in kids):
            raise _unavailable("JWKS 'kid' values must be distinct strings")
        if kid is not None:
            kids.add(kid)
    return tuple(keys)


class FileJwks:
    """A JWKS file, re-read whenever its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: Keys = ()

    def keys(self, kid: str | None) -> Keys:
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._keys = parse_jwks(self._path.read_bytes())
                self._stamp = stamp
        except OSError as err:
            raise _unavailable(f"cannot read the JWKS file {self._path}") from err
        return self._keys


def check_jwks_url(url: str) -> str:
    """Refuse a JWKS URL that is not HTTPS or loopback HTTP (``InvalidInput``)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as err:
        raise InvalidInput("config.jwks_url", f"{url!r} is not a URL") from err
    if parsed.scheme == "https" and parsed.host:
        return url
    if parsed.scheme == "http" and is_loopback(parsed.host):
        return url
    raise InvalidInput("config.jwks_url", f"{url!r}: use https (plain http only to loopback)")


def fetch_jwks(url: str) -> bytes:
    """GET ``url`` (no redirects, 5 s timeout, size-capped); the body on HTTP 200."""
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise _unavailable(f"JWKS fetch from {url} returned HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise _unavailable(f"the JWKS at {url} is larger than {MAX_BODY} bytes")
            return bytes(body)
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as err:
        raise _unavailable(f"cannot fetch the JWKS from {url}") from err


class UrlJwks:
    """A JWKS URL with caching, kid-miss refetch and a bounded stale fallback."""

    def __init__(
        self, url: str, cache_seconds: float, clock: Clock, fetch: Fetch = fetch_jwks
    ) -> None:
        self._url = check_jwks_url(url)
        self._cache = cache_seconds
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._keys: Keys | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._last_ok = False
        self._last_error = ""

    def keys(self, kid: str | None) -> Keys:
        with self._lock:
            now = self._clock.now()
            expired = self._keys is None or now - self._fetched_at >= self._cache
            missing = kid is not None and not any(k.get("kid") == kid for k in self._keys or ())
            if (expired or missing) and self._may_fetch(now, expired):
                self._refresh(now)
            if self._keys is None:
                raise _unavailable(f"no JWKS yet: {self._last_error}")
            if now - self._fetched_at > STALE_FACTOR * self._cache:
                raise _unavailable(f"the cached JWKS is too old: {self._last_error}")
            return self._keys

    def _may_fetch(self, now: float, expired: bool) -> bool:
        if self._attempted_at is None or (expired and self._last_ok):
            return True
        return now - self._attempted_at >= REFETCH_INTERVAL

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            keys = parse_jwks(self._fetch(self._url))
        except AttestationError as err:
            self._last_ok, self._last_error = False, err.message
            return
        self._keys, self._fetched_at, self._last_ok = keys, now, True
