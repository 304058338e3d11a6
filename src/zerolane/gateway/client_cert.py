"""Where a request's client certificate comes from (RFC 8705 certificate-bound tokens).

Two ways, both documented in ``docs/deployment.md``:

- **TLS served here** (uvicorn with ``ssl_cert_reqs`` optional or required and the
  zerolane CA as ``ssl_ca_certs``): the handshake verified the certificate and the
  client's key; the server puts the certificate in the ASGI TLS extension
  (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM, leaf first), which
  uvicorn 0.54 does not do by itself: :mod:`zerolane.gateway.http.protocol` adds it.
- **A TLS-terminating proxy** (nginx ``ssl_verify_client`` with ``proxy_set_header
  X-Client-Cert $ssl_client_escaped_cert``, Envoy's ``X-Forwarded-Client-Cert``)
  verified it and passes it in a header. That header is believed **only** when it is
  configured (``[tls] client_cert_header``) and the connection comes from one of
  ``[tls] trusted_proxies``; from anyone else it is ignored, so a client-sent header
  never binds anything. The header is never forwarded upstream either way.

A certificate on the connection itself wins over any header.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from zerolane.settings.listener import TlsConfig
from zerolane.tokens.rfc8705 import MtlsError, der_of, forwarded_cert, load_certificate

#: client-certificate headers of common proxies: never forwarded to an upstream
KNOWN_HEADERS = frozenset(
    {b"x-client-cert", b"x-ssl-client-cert", b"ssl-client-cert", b"x-forwarded-client-cert"}
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def tls_extension_cert(scope: Mapping[str, Any]) -> bytes | None:
    """The client certificate (DER) of the ASGI TLS extension, if the server set one."""
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    if not isinstance(tls, Mapping):
        return None
    chain = tls.get("client_cert_chain")
    if not chain or isinstance(chain, str | bytes):
        return None
    first = next(iter(chain), None)
    if not isinstance(first, str) or not first:
        return None
    try:  # verified by the handshake already: only unwrap the PEM (no parse per request)
        return ssl.PEM_cert_to_DER_cert(first)
    except ValueError:
        return der_of(load_certificate(first.encode("ascii", "replace")))


class ClientCertSource:
    """Reads the client certificate of one request, as ``[tls]`` configures it."""

    def __init__(self, tls: TlsConfig | None = None) -> None:
        tls = tls or TlsConfig()
        header = tls.client_cert_header
        self.header = header.lower().encode("latin-1") if header else None
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in tls.trusted_proxies
        )

    @property
    def strip(self) -> frozenset[bytes]:
        """Header names never forwarded upstream (the configured one and the usual ones)."""
        return KNOWN_HEADERS | ({self.header} if self.header else frozenset())

    def trusts(self, peer: object) -> bool:
        """True when ``peer`` (the ASGI ``client`` pair) is a configured trusted proxy."""
        if not self._networks or not isinstance(peer, list | tuple) or not peer:
            return False
        try:
            address = ipaddress.ip_address(str(peer[0]))
        except ValueError:
            return False  # a Unix socket or anything not an IP address: not trusted
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def from_scope(self, scope: Mapping[str, Any]) -> bytes | None:
        """The request's client certificate (DER), or None.

        Raises ``mtls.cert_malformed`` when a trusted proxy's header cannot be read or
        is repeated (fail closed: never silently drop what the proxy verified).
        """
        own = tls_extension_cert(scope)
        if own is not None:
            return own
        if self.header is None or not self.trusts(scope.get("client")):
            return None  # a header from anyone but a trusted proxy binds nothing
        return self.from_headers(scope.get("headers", ()))

    def from_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
        values = [value for name, value in headers if name.lower() == self.header]
        if not values:
            return None
        if len(values) > 1:
            raise MtlsError("mtls.cert_malformed", "the client certificate header is repeated")
        text = values[0].decode("latin-1").strip()
        if not text or text == "-":  # nginx sends an empty value when there is no cert
            return None
        return forwarded_cert(text)
