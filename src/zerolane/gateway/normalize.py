"""Decide on exactly what is forwarded: strict paths, unambiguous framing, clean headers.

A path is refused (``request.path``), never repaired, when a server behind the gateway
could read it differently from the gateway: :func:`zerolane.paths.check_path`, the one
path rule, which the decider also applies to a URL it derives a resource from. The path
that passes is forwarded byte for byte.

Framing that two parsers may read differently (``Content-Length`` with
``Transfer-Encoding``, several differing lengths) is refused (``request.framing``).
Headers that could steer a server behind the gateway (method overrides, rewritten
URLs, ``Forwarded``/``X-Forwarded-*``), hop-by-hop headers and the agent's credentials
are never forwarded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from zerolane.errors import InvalidInput
from zerolane.paths import MAX_PATH as MAX_PATH  # re-exported: one rule, in the core
from zerolane.paths import check_path as check_path

MAX_QUERY = 8192
_QUERY = re.compile(rb"[\x21-\x7e]*")

#: never forwarded, in either direction (RFC 9110 section 7.6.1)
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: client-sent headers that ask a server behind us to take the request as another method
METHOD_OVERRIDES = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
#: client-sent headers that could make a server behind us see another request
SPOOFABLE = METHOD_OVERRIDES | frozenset(
    {
        b"x-original-url",
        b"x-original-uri",
        b"x-original-method",
        b"x-rewrite-url",
        b"forwarded",
        b"x-real-ip",
        b"x-client-ip",
    }
)
SPOOFABLE_PREFIXES = (b"x-forwarded-", b"x-zerolane-")
#: the agent's credentials and what the gateway sets itself
OWN = frozenset({b"host", b"authorization", b"dpop", b"expect", b"content-length"})
_NEVER_FORWARDED = HOP_BY_HOP | SPOOFABLE | OWN


def check_query(query: bytes) -> str:
    """The query string, forwarded as is: visible ASCII only (it is never decided on)."""
    if not query:  # the common case
        return ""
    if len(query) > MAX_QUERY or not _QUERY.fullmatch(query) or b"#" in query:
        raise InvalidInput("request.query", "the query holds characters that are not allowed")
    return query.decode("ascii")


def check_framing(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The declared body length (``None`` when chunked or absent); refuse ambiguity."""
    lengths: set[bytes] = set()
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif name == b"transfer-encoding":
            chunked = True
    if chunked and lengths:
        raise InvalidInput("request.framing", "Content-Length and Transfer-Encoding together")
    if len(lengths) > 1:
        raise InvalidInput("request.framing", "several differing Content-Length values")
    if not lengths:
        return None
    (length,) = lengths
    if not length.isdigit() or len(length) > 18:
        raise InvalidInput("request.framing", "Content-Length is not a number")
    return int(length)


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    return {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }


@functools.lru_cache(maxsize=64)
def _not_forwarded(drop: frozenset[bytes]) -> frozenset[bytes]:
    """The names never forwarded plus ``drop`` (an upstream's few extra), united once."""
    return _NEVER_FORWARDED | drop


def request_headers(
    headers: list[tuple[bytes, bytes]], *, drop: frozenset[bytes] = frozenset()
) -> list[tuple[str, str]]:
    """The client's headers that may be forwarded (``drop``: more lowercase names)."""
    dropped = _not_forwarded(drop)
    listed = _connection_tokens(headers)
    if listed:
        dropped = dropped | listed
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name not in dropped and not name.startswith(SPOOFABLE_PREFIXES)
    ]


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers without hop-by-hop ones."""
    pairs = [(name.lower(), value) for name, value in headers]
    listed = _connection_tokens(pairs)
    return [(n, v) for n, v in pairs if n not in HOP_BY_HOP and n not in listed]
