"""Where a request's client certificate comes from: the TLS extension, or a trusted
proxy's header, never anyone else's. Attack rows with twins."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.identity.attestors.cases import FixedClock
from tests.identity.x509_issuer import HeldSvid, issue
from zerolane.config import TlsConfig
from zerolane.gateway.client_cert import ClientCertSource, tls_extension_cert
from zerolane.identity.ca import X509Authority
from zerolane.tokens.rfc8705 import MtlsError

HEADER = b"x-client-cert"
SOURCE = ClientCertSource(
    TlsConfig(client_cert_header="X-Client-Cert", trusted_proxies=("127.0.0.1/32",))
)


@pytest.fixture
def certs(tmp_path: Path) -> tuple[HeldSvid, HeldSvid]:
    ca = X509Authority(tmp_path / "keys", "example.org", FixedClock())
    return issue(ca, "spiffe://example.org/a"), issue(ca, "spiffe://example.org/b")


def scope(peer: str, headers: list[tuple[bytes, bytes]], tls: HeldSvid | None = None) -> Any:
    built: dict[str, Any] = {"type": "http", "client": (peer, 1234), "headers": headers}
    if tls is not None:
        pem = tls.issued.leaf.public_bytes(Encoding.PEM).decode()
        built["extensions"] = {"tls": {"client_cert_chain": [pem]}}
    return built


def escaped(held: HeldSvid) -> bytes:
    return quote(held.issued.leaf.public_bytes(Encoding.PEM).decode(), safe="").encode()


def test_header_from_untrusted_peer_is_ignored(certs: tuple[HeldSvid, HeldSvid]) -> None:
    a, _ = certs
    assert SOURCE.from_scope(scope("10.0.0.9", [(HEADER, escaped(a))])) is None
    assert SOURCE.from_scope(scope("127.0.0.1", [(HEADER, escaped(a))])) == a.der  # twin


def test_connection_certificate_wins_over_any_header(certs: tuple[HeldSvid, HeldSvid]) -> None:
    a, b = certs
    assert SOURCE.from_scope(scope("127.0.0.1", [(HEADER, escaped(b))], tls=a)) == a.der
    assert ClientCertSource().from_scope(scope("10.0.0.9", [], tls=a)) == a.der
    assert tls_extension_cert({"extensions": {"tls": {"client_cert_chain": []}}}) is None


def test_unconfigured_header_binds_nothing(certs: tuple[HeldSvid, HeldSvid]) -> None:
    a, _ = certs
    assert ClientCertSource().from_scope(scope("127.0.0.1", [(HEADER, escaped(a))])) is None


def test_repeated_or_garbled_header_from_the_proxy_is_refused(
    certs: tuple[HeldSvid, HeldSvid],
) -> None:
    a, b = certs
    for headers in ([(HEADER, escaped(a)), (HEADER, escaped(b))], [(HEADER, b"garbage")]):
        with pytest.raises(MtlsError) as refused:
            SOURCE.from_scope(scope("127.0.0.1", headers))
        assert refused.value.reason == "mtls.cert_malformed"
    for empty in (b"", b"-"):  # nginx with no client certificate
        assert SOURCE.from_scope(scope("127.0.0.1", [(HEADER, empty)])) is None


def test_certificate_headers_are_stripped() -> None:
    assert {HEADER, b"x-forwarded-client-cert", b"ssl-client-cert"} <= SOURCE.strip
    custom = ClientCertSource(TlsConfig(client_cert_header="X-Mtls", trusted_proxies=("::1",)))
    assert b"x-mtls" in custom.strip
