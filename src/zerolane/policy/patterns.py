"""Resource patterns: a small glob grammar whose containment is decidable.

A pattern is ``/``-separated segments, none empty. A segment is one of:

``name``      a literal (printable ASCII, no ``/``, ``*`` or spaces)
``*``         any one segment
``pre*``      any one segment starting with ``pre``
``**``        one or more segments; only as the last segment

``finance/reports/*`` matches ``finance/reports/q3`` but not ``finance/reports/q3/raw``;
``finance/**`` matches both, but not ``finance`` itself. Matching is case-sensitive.

Because of this shape, "is every resource matching P also matched by Q" (a requested
scope within a granted one) is answered exactly by :func:`is_within`, with no guessing.
"""

from __future__ import annotations

import re
from functools import lru_cache

from zerolane.errors import InvalidInput

MAX_LEN = 1024
_LITERAL = re.compile(r"[\x21-\x2e\x30-\x7e]+")  # printable ASCII but '/' (and no space)


def _check_segment(segment: str, last: bool, text: str) -> None:
    if segment == "**":
        if not last:
            raise InvalidInput("pattern.globstar", f"{text!r}: '**' may only be the last segment")
        return
    if segment == "*":
        return
    body = segment[:-1] if segment.endswith("*") else segment
    if not body or "*" in body or not _LITERAL.fullmatch(body):
        raise InvalidInput(
            "pattern.segment",
            f"{text!r}: segment {segment!r} must be a literal, '*', 'prefix*' or a final '**'",
        )


@lru_cache(maxsize=4096)
def parse_pattern(text: str) -> tuple[str, ...]:
    """Validate ``text`` as a pattern and return its segments."""
    if not text or len(text) > MAX_LEN:
        raise InvalidInput("pattern.length", f"a pattern is 1..{MAX_LEN} characters")
    segments = tuple(text.split("/"))
    if any(not s for s in segments):
        raise InvalidInput("pattern.empty_segment", f"{text!r} has an empty segment")
    for index, segment in enumerate(segments):
        _check_segment(segment, index == len(segments) - 1, text)
    return segments


def parse_value(text: str) -> tuple[str, ...]:
    """Validate a concrete resource name (a pattern without wildcards)."""
    if "*" in text:
        raise InvalidInput("resource.wildcard", f"resource {text!r} may not contain '*'")
    return parse_pattern(text)


def _segment_matches(pattern: str, segment: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return segment.startswith(pattern[:-1])
    return pattern == segment


def matches(pattern: str, value: str) -> bool:
    """True when the concrete resource ``value`` is matched by ``pattern``."""
    p, v = parse_pattern(pattern), parse_value(value)
    if p[-1] == "**":
        prefix = p[:-1]
        return len(v) > len(prefix) and all(map(_segment_matches, prefix, v))
    return len(p) == len(v) and all(map(_segment_matches, p, v))


def _segment_within(inner: str, outer: str) -> bool:
    """Every single segment ``inner`` matches is matched by ``outer`` (neither is '**')."""
    if outer == "*":
        return True
    if outer.endswith("*"):
        prefix = outer[:-1]
        return inner != "*" and inner.startswith(prefix)
    return inner == outer


def is_within(inner: str, outer: str) -> bool:
    """True when every resource matched by pattern ``inner`` is matched by ``outer``."""
    p, q = parse_pattern(inner), parse_pattern(outer)
    if q[-1] == "**":
        prefix = q[:-1]
        return len(p) > len(prefix) and all(map(_segment_within, p[: len(prefix)], prefix))
    if p[-1] == "**" or len(p) != len(q):
        return False
    return all(map(_segment_within, p, q))


def matches_any(patterns: tuple[str, ...] | list[str], value: str) -> bool:
    return any(matches(p, value) for p in patterns)
