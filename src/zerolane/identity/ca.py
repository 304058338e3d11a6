"""The trust domain's X.509 CA: it signs X.509-SVIDs (SPIFFE X509-SVID spec).

``<home>/keys/`` (0700) holds the CA's key (``x509-ca.key``, PKCS#8 PEM, 0600) and its
self-signed certificate (``x509-ca.pem``, 0600). The CA is created by ``zerolane
init``; a home made before it gets one on first use (an attestation with a CSR) or
with ``zerolane keys ca``. Creation is under a file lock, so two processes opening the
same home create one CA. The key never leaves this module and is never logged.

Certificates follow the SPIFFE X509-SVID spec:

- the CA: ``basicConstraints cA=true`` (critical, path length 0), ``keyUsage``
  ``keyCertSign`` and ``cRLSign`` (critical), its URI SAN the trust domain's ID
  (``spiffe://<trust domain>``), a subject key identifier;
- a leaf (the X.509-SVID): exactly one URI SAN, the workload's SPIFFE ID (taken from
  attestation, never from the CSR), ``basicConstraints cA=false`` (critical),
  ``keyUsage digitalSignature`` plus ``keyAgreement`` (EC) or ``keyEncipherment``
  (RSA) (critical), ``extKeyUsage serverAuth, clientAuth``, short-lived (capped by
  ``[svid] x509_ttl`` and by the CA's own validity).

A CSR proves possession of its key by its signature; only its public key is used.
Accepted keys: EC P-256 or P-384, Ed25519, RSA of 2048 to 8192 bits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zerolane.errors import InvalidInput, Unavailable
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.identity.spiffe_id import parse_workload_id
from zerolane.tokens.rfc8705 import cert_thumbprint
from zerolane.types import Clock

KEY_FILE = "x509-ca.key"
CERT_FILE = "x509-ca.pem"
LOCK_FILE = ".x509-ca.lock"
CA_TTL = 365 * 86400
#: a leaf is valid from a little before it is issued (clock skew between hosts)
BACKDATE = 10
MAX_CSR_BYTES = 16 * 1024
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_CURVES = (ec.SECP256R1, ec.SECP384R1)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class CsrError(InvalidInput):
    """A certificate signing request was refused; ``reason`` is ``csr.*``."""


@dataclass(frozen=True, slots=True)
class IssuedX509Svid:
    """An X.509-SVID just issued: its chain (leaf first) and the bundle's roots."""

    spiffe_id: str
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]
    #: RFC 8705 ``x5t#S256`` of the leaf (what a certificate-bound token names)
    thumbprint: str
    serial: str
    expires_at: int

    @property
    def chain_pem(self) -> str:
        return pem(self.chain)

    @property
    def bundle_pem(self) -> str:
        return pem(self.roots)


