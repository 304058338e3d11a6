"""SPIFFE ID parsing and validation (SPIFFE-ID spec, section 2).

We check the spec's rules ourselves, in order, so that a refusal names the exact rule
it broke, then hand the string to the ``spiffe`` package as a second, independent
parser. Both must accept it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zerolane.errors import InvalidInput

SCHEME = "spiffe://"
MAX_BYTES = 2048
#: RFC 3986 limits the host, so a trust domain name is at most 255 bytes (spec 2.3).
MAX_TRUST_DOMAIN_BYTES = 255
# Used with ``fullmatch``: ``$`` would also match before a trailing newline.
_TD_CHARS = re.compile(r"[a-z0-9._-]+")
_SEGMENT_CHARS = re.compile(r"[a-zA-Z0-9._-]+")


class SpiffeIdError(InvalidInput):
    """A SPIFFE ID broke a rule of the spec; ``reason`` names the rule."""


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A validated SPIFFE ID: ``spiffe://<trust_domain><path>``."""

    trust_domain: str
    path: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}{self.path}"

    @property
    def is_trust_domain(self) -> bool:
        """True for the ID of the trust domain itself (no path)."""
        return self.path == ""


def _fail(rule: str, detail: str) -> SpiffeIdError:
    return SpiffeIdError(f"spiffe_id.{rule}", detail)


def _check_trust_domain(td: str) -> None:
    if not td:
        raise _fail("missing_trust_domain", "the trust domain is empty")
    if "@" in td:
        raise _fail("userinfo", "userinfo ('user@') is not allowed")
    if ":" in td:
        raise _fail("port", "a port is not allowed in the trust domain")
    if "%" in td:
        raise _fail("percent_encoded", "percent-encoding is not allowed")
    if td != td.lower() and _TD_CHARS.fullmatch(td.lower()):
        raise _fail("uppercase_trust_domain", "the trust domain must be lowercase")
    if not _TD_CHARS.fullmatch(td):
        raise _fail(
            "trust_domain_chars", "the trust domain may only hold a-z, 0-9, '.', '-' and '_'"
        )
    if len(td) > MAX_TRUST_DOMAIN_BYTES:
        raise _fail("too_long", f"a trust domain is at most {MAX_TRUST_DOMAIN_BYTES} bytes")


def _check_path(path: str) -> None:
    if not path:
        return
    if path == "/" or path.endswith("/"):
        raise _fail("trailing_slash", "the path must not end with '/'")
    for segment in path[1:].split("/"):
        if not segment:
            raise _fail("empty_segment", "the path has an empty segment ('//')")
        if segment in (".", ".."):
            raise _fail("dot_segment", "path segments '.' and '..' are not allowed")
        if "%" in segment:
            raise _fail("percent_encoded", "percent-encoding is not allowed")
        if not _SEGMENT_CHARS.fullmatch(segment):
            raise _fail("path_chars", "path segments may only hold a-z, A-Z, 0-9, '.', '-' and '_'")


def parse_trust_domain(name: str) -> str:
    """Validate a bare trust domain name (``prod.example``) and return it."""
    if name.startswith(SCHEME):
        parsed = parse_spiffe_id(name)
        if not parsed.is_trust_domain:
            raise _fail("not_trust_domain", "expected a trust domain, got a workload ID")
        return parsed.trust_domain
    if len(name.encode()) > MAX_TRUST_DOMAIN_BYTES:
        raise _fail("too_long", f"a trust domain is at most {MAX_TRUST_DOMAIN_BYTES} bytes")
    _check_trust_domain(name)
    return name


def parse_spiffe_id(value: str) -> SpiffeId:
    """Parse ``value`` as a SPIFFE ID, raising :class:`SpiffeIdError` naming the rule."""
    if not value:
        raise _fail("empty", "the SPIFFE ID is empty")
    if len(value.encode()) > MAX_BYTES:
        raise _fail("too_long", f"a SPIFFE ID is at most {MAX_BYTES} bytes")
    if not value.startswith(SCHEME):
        raise _fail("scheme", "a SPIFFE ID starts with 'spiffe://' (lowercase)")
    rest = value[len(SCHEME) :]
    if "#" in rest:
        raise _fail("fragment", "a fragment ('#') is not allowed")
    if "?" in rest:
        raise _fail("query", "a query ('?') is not allowed")
    slash = rest.find("/")
    td, path = (rest, "") if slash == -1 else (rest[:slash], rest[slash:])
    _check_trust_domain(td)
    _check_path(path)
    # Imported here: the spiffe package pulls in gRPC (~0.3 s), which only this needs.
    from spiffe import SpiffeId as _LibSpiffeId
    from spiffe.errors import PySpiffeError

    try:
        lib = _LibSpiffeId(value)
    except PySpiffeError as err:  # second parser disagrees: refuse, naming it
        raise _fail("rejected", str(err)) from err
    if str(lib) != value:
        raise _fail("not_canonical", "the SPIFFE ID is not in canonical form")
    return SpiffeId(trust_domain=td, path=path)


def parse_workload_id(value: str) -> SpiffeId:
    """Parse the SPIFFE ID of a workload: like :func:`parse_spiffe_id`, with a path."""
    parsed = parse_spiffe_id(value)
    if parsed.is_trust_domain:
        raise _fail("no_path", "a workload's SPIFFE ID needs a path after the trust domain")
    return parsed
