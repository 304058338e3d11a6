"""X509-SVID rules: every refusal has its legitimate twin accepted next to it."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.identity.x509_factory import (
    HOUR,
    LEAF_USAGE,
    NOW,
    FakeSpire,
    Svid,
    key_usage,
    new_key,
    pem,
)
from zerolane.identity.x509_svid import X509SvidError, leaf_spiffe_id, parse_chain, validate

TD = "partner.org"


@pytest.fixture(scope="module")
def spire() -> FakeSpire:
    return FakeSpire(TD)


@pytest.fixture(scope="module")
def nested() -> FakeSpire:
    return FakeSpire(TD, intermediate=True)


def _validate(svid: Svid, spire: FakeSpire, *, at: float = NOW, td: str = TD) -> str:
    return str(validate(svid.chain, [spire.root], trust_domain=td, at=at).spiffe_id)


def _reason(svid: Svid, spire: FakeSpire, *, at: float = NOW, td: str = TD) -> str:
    with pytest.raises(X509SvidError) as info:
        _validate(svid, spire, at=at, td=td)
    return info.value.reason


def test_a_spire_svid_is_accepted(spire: FakeSpire) -> None:
    verified = validate(spire.svid().chain, [spire.root], trust_domain=TD, at=NOW)
    assert str(verified.spiffe_id) == "spiffe://partner.org/agent"
    assert verified.path[-1] == spire.root


def test_an_svid_through_an_intermediate_is_accepted(nested: FakeSpire) -> None:
    svid = nested.svid("/ns/prod/sa/agent")
    assert len(svid.chain) == 2
    assert _validate(svid, nested) == "spiffe://partner.org/ns/prod/sa/agent"


def test_an_ed25519_leaf_is_accepted(spire: FakeSpire) -> None:
    assert _validate(spire.svid(key=ed25519.Ed25519PrivateKey.generate()), spire)


@pytest.mark.parametrize(
    "uris",
    [
        [],
        ["spiffe://partner.org/a", "spiffe://partner.org/b"],
    ],
)
def test_exactly_one_uri_san(spire: FakeSpire, uris: list[str]) -> None:
    assert _reason(spire.svid(uris=uris), spire) == "x509.uri_san"
    assert _validate(spire.svid(uris=uris[:1] or ["spiffe://partner.org/a"]), spire)


@pytest.mark.parametrize(
    "uri", ["spiffe://partner.org", "https://partner.org/agent", "spiffe://Partner.org/agent"]
)
def test_the_uri_san_is_a_workload_spiffe_id(spire: FakeSpire, uri: str) -> None:
    assert _reason(spire.svid(uris=[uri]), spire) == "x509.spiffe_id"


def test_the_trust_domain_must_be_the_expected_one(spire: FakeSpire) -> None:
    svid = spire.svid(uris=["spiffe://other.org/agent"])
    assert _reason(svid, spire) == "x509.trust_domain"
    assert _reason(spire.svid(), spire, td="other.org") == "x509.trust_domain"


def test_a_ca_leaf_is_refused(spire: FakeSpire) -> None:
    assert _reason(spire.svid(ca=True), spire) == "x509.leaf_is_ca"
    assert _validate(spire.svid(ca=False), spire)
    assert _validate(spire.svid(ca=None), spire)  # no basicConstraints at all


@pytest.mark.parametrize(
    "usage",
    [
        None,
        key_usage(),
        key_usage(digital_signature=True, cert_sign=True),
        key_usage(digital_signature=True, crl_sign=True),
    ],
)
def test_leaf_key_usage(spire: FakeSpire, usage: x509.KeyUsage | None) -> None:
    assert _reason(spire.svid(usage=usage), spire) == "x509.key_usage"
    assert _validate(spire.svid(usage=LEAF_USAGE), spire)


def test_extended_key_usage_must_allow_client_auth(spire: FakeSpire) -> None:
    server_only = spire.svid(ekus=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert _reason(server_only, spire) == "x509.ext_key_usage"
    assert _validate(spire.svid(ekus=[ExtendedKeyUsageOID.CLIENT_AUTH]), spire)
    assert _validate(spire.svid(ekus=None), spire)


def test_expired_and_not_yet_valid(spire: FakeSpire) -> None:
    svid = spire.svid(not_before=NOW - 2 * HOUR, not_after=NOW - 1)
    assert _reason(svid, spire) == "x509.expired"
    assert _validate(svid, spire, at=NOW - HOUR)
    early = spire.svid(not_before=NOW + 60, not_after=NOW + HOUR)
    assert _reason(early, spire) == "x509.not_yet_valid"
    assert _validate(early, spire, at=NOW + 120)


def test_an_expired_root_is_refused() -> None:
    spire = FakeSpire(TD)
    svid = spire.svid(not_after=NOW + 60 * 24 * HOUR)
    assert _reason(svid, spire, at=NOW + 31 * 24 * HOUR) == "x509.chain"
    assert _validate(svid, spire, at=NOW + 29 * 24 * HOUR)


def test_a_chain_to_another_root_is_refused(spire: FakeSpire) -> None:
    impostor = FakeSpire(TD)  # same trust domain name, different CA key
    assert _reason(impostor.svid(), spire) == "x509.chain"
    assert _validate(impostor.svid(), impostor)


def test_a_leaf_without_its_intermediate_is_refused(nested: FakeSpire) -> None:
    svid = nested.svid()
    assert _reason(Svid(svid.chain[:1], svid.key), nested) == "x509.chain"
    assert _validate(svid, nested)


def test_intermediates_must_be_signing_cas(nested: FakeSpire) -> None:
    key = new_key()
    cases = [
        nested.make_intermediate(key, ca=False),
        nested.make_intermediate(key, ca=None),
        nested.make_intermediate(key, usage=key_usage(digital_signature=True)),
    ]
    for bad in cases:
        svid = nested.svid(intermediates=[bad])
        assert _reason(svid, nested) == "x509.intermediate"


def test_a_tampered_leaf_signature_is_refused(spire: FakeSpire) -> None:
    good = spire.svid()
    der = bytearray(good.chain[0].public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # last byte of the signature
    tampered = Svid([x509.load_der_x509_certificate(bytes(der))], good.key)
    assert _reason(tampered, spire) == "x509.chain"
    assert _validate(good, spire)


def test_no_roots_is_refused(spire: FakeSpire) -> None:
    with pytest.raises(X509SvidError) as info:
        validate(spire.svid().chain, [], trust_domain=TD, at=NOW)
    assert info.value.reason == "x509.no_roots"


@pytest.mark.parametrize(
    "junk",
    [None, 42, "", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
)
def test_parse_chain_refuses_junk(junk: object) -> None:
    with pytest.raises(X509SvidError) as info:
        parse_chain(junk)
    assert info.value.reason == "x509.malformed"


def test_parse_chain_limits_length(spire: FakeSpire) -> None:
    leaf = spire.svid().chain[0]
    assert parse_chain(pem([leaf] * 8)) == [leaf] * 8
    with pytest.raises(X509SvidError):
        parse_chain(pem([leaf] * 9))


def test_leaf_spiffe_id(spire: FakeSpire) -> None:
    assert str(leaf_spiffe_id(spire.svid("/x").chain[0])) == "spiffe://partner.org/x"