def pem(certs: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def _time(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(at), tz=dt.UTC)


def parse_csr(text: object) -> PublicKey:
    """The public key of a PEM CSR whose signature verifies (proof of possession).

    Refuses (``csr.*``) anything but one PEM CSR of at most 16 KiB, a signature that
    does not verify, and keys other than EC P-256/P-384, Ed25519 and RSA 2048-8192.
    The CSR's subject and extensions are ignored: the SPIFFE ID comes from attestation.
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CSR_BYTES:
        raise CsrError(
            "csr.malformed", f"the CSR must be PEM text of at most {MAX_CSR_BYTES} bytes"
        )
    try:
        csr = x509.load_pem_x509_csr(text.encode("ascii"))
        valid = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as err:
        raise CsrError("csr.malformed", "the CSR cannot be read (PEM, PKCS#10)") from err
    if not valid:
        raise CsrError("csr.signature", "the CSR's signature does not verify with its key")
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise CsrError("csr.key_type", "an EC key must be on P-256 or P-384")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise CsrError("csr.key_size", f"an RSA key has {MIN_RSA_BITS}..{MAX_RSA_BITS} bits")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise CsrError("csr.key_type", "the CSR's key must be EC P-256/P-384, Ed25519 or RSA")


def _leaf_usage(key: PublicKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=isinstance(key, ec.EllipticCurvePublicKey),
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True, slots=True)
class _Loaded:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    stamp: tuple[int, int]


class X509Authority:
    """The CA of one trust domain, kept under ``<home>/keys``."""

    def __init__(self, directory: Path, trust_domain: str, clock: Clock) -> None:
        self.directory = directory
        self.trust_domain = trust_domain
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    def exists(self) -> bool:
        """True once the CA's certificate is on disk (the key is written before it)."""
        return self.cert_path.is_file()

    # creation
    def create(self) -> x509.Certificate:
        """Create the CA; refuses (``ca.exists``) when there is one."""
        with self._file_lock():
            if self.exists():
                raise InvalidInput("ca.exists", f"an X.509 CA already exists in {self.directory}")
            return self._create()

    def ensure(self) -> tuple[x509.Certificate, bool]:
        """The CA's certificate, creating the CA first if there is none (and True then)."""
        if self.exists():
            return self._load().cert, False
        with self._file_lock():
            if self.exists():  # another process created it meanwhile
                return self._load().cert, False
            return self._create(), True

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        ensure_private_dir(self.directory)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _create(self) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock.now()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zerolane"),
                x509.NameAttribute(NameOID.COMMON_NAME, "zerolane X.509-SVID CA"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_time(now - BACKDATE))
            .not_valid_after(_time(now + CA_TTL))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{self.trust_domain}")]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        # the key first: a certificate on disk always has its key beside it
        write_private(
            self.key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        write_private(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        with self._lock:
            self._loaded = None
        return cert

    # loading
    def _load(self) -> _Loaded:
        try:
            st = os.stat(self.cert_path)
        except OSError as err:
            raise Unavailable("ca.missing", "this trust domain has no X.509 CA yet") from err
        stamp = (st.st_mtime_ns, st.st_ino)
        with self._lock:
            if self._loaded is not None and self._loaded.stamp == stamp:
                return self._loaded
            try:
                cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
                key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            except (OSError, ValueError) as err:
                raise Unavailable("ca.unreadable", "the X.509 CA cannot be loaded") from err
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != (
                cert.public_key()
            ):
                raise Unavailable("ca.unreadable", "the X.509 CA's key does not match its cert")
            self._loaded = _Loaded(cert, key, stamp)
            return self._loaded

    def certificate(self) -> x509.Certificate:
        """The CA certificate (``ca.missing`` when there is none)."""
        return self._load().cert

    def roots(self) -> list[x509.Certificate]:
        """The X.509 authorities to publish and to validate X.509-SVIDs against; ``[]``
        without a CA (then every X.509-SVID is refused)."""
        if not self.exists():
            return []
        return [self._load().cert]

    # issuance
    def issue(self, public_key: PublicKey, spiffe_id: str, ttl: int) -> IssuedX509Svid:
        """Sign an X.509-SVID for ``spiffe_id`` (a workload ID) over ``public_key``."""
        parse_workload_id(spiffe_id)
        if ttl <= 0:
            raise InvalidInput("x509.ttl", "an X.509-SVID lives a positive number of seconds")
        loaded = self._load()
        now = self._clock.now()
        ca_end = loaded.cert.not_valid_after_utc.timestamp()
        expires_at = int(min(now + ttl, ca_end))
        if expires_at <= now:
            raise Unavailable("ca.expired", "the X.509 CA has expired; create a new one")
        ca_pub = loaded.key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zerolane"),
                        x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, uuid.uuid4().hex),
                    ]
                )
            )
            .issuer_name(loaded.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_time(now - BACKDATE))
            .not_valid_after(_time(expires_at))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(public_key), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_pub), False)
            .sign(loaded.key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return IssuedX509Svid(
            spiffe_id=spiffe_id,
            leaf=cert,
            chain=(cert,),
            roots=(loaded.cert,),
            thumbprint=cert_thumbprint(der),
            serial=format(cert.serial_number, "x"),
            expires_at=expires_at,
        )
