"""The trust domain's X.509 CA: files, certificates per the SPIFFE X509-SVID spec, CSRs,
issuance by attestation, and validation of what it issued (attack rows with twins)."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.identity.attestors.cases import FixedClock
from tests.identity.x509_issuer import CsrKey, csr_for, issue
from zerolane.audit.events import Actor
from zerolane.config import load_config, render_config
from zerolane.errors import InvalidInput, Unavailable
from zerolane.identity.ca import CsrError, X509Authority, parse_csr
from zerolane.identity.service import AttestRequest
from zerolane.identity.x509_svid import X509SvidError, validate
from zerolane.server.deployment import Deployment, init_home

TD = "example.org"
AGENT = f"spiffe://{TD}/agents/a1"
NOW = 1_800_000_000.0
ADMIN = Actor("admin", "test")
BEGIN, END = "-----BEGIN CERTIFICATE REQUEST-----", "-----END CERTIFICATE REQUEST-----"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def ca(tmp_path: Path, clock: FixedClock) -> X509Authority:
    authority = X509Authority(tmp_path / "keys", TD, clock)
    authority.create()
    return authority


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    return cert.extensions.get_extension_for_class(kind)


def test_files_are_private(ca: X509Authority) -> None:
    for path in (ca.key_path, ca.cert_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ca.directory).st_mode) == 0o700
    assert b"PRIVATE KEY" not in ca.cert_path.read_bytes()


def test_ca_certificate_is_a_spiffe_signing_certificate(ca: X509Authority) -> None:
    cert = ca.certificate()
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://{TD}"]


def test_create_refuses_a_second_ca_and_ensure_keeps_the_first(ca: X509Authority) -> None:
    first = ca.certificate()
    with pytest.raises(InvalidInput) as refused:
        ca.create()
    assert refused.value.reason == "ca.exists"
    assert ca.ensure() == (first, False)


def test_concurrent_ensure_creates_one_ca(tmp_path: Path, clock: FixedClock) -> None:
    made: list[tuple[x509.Certificate, bool]] = []
    barrier = threading.Barrier(6)

    def open_and_ensure() -> None:
        authority = X509Authority(tmp_path / "keys", TD, clock)  # one per "process"
        barrier.wait()
        made.append(authority.ensure())

    threads = [threading.Thread(target=open_and_ensure) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(created for _, created in made) == 1
    assert len({cert.serial_number for cert, _ in made}) == 1


def test_no_ca_means_no_roots_and_no_issuance(tmp_path: Path, clock: FixedClock) -> None:
    authority = X509Authority(tmp_path / "keys", TD, clock)
    assert authority.roots() == []
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unavailable) as refused:
        authority.issue(parse_csr(csr_for(key)), AGENT, 60)
    assert refused.value.reason == "ca.missing"


@pytest.mark.parametrize("kind", ["p256", "p384", "rsa2048", "ed25519"])
def test_leaf_follows_the_x509_svid_spec(ca: X509Authority, kind: str) -> None:
    makers: dict[str, Callable[[], CsrKey]] = {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }
    key = makers[kind]()
    issued = ca.issue(parse_csr(csr_for(key)), AGENT, 600)
    leaf = issued.leaf
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [AGENT]
    assert len(list(san)) == 1
    constraints = _ext(leaf, x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = _ext(leaf, x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_cert_sign
    assert not usage.crl_sign
    assert usage.key_agreement == isinstance(key, ec.EllipticCurvePrivateKey)
    assert usage.key_encipherment == isinstance(key, rsa.RSAPrivateKey)
    ekus = set(_ext(leaf, x509.ExtendedKeyUsage).value)
    assert ekus == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.public_key() == key.public_key()
    assert issued.expires_at == int(NOW) + 600
    verified = validate(list(issued.chain), ca.roots(), trust_domain=TD, at=NOW)
    assert str(verified.spiffe_id) == AGENT


def test_leaf_never_outlives_the_ca(ca: X509Authority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = ca.issue(parse_csr(csr_for(key)), AGENT, 10 * 365 * 86400)
    assert issued.leaf.not_valid_after_utc == ca.certificate().not_valid_after_utc


# CSR checks
def _bad_signature_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    der = bytearray(
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    der[-3] ^= 0x01  # inside the signature
    csr = x509.load_der_x509_csr(bytes(der))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: "", "csr.malformed"),
        (
            lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
            "csr.malformed",
        ),
        (lambda: "x" * 20_000, "csr.malformed"),
        (_bad_signature_csr, "csr.signature"),
        (lambda: csr_for(rsa.generate_private_key(65537, 1024)), "csr.key_size"),  # noqa: S505
        (lambda: csr_for(ec.generate_private_key(ec.SECP521R1())), "csr.key_type"),
        (lambda: csr_for(ec.generate_private_key(ec.SECP256K1())), "csr.key_type"),
    ],
    ids=["empty", "garbage", "too large", "bad signature", "rsa 1024", "p-521", "secp256k1"],
)
def test_bad_csrs_are_refused(make: Callable[[], str], reason: str) -> None:
    with pytest.raises(CsrError) as refused:
        parse_csr(make())
    assert refused.value.reason == reason


# validation of presented X.509-SVIDs (identity/x509_svid.py, shared with federation)
def test_expired_svid_is_refused_and_live_twin_accepted(ca: X509Authority) -> None:
    held = issue(ca, AGENT, ttl=60)
    assert validate([held.issued.leaf], ca.roots(), trust_domain=TD, at=NOW + 59)
    with pytest.raises(X509SvidError) as refused:
        validate([held.issued.leaf], ca.roots(), trust_domain=TD, at=NOW + 61)
    assert refused.value.reason == "x509.expired"


def test_svid_of_another_trust_domains_ca_is_refused(
    ca: X509Authority, tmp_path: Path, clock: FixedClock
) -> None:
    other = X509Authority(tmp_path / "other", "other.example", clock)
    stranger = issue(other, "spiffe://other.example/agents/a1")
    with pytest.raises(X509SvidError) as refused:
        validate([stranger.issued.leaf], ca.roots(), trust_domain=TD, at=NOW)
    assert refused.value.reason == "x509.trust_domain"
    # the same trust domain name, but another CA: the chain does not verify
    impostor_ca = X509Authority(tmp_path / "impostor", TD, clock)
    impostor = issue(impostor_ca, AGENT)
    with pytest.raises(X509SvidError) as refused:
        validate([impostor.issued.leaf], ca.roots(), trust_domain=TD, at=NOW)
    assert refused.value.reason == "x509.chain"
    ours = issue(ca, AGENT)  # the twin
    assert validate([ours.issued.leaf], ca.roots(), trust_domain=TD, at=NOW)


# issuance by attestation
@pytest.fixture
def home(tmp_path: Path, clock: FixedClock) -> Deployment:
    deployment, _ = init_home(tmp_path / "home", TD, clock)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    return deployment


def _attest(deployment: Deployment, csr: str | None, **kwargs: Any) -> Any:
    join = deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
    return deployment.identity.attest_all(
        AttestRequest(evidence={"join_token": join}, csr=csr, **kwargs)
    )


def test_init_creates_the_ca(home: Deployment) -> None:
    assert home.x509_ca.exists()
    assert home.x509_ca.cert_path.parent == home.home / "keys"
    home.close()


def test_csr_naming_another_spiffe_id_gets_the_attested_one(home: Deployment) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_for(key, uris=(f"spiffe://{TD}/admin",), cn="admin")
    attested = _attest(home, csr)
    leaf = attested.x509.leaf
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [AGENT]
    assert "admin" not in leaf.subject.rfc4514_string()
    events = [json_body(r) for r in home.stores.read_events(0, 1000)]
    issued = [e for e in events if e["kind"] == "x509_svid.issued"]
    assert issued
    assert issued[-1]["subject"] == AGENT
    assert "PRIVATE" not in str(events)
    home.close()


def test_bad_csr_is_refused_before_the_join_token_is_spent(home: Deployment) -> None:
    join = home.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
    with pytest.raises(CsrError):
        home.identity.attest_all(AttestRequest(evidence={"join_token": join}, csr="garbage"))
    key = ec.generate_private_key(ec.SECP256R1())  # the twin: the same join token works
    good = home.identity.attest_all(AttestRequest(evidence={"join_token": join}, csr=csr_for(key)))
    assert good.x509 is not None
    home.close()


def test_x509_ttl_is_capped_by_config(home: Deployment) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    long = _attest(home, csr_for(key), ttl=3600)
    assert long.x509.expires_at == int(NOW) + home.config.svid.x509_ttl
    short = _attest(home, csr_for(key), ttl=120)
    assert short.x509.expires_at == int(NOW) + 120
    home.close()


def test_an_older_home_without_a_ca_opens_and_gets_one_on_first_csr(
    tmp_path: Path, clock: FixedClock
) -> None:
    deployment, _ = init_home(tmp_path / "old", TD, clock)
    deployment.close()
    for name in ("x509-ca.key", "x509-ca.pem"):  # as a home made before the CA existed
        (tmp_path / "old" / "keys" / name).unlink()
    config = load_config(tmp_path / "old")
    assert "x509" not in render_config(config)  # the config needs nothing new
    deployment = Deployment.open(tmp_path / "old", clock)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    assert not deployment.x509_ca.exists()
    plain = _attest(deployment, None)  # JWT-SVIDs as before, no CA made
    assert plain.x509 is None
    assert not deployment.x509_ca.exists()
    key = ec.generate_private_key(ec.SECP256R1())
    attested = _attest(deployment, csr_for(key))
    assert attested.x509 is not None
    assert deployment.x509_ca.exists()
    kinds = [json_body(r)["kind"] for r in deployment.stores.read_events(0, 1000)]
    assert "x509_ca.created" in kinds
    deployment.close()


def json_body(record: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(record.body)
    return body
