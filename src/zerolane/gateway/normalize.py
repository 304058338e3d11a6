"""Decide on exactly what is forwarded: strict paths, unambiguous framing, clean headers.

A path is refused (``request.path``), never repaired, when a server behind the gateway
could read it differently from the gateway: dot segments (plain or percent-encoded),
encoded slashes and backslashes, backslashes, empty segments, ``;`` parameters, NUL and
control characters, double encoding (``%25``), non-canonical encodings (an encoded
unreserved character, lowercase hex), invalid or overlong UTF-8, and non-ASCII unless
the configuration allows it. The path that passes is forwarded byte for byte.

Framing that two parsers may read differently (``Content-Length`` with
``Transfer-Encoding``, several differing lengths) is refused (``request.framing``).
Headers that could steer a server behind the gateway (method overrides, rewritten
URLs, ``Forwarded``/``X-Forwarded-*``), hop-by-hop headers and the agent's credentials
are never forwarded.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from zerolane.errors import InvalidInput

MAX_PATH = 8192
MAX_QUERY = 8192
_PCHAR = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/"
)
#: the same, to delete with ``bytes.translate``: a path of nothing else needs no more checks
_PCHAR_BYTES = bytes(sorted(_PCHAR))
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789ABCDEFabcdef")
_UPPER_HEX = frozenset(b"0123456789ABCDEF")
_ENCODED_REFUSED = {
    ord("/"): "an encoded slash (%2F)",
    ord("\\"): "an encoded backslash (%5C)",
    ord("%"): "double encoding (%25)",
    ord("."): "an encoded dot (%2E)",
    ord(";"): "an encoded path parameter (%3B)",
}
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
#: client-sent headers that could make a server behind us see another request
SPOOFABLE = frozenset(
    {
        b"x-http-method-override",
        b"x-http-method",
        b"x-method-override",
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


def _refuse(message: str) -> InvalidInput:
    return InvalidInput("request.path", message)


def _check_encoding(path: bytes, index: int, allow_non_ascii: bool) -> int:
    """Check the ``%XX`` at ``index``; return its byte value."""
    digits = path[index + 1 : index + 3]
    if len(digits) != 2 or not all(d in _HEX for d in digits):
        raise _refuse("a '%' not followed by two hex digits")
    value = int(digits, 16)
    if value in _ENCODED_REFUSED:
        raise _refuse(f"the path holds {_ENCODED_REFUSED[value]}")
    if value < 0x20 or value == 0x7F:
        raise _refuse("the path holds an encoded NUL or control character")
    if value in _UNRESERVED or not all(d in _UPPER_HEX for d in digits):
        raise _refuse(
            "non-canonical percent-encoding (encoded unreserved character or lowercase hex)"
        )
    if value >= 0x80 and not allow_non_ascii:
        raise _refuse("non-ASCII characters are not allowed in paths here")
    return value


def _check_unicode(segment: str) -> None:
    try:
        text = unquote_to_bytes(segment).decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        raise _refuse("the path holds invalid or overlong UTF-8") from err
    if any(0x80 <= ord(c) <= 0x9F or unicodedata.category(c) in ("Cc", "Cf") for c in text):
        raise _refuse("the path holds a control or formatting character")
    if unicodedata.normalize("NFKC", text) != text:
        raise _refuse("the path is not in Unicode normal form NFKC")


def _character(byte: int) -> str:
    if byte == ord("\\"):
        return "a backslash"
    if byte == ord(";"):
        return "a ';' path parameter"
    if byte < 0x20 or byte == 0x7F:
        return "a NUL or control character"
    if byte >= 0x80:
        return "a raw non-ASCII byte (percent-encode it)"
    return f"the character {chr(byte)!r}"


def check_path(raw_path: bytes, *, allow_non_ascii: bool = False) -> str:
    """The path (origin form, no query) if it is safe to decide on and forward as is."""
    if not raw_path.startswith(b"/"):
        raise _refuse("the request target must be a path starting with '/'")
    if len(raw_path) > MAX_PATH:
        raise _refuse(f"the path is longer than {MAX_PATH} bytes")
    non_ascii = False
    # byte by byte only when some byte is not a plain path character (a '%' included)
    index = 0 if raw_path.translate(None, _PCHAR_BYTES) else len(raw_path)
    while index < len(raw_path):
        byte = raw_path[index]
        if byte == ord("%"):
            non_ascii |= _check_encoding(raw_path, index, allow_non_ascii) >= 0x80
            index += 3
            continue
        if byte not in _PCHAR:
            raise _refuse(f"the path holds {_character(byte)}")
        index += 1
    path = raw_path.decode("ascii")
    if "//" in path:
        raise _refuse("the path holds an empty segment ('//')")
    segments = path.split("/")[1:]
    if "." in segments or ".." in segments:
        raise _refuse("the path holds a '.' or '..' segment")
    if non_ascii:
        for segment in segments:
            if "%" in segment:
                _check_unicode(segment)
    return path


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
