"""A fake SPIRE CA for tests: root, optional intermediate, X509-SVIDs and their proofs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zerolane.identity.bundle import public_jwk

NOW = 1_800_000_000.0
HOUR = 3600.0
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_usage(
    *, digital_signature: bool = False, cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


LEAF_USAGE = key_usage(digital_signature=True)
CA_USAGE = key_usage(cert_sign=True, crl_sign=True)
SVID_EKUS = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def _time(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, tz=dt.UTC)


def make_cert(
    *,
    subject_key: PrivateKey,
    issuer_key: PrivateKey,
    subject: str,
    issuer: str,
    ca: bool | None,
    usage: x509.KeyUsage | None,
    uris: Sequence[str] = (),
    ekus: Sequence[x509.ObjectIdentifier] | None = None,
    not_before: float = NOW - HOUR,
    not_after: float = NOW + HOUR,
) -> x509.Certificate:
    """One certificate; ``ca=None`` leaves basicConstraints out."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_time(not_before))
        .not_valid_after(_time(not_after))
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False
        )
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True
        )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if uris:
        names = [x509.UniformResourceIdentifier(u) for u in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


def pem(certs: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


@dataclass
class Svid:
    """An X509-SVID as SPIRE hands it to a workload: chain (leaf first) and key."""

    chain: list[x509.Certificate]
    key: PrivateKey

    @property
    def pem(self) -> str:
        return pem(self.chain)

    def evidence(self, audience: str, *, iat: float = NOW, **claims: Any) -> dict[str, object]:
        return {"chain": self.pem, "proof": make_proof(self.key, audience, iat=iat, **claims)}


def make_proof(
    key: PrivateKey,
    audience: str | list[str],
    *,
    iat: float = NOW,
    jti: str | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """The proof of possession: a JWS over aud, iat, jti signed with the leaf key."""
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    payload = {"aud": audience, "iat": iat, "jti": jti or uuid.uuid4().hex}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


@dataclass
class FakeSpire:
    """A SPIRE server's CA for ``trust_domain``: root (and intermediate) keys and certs."""

    trust_domain: str = "partner.org"
    intermediate: bool = False
    root_key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)
    root: x509.Certificate = field(init=False)
    signing_key: ec.EllipticCurvePrivateKey = field(init=False)
    signing_chain: list[x509.Certificate] = field(init=False)

    def __post_init__(self) -> None:
        td_id = f"spiffe://{self.trust_domain}"
        self.root = make_cert(
            subject_key=self.root_key,
            issuer_key=self.root_key,
            subject=f"{self.trust_domain} root",
            issuer=f"{self.trust_domain} root",
            ca=True,
            usage=CA_USAGE,
            uris=[td_id],
            not_before=NOW - 30 * 24 * HOUR,
            not_after=NOW + 30 * 24 * HOUR,
        )
        self.signing_key, self.signing_chain = self.root_key, []
        if self.intermediate:
            self.signing_key = new_key()
            self.signing_chain = [self.make_intermediate(self.signing_key)]

    @property
    def signer_name(self) -> str:
        return f"{self.trust_domain} {'intermediate' if self.intermediate else 'root'}"

    def make_intermediate(
        self, key: ec.EllipticCurvePrivateKey, **overrides: Any
    ) -> x509.Certificate:
        options: dict[str, Any] = {
            "ca": True,
            "usage": CA_USAGE,
            "uris": [f"spiffe://{self.trust_domain}"],
        }
        options.update(overrides)
        return make_cert(
            subject_key=key,
            issuer_key=self.root_key,
            subject=f"{self.trust_domain} intermediate",
            issuer=f"{self.trust_domain} root",
            **options,
        )

    def svid(
        self,
        path: str = "/agent",
        *,
        key: PrivateKey | None = None,
        uris: Sequence[str] | None = None,
        ca: bool | None = False,
        usage: x509.KeyUsage | None = LEAF_USAGE,
        ekus: Sequence[x509.ObjectIdentifier] | None = SVID_EKUS,
        not_before: float = NOW - HOUR,
        not_after: float = NOW + HOUR,
        intermediates: list[x509.Certificate] | None = None,
    ) -> Svid:
        """A leaf SVID (``spiffe://<td><path>`` unless ``uris`` says otherwise)."""
        key = key or new_key()
        leaf = make_cert(
            subject_key=key,
            issuer_key=self.signing_key,
            subject="workload",
            issuer=self.signer_name,
            ca=ca,
            usage=usage,
            uris=[f"spiffe://{self.trust_domain}{path}"] if uris is None else uris,
            ekus=ekus,
            not_before=not_before,
            not_after=not_after,
        )
        chain = self.signing_chain if intermediates is None else intermediates
        return Svid([leaf, *chain], key)

    def bundle_json(
        self, sequence: int | None = 1, *, jwt_key: ec.EllipticCurvePrivateKey | None = None
    ) -> str:
        """The bundle as ``spire-server bundle show -format spiffe`` prints it."""
        der = self.root.public_bytes(Encoding.DER)
        keys: list[dict[str, Any]] = [
            {**public_jwk(self.root), "use": "x509-svid", "x5c": [base64.b64encode(der).decode()]}
        ]
        if jwt_key is not None:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(jwt_key.public_key()))
            keys.append({**jwk, "use": "jwt-svid", "kid": "jwt-1"})
        document: dict[str, Any] = {"keys": keys, "spiffe_refresh_hint": 300}
        if sequence is not None:
            document["spiffe_sequence"] = sequence
        return json.dumps(document)

    def bundle_pem(self) -> str:
        """The bundle as ``spire-server bundle show -format pem`` prints it."""
        return pem([self.root])
