"""What every listener is configured with: ``[tls]`` and ``[http]``.

The deployment's ``zerolane.toml``, the HTTP and MCP gateways' files and forward-auth's
hold these tables; the servers and the gateways receive them as :class:`TlsConfig` and
:class:`HttpLimits`. docs/deployment.md describes both.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, model_validator

from zerolane.settings.validate import (
    STRICT,
    Float,
    Int,
    Str,
    Texts,
    reason,
    refuse,
    up_to,
    validate,
    within,
)

_TLS_HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
#: headers a client certificate can never be read from
_TLS_RESERVED = frozenset({"authorization", "dpop", "host", "content-length", "cookie"})
TLS_CLIENT_CERT = ("none", "optional", "required")


def _cert_header(header: str) -> str:
    if not _TLS_HEADER.fullmatch(header) or header.lower() in _TLS_RESERVED:
        raise refuse("config.tls", f"{header!r} is not a usable header name")
    return header


def _proxies(proxies: tuple[str, ...]) -> tuple[str, ...]:
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise refuse("config.tls", f"holds {proxy!r}, not an address or CIDR") from None
    return proxies


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """``[tls]``: TLS served directly, and where a request's client certificate comes
    from (RFC 8705 certificate-bound tokens; docs/deployment.md)."""

    __pydantic_config__ = STRICT

    #: serve HTTPS directly: the server's certificate (chain) and key files
    cert_file: Str | None = None
    key_file: Str | None = None
    #: CA certificates a client certificate must chain to [default: the home's X.509 CA]
    client_ca_file: Str | None = None
    #: whether the TLS server asks for a client certificate: none, optional, required
    client_cert: Annotated[Literal["none", "optional", "required"], reason("config.tls")] = (
        "optional"
    )
    #: behind a TLS-terminating proxy: the header it puts the verified certificate in...
    client_cert_header: Annotated[Str, AfterValidator(_cert_header)] | None = None
    #: ...believed only from these peers (CIDRs); from anyone else it is ignored
    trusted_proxies: Annotated[Texts, AfterValidator(_proxies)] = ()

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise refuse("config.tls", "cert_file and key_file go together")
        if (self.client_cert_header is None) != (not self.trusted_proxies):
            raise refuse(
                "config.tls",
                "client_cert_header and trusted_proxies go together: a certificate header "
                "is believed only from the proxies listed",
            )
        return self

    @property
    def serves_tls(self) -> bool:
        return self.cert_file is not None


def parse_tls(raw: object, at: Sequence[int | str] = ("tls",)) -> TlsConfig:
    """A ``[tls]`` table (of ``zerolane.toml`` or a gateway's file), checked strictly."""
    return validate(TlsConfig, raw, at=at)


def tls_under(tls: TlsConfig, base: Path) -> TlsConfig:
    """``tls`` with its files taken from ``base`` (a gateway's configuration file's
    folder) unless absolute."""

    def absolute(value: str | None) -> str | None:
        return str(base / value) if value is not None else None

    return replace(
        tls,
        cert_file=absolute(tls.cert_file),
        key_file=absolute(tls.key_file),
        client_ca_file=absolute(tls.client_ca_file),
    )


def render_tls(tls: TlsConfig) -> dict[str, Any]:
    values = asdict(tls)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}


KIB = 1 << 10
#: the largest any ``[http]`` size may be set to (1 MiB)
MAX_HTTP_LIMIT_BYTES = 1 << 20
_HeadBytes = Annotated[Int, within("config.http", 1, MAX_HTTP_LIMIT_BYTES, " bytes")]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """``[http]``: how much of a request head a listener reads, and for how long, before
    it refuses the request (nginx's ``large_client_header_buffers 4 8k`` and
    ``client_header_timeout`` are the model; docs/deployment.md). Sizes are bytes as
    sent, line endings not included for one line: each 1 byte to 1 MiB, a header line
    no longer than all headers together, at most 10000 headers, the timeout over 0 and
    at most 3600 seconds."""

    __pydantic_config__ = STRICT

    #: the request line (``GET /path?query HTTP/1.1``); longer: 414
    max_request_line_bytes: _HeadBytes = 8 * KIB
    #: one header line (``name: value``); longer: 431
    max_header_line_bytes: _HeadBytes = 8 * KIB
    #: all header lines together, each with its line ending; more: 431
    max_headers_bytes: _HeadBytes = 32 * KIB
    #: header lines in one request; more: 431
    max_header_count: Annotated[Int, within("config.http", 1, 10_000)] = 100
    #: seconds from a request head's first byte (or the connection's opening) until
    #: its last; slower: 408 and the connection closed
    header_timeout_seconds: Annotated[Float, up_to("config.http", 3600)] = 10.0

    @model_validator(mode="after")
    def _line_fits(self) -> Self:
        if self.max_header_line_bytes > self.max_headers_bytes:
            raise refuse(
                "config.http",
                "max_header_line_bytes is larger than max_headers_bytes: a header that long "
                "could never be read",
            )
        return self


def parse_http_limits(raw: object, at: Sequence[int | str] = ("http",)) -> HttpLimits:
    """An ``[http]`` table (of ``zerolane.toml`` or a gateway's file), checked strictly."""
    return validate(HttpLimits, raw, at=at)


def render_http_limits(limits: HttpLimits) -> dict[str, Any]:
    return asdict(limits)
