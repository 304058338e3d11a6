"""X.509-SVIDs from a real :class:`~zerolane.identity.ca.X509Authority`, for the mTLS tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from zerolane.identity.ca import IssuedX509Svid, X509Authority, parse_csr

CsrKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def csr_for(key: CsrKey, *, uris: tuple[str, ...] = (), cn: str | None = None) -> str:
    """A PEM CSR for ``key``; ``uris``/``cn``: names the CA must ignore."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class HeldSvid:
    """An X.509-SVID and the workload's key for it."""

    key: ec.EllipticCurvePrivateKey
    issued: IssuedX509Svid

    @property
    def der(self) -> bytes:
        return self.issued.leaf.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> str:
        return self.issued.chain_pem


def issue(ca: X509Authority, spiffe_id: str, ttl: int = 600) -> HeldSvid:
    key = ec.generate_private_key(ec.SECP256R1())
    ca.ensure()
    return HeldSvid(key, ca.issue(parse_csr(csr_for(key)), spiffe_id, ttl))


def server_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed TLS server certificate for 127.0.0.1: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zerolane test server")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file
