"""The one rule for a request path that is decided on: :func:`check_path`.

A path is refused (``request.path``), never repaired, when a server behind an
enforcement point could read it differently from the decision: dot segments (plain or
percent-encoded), encoded slashes and backslashes, backslashes, empty segments, ``;``
parameters, NUL and control characters, double encoding (``%25``), non-canonical
encodings (an encoded unreserved character, lowercase hex), invalid or overlong UTF-8,
and non-ASCII unless allowed. The HTTP gateway applies it to the raw path it forwards
byte for byte (:mod:`zerolane.gateway.normalize`); the decider applies it to the path
of a URL it derives a resource from (``POST /v1/decide`` without a mapped resource).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote_to_bytes

from zerolane.errors import InvalidInput

MAX_PATH = 8192
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
