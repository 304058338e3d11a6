"""Certificate-bound access tokens (RFC 8705 section 3): ``cnf.x5t#S256``.

A task token opened over a mutual-TLS connection can be bound to the client
certificate instead of a DPoP key: its ``cnf`` holds ``x5t#S256``, the base64url
SHA-256 of the certificate's DER encoding. The token is then accepted only on a
connection authenticated with that very certificate (the TLS handshake proved the
key); no DPoP proof is needed. Presented without a certificate it is refused
(``mtls.cert_missing``), with another one it is refused (``mtls.cert_mismatch``);
the comparison is in constant time.

This module also reads a client certificate as a TLS-terminating proxy forwards it
(nginx ``$ssl_client_escaped_cert``, Envoy ``X-Forwarded-Client-Cert``); whether such
a header may be believed at all is the enforcement point's decision (only from a
configured, trusted proxy), never this module's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import unquote_to_bytes

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from zerolane.errors import Unauthenticated
from zerolane.tokens.rfc7638 import b64url

#: the ``cnf`` member (RFC 8705 section 3.1)
CNF_MEMBER = "x5t#S256"
MAX_CERT_BYTES = 16 * 1024
MAX_HEADER_CHARS = 48 * 1024
#: base64url of 32 bytes, no padding
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
_XFCC_CERT = re.compile(r'(?:^|[;,])\s*Cert="([^"]*)"', re.IGNORECASE)


class MtlsError(Unauthenticated):
    """A certificate-bound token was refused; ``reason`` is ``mtls.*``. ``presented``:
    the ``x5t#S256`` of the certificate presented instead (``mtls.cert_mismatch``)."""

    presented: str | None = None


def cert_thumbprint(der: bytes) -> str:
    """``x5t#S256``: base64url(SHA-256(DER)) without padding."""
    return b64url(hashlib.sha256(der).digest())


def is_thumbprint(value: object) -> bool:
    """True for a well-formed ``x5t#S256`` value (43 base64url characters)."""
    return isinstance(value, str) and _THUMBPRINT.fullmatch(value) is not None


def check_binding(expected: str, client_cert: bytes | None) -> str:
    """Refuse unless ``client_cert`` (DER) is the certificate ``expected`` names.

    Returns the thumbprint. Raises ``mtls.cert_missing`` without a certificate and
    ``mtls.cert_mismatch`` for another one.
    """
    if not client_cert:
        raise MtlsError(
            "mtls.cert_missing",
            "this token is bound to a client certificate: present it over mutual TLS",
        )
    presented = cert_thumbprint(client_cert)
    if not hmac.compare_digest(presented.encode("ascii"), expected.encode("ascii", "replace")):
        err = MtlsError(
            "mtls.cert_mismatch", "the client certificate is not the one this token is bound to"
        )
        err.presented = presented
        raise err
    return presented


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def load_certificate(data: bytes) -> x509.Certificate:
    """One certificate from PEM or DER bytes (``mtls.cert_malformed`` otherwise)."""
    if not data or len(data) > MAX_CERT_BYTES:
        raise MtlsError("mtls.cert_malformed", "the client certificate is empty or too large")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as err:
        raise MtlsError("mtls.cert_malformed", "the client certificate cannot be read") from err


def forwarded_cert(value: str) -> bytes:
    """The DER certificate of a proxy's client-certificate header.

    Accepts nginx's ``$ssl_client_escaped_cert`` (URL-encoded PEM), a raw PEM whose
    newlines the proxy replaced by spaces or tabs (``$ssl_client_cert``, deprecated),
    base64 DER, and Envoy's ``X-Forwarded-Client-Cert`` holding exactly one ``Cert="..."``
    element (URL-encoded PEM; configure Envoy with ``SANITIZE_SET``). Anything else,
    including several certificates, is ``mtls.cert_malformed``.
    """
    if not value or len(value) > MAX_HEADER_CHARS:
        raise MtlsError("mtls.cert_malformed", "the client certificate header is empty or too long")
    text = value.strip()
    if "cert=" in text.lower():
        elements = _XFCC_CERT.findall(text)
        if len(elements) != 1:
            raise MtlsError(
                "mtls.cert_malformed", "the forwarded header must carry exactly one Cert element"
            )
        text = elements[0]
    raw = unquote_to_bytes(text) if "%" in text else text.encode("ascii", "replace")
    pems = _PEM.findall(raw)
    if len(pems) > 1:
        raise MtlsError("mtls.cert_malformed", "the client certificate header holds several")
    if pems:
        body = pems[0]
        inner = body[len(b"-----BEGIN CERTIFICATE-----") : -len(b"-----END CERTIFICATE-----")]
        compact = b"".join(inner.split())
        return der_of(load_certificate(_pem_lines(compact)))
    try:
        der = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise MtlsError("mtls.cert_malformed", "the client certificate header is not PEM") from err
    return der_of(load_certificate(der))


def _pem_lines(body: bytes) -> bytes:
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"
