"""The HTTP/1.1 protocol the gateway is served with: uvicorn's httptools parser, with
the request target handed on exactly as the client sent it.

uvicorn's httptools protocol parses the request target and keeps only its path: an
absolute-form target (``GET http://other-host/x``) or one with a ``#fragment`` would
reach the gateway looking like a plain path, and be decided as one. The gateway
decides on exactly the target it is given, so this protocol puts the raw target back
(split at the first ``?`` as uvicorn's h11 protocol does); the gateway's path checks
then refuse any target that is not a plain origin-form path.

Served over TLS, both protocols here also fill the ASGI TLS extension
(``scope["extensions"]["tls"]``, spec version 0.2) with the client certificate the
handshake verified, which uvicorn does not do itself: ``client_cert_chain`` holds the
leaf as PEM (Python's ``ssl`` exposes only the leaf before 3.13); the other keys are
None. A server that fills the extension itself is left alone.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection; None when it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


class TlsScopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the ASGI TLS extension to every request."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)  # one handshake per connection

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            extensions = scope.setdefault("extensions", {})
            extensions.setdefault("tls", dict(self._tls))


class RawTargetHttpToolsProtocol(TlsScopeHttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # the ASGI cycle holds this very dict and only starts on the loop's next turn
        raw_path, _, query = self.url.partition(b"?")
        self.scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        self.scope["query_string"] = query
