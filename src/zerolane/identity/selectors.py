"""Selectors: ``type:value`` facts about a workload that attestation proves.

A registered workload lists the selectors it must show; an attested workload matches
when every one of its registered selectors was proven (a subset match, as in SPIRE).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from zerolane.errors import InvalidInput

# Used with ``fullmatch``: ``$`` would also match before a trailing newline.
_SELECTOR = re.compile(r"[A-Za-z0-9_.-]+:[\x21-\x7e]+")
MAX_LEN = 512


def parse_selector(value: str) -> str:
    if len(value) > MAX_LEN or not _SELECTOR.fullmatch(value):
        raise InvalidInput(
            "selector.format",
            f"selector {value!r} must be 'type:value' (type of [A-Za-z0-9_.-], "
            "value of printable ASCII without spaces)",
        )
    return value


def parse_selectors(values: Iterable[str]) -> tuple[str, ...]:
    """Validate, de-duplicate and sort selectors."""
    return tuple(sorted({parse_selector(v) for v in values}))


def matches(required: Iterable[str], proven: Iterable[str]) -> bool:
    """True when ``required`` is non-empty and every selector in it was ``proven``."""
    needed = set(required)
    return bool(needed) and needed.issubset(set(proven))
