"""X.509-SVID attestation: each refusal next to its legitimate twin."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.identity.attestors.cases import FixedClock
from tests.identity.x509_factory import NOW, FakeSpire, Svid, key_usage, make_proof, new_key
from zerolane.identity.attestors.base import AttestationError, Attested
from zerolane.identity.attestors.x509_federation import MAX_SKEW, X509FederationAttestor
from zerolane.identity.bundle import parse_bundle, render_bundle
from zerolane.store.memory import MemoryStores
from zerolane.store.records import FederatedBundle

AUD = "spiffe://example.org"
TD = "partner.org"


class World:
    """A control plane federated with partner.org, and partner.org's SPIRE."""

    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.stores = MemoryStores()
        self.spire = FakeSpire(TD)
        self.trust(self.spire)
        self.attestor = X509FederationAttestor(self.stores, self.clock, AUD, proofs=self.stores)

    def trust(self, spire: FakeSpire) -> None:
        text = render_bundle(parse_bundle(spire.bundle_json()))
        self.stores.put_bundle(FederatedBundle(spire.trust_domain, text, 1, NOW))

    def attest(self, evidence: object) -> Attested:
        return self.attestor.attest(evidence)

    def refused(self, evidence: object) -> str:
        with pytest.raises(AttestationError) as info:
            self.attest(evidence)
        return info.value.reason


@pytest.fixture
def world() -> World:
    return World()


def test_an_svid_with_a_fresh_proof_is_attested(world: World) -> None:
    attested = world.attest(world.spire.svid().evidence(AUD))
    assert attested.method == "x509_svid"
    assert attested.spiffe_id == "spiffe://partner.org/agent"
    assert attested.selectors == (
        "x509_svid:trust_domain:partner.org",
        "x509_svid:spiffe_id:spiffe://partner.org/agent",
    )
    assert attested.details["trust_domain"] == TD
    assert attested.details["bundle_sequence"] == 1


def test_an_svid_through_an_intermediate_is_attested(world: World) -> None:
    nested = FakeSpire("nested.org", intermediate=True)
    world.trust(nested)
    assert world.attest(nested.svid("/job").evidence(AUD)).spiffe_id == "spiffe://nested.org/job"


def test_an_ed25519_leaf_proves_with_eddsa(world: World) -> None:
    svid = world.spire.svid(key=ed25519.Ed25519PrivateKey.generate())
    assert world.attest(svid.evidence(AUD)).spiffe_id == "spiffe://partner.org/agent"


def test_a_leaf_key_that_cannot_sign_a_proof_is_refused(world: World) -> None:
    svid = world.spire.svid(key=ec.generate_private_key(ec.SECP384R1()))
    proof = jwt.encode({"aud": AUD, "iat": NOW, "jti": "1"}, svid.key, algorithm="ES384")
    assert world.refused({"chain": svid.pem, "proof": proof}) == "x509.proof_key"


# --- the X509-SVID rules, through the attestor -------------------------------------


def test_two_uri_sans_are_refused(world: World) -> None:
    two = world.spire.svid(uris=["spiffe://partner.org/a", "spiffe://partner.org/b"])
    assert world.refused(two.evidence(AUD)) == "x509.uri_san"
    one = world.spire.svid(uris=["spiffe://partner.org/a"])
    assert world.attest(one.evidence(AUD)).spiffe_id == "spiffe://partner.org/a"


def test_a_ca_leaf_is_refused(world: World) -> None:
    assert world.refused(world.spire.svid(ca=True).evidence(AUD)) == "x509.leaf_is_ca"
    assert world.attest(world.spire.svid(ca=False).evidence(AUD))


def test_a_leaf_without_digital_signature_is_refused(world: World) -> None:
    no_sign = world.spire.svid(usage=key_usage(crl_sign=False))
    assert world.refused(no_sign.evidence(AUD)) == "x509.key_usage"
    assert world.attest(world.spire.svid(usage=key_usage(digital_signature=True)).evidence(AUD))


def test_an_expired_svid_is_refused(world: World) -> None:
    svid = world.spire.svid(not_before=NOW - 7200, not_after=NOW - 1)
    assert world.refused(svid.evidence(AUD)) == "x509.expired"
    world.clock.t = NOW - 3600
    assert world.attest(svid.evidence(AUD, iat=world.clock.t))


def test_an_svid_chaining_to_another_root_is_refused(world: World) -> None:
    impostor = FakeSpire(TD)  # claims partner.org, with its own CA key
    assert world.refused(impostor.svid().evidence(AUD)) == "x509.chain"
    assert world.attest(world.spire.svid().evidence(AUD))


def test_a_federated_ca_cannot_mint_ids_of_another_trust_domain(world: World) -> None:
    other = FakeSpire("other.org")
    world.trust(other)
    # partner.org's CA signs an SVID claiming other.org: checked against other.org's bundle
    forged = world.spire.svid(uris=["spiffe://other.org/agent"])
    assert world.refused(forged.evidence(AUD)) == "x509.chain"
    assert world.attest(other.svid().evidence(AUD)).spiffe_id == "spiffe://other.org/agent"


def test_an_unfederated_trust_domain_is_refused(world: World) -> None:
    stranger = FakeSpire("stranger.org")
    assert world.refused(stranger.svid().evidence(AUD)) == "x509.unknown_trust_domain"
    world.trust(stranger)
    assert world.attest(stranger.svid().evidence(AUD))


def test_a_rotated_bundle_drops_the_old_root(world: World) -> None:
    old = world.spire.svid()
    assert world.attest(old.evidence(AUD))
    rotated = FakeSpire(TD)
    world.trust(rotated)
    assert world.refused(old.evidence(AUD)) == "x509.chain"
    assert world.attest(rotated.svid().evidence(AUD))


def test_an_unusable_stored_bundle_is_refused(world: World) -> None:
    world.stores.put_bundle(FederatedBundle(TD, "{}", 1, NOW))
    assert world.refused(world.spire.svid().evidence(AUD)) == "x509.bundle"


# --- the proof of possession --------------------------------------------------------


def test_a_proof_signed_by_another_key_is_refused(world: World) -> None:
    svid = world.spire.svid()
    stolen = {"chain": svid.pem, "proof": make_proof(new_key(), AUD)}
    assert world.refused(stolen) == "x509.proof_signature"
    assert world.attest({"chain": svid.pem, "proof": make_proof(svid.key, AUD)})


def test_a_replayed_proof_is_refused(world: World) -> None:
    evidence = world.spire.svid().evidence(AUD, jti="once")
    assert world.attest(evidence)
    assert world.refused(evidence) == "x509.proof_replayed"
    world.clock.t = NOW + 2 * MAX_SKEW + 1  # the old proof is now stale anyway
    assert world.refused(evidence) == "x509.proof_stale"


def test_a_proof_spent_by_another_process_or_before_a_restart_is_refused(world: World) -> None:
    """Another attestor over the same store (another process of the deployment, or this
    one restarted: its in-memory cache is empty) refuses a proof already spent."""
    evidence = world.spire.svid().evidence(AUD, jti="shared")
    assert world.attest(evidence)
    restarted = X509FederationAttestor(world.stores, world.clock, AUD, proofs=world.stores)
    with pytest.raises(AttestationError) as info:
        restarted.attest(evidence)
    assert info.value.reason == "x509.proof_replayed"
    assert restarted.attest(world.spire.svid().evidence(AUD, jti="fresh"))  # the twin


def test_jtis_are_per_spiffe_id(world: World) -> None:
    assert world.attest(world.spire.svid("/a").evidence(AUD, jti="same"))
    assert world.attest(world.spire.svid("/b").evidence(AUD, jti="same"))
    assert world.refused(world.spire.svid("/a").evidence(AUD, jti="same")) == (
        "x509.proof_replayed"
    )


def test_a_full_replay_cache_fails_closed(world: World) -> None:
    attestor = X509FederationAttestor(
        world.stores, world.clock, AUD, proofs=world.stores, max_proofs=2
    )
    svid = world.spire.svid()
    attestor.attest(svid.evidence(AUD))
    attestor.attest(svid.evidence(AUD))
    with pytest.raises(AttestationError) as info:
        attestor.attest(svid.evidence(AUD))
    assert info.value.reason == "x509.proof_busy"
    world.clock.t = NOW + MAX_SKEW + 1
    attestor.attest(svid.evidence(AUD, iat=world.clock.t))


@pytest.mark.parametrize("audience", ["spiffe://elsewhere.org", [AUD, "spiffe://elsewhere.org"]])
def test_a_proof_for_another_audience_is_refused(world: World, audience: Any) -> None:
    svid = world.spire.svid()
    proof = make_proof(svid.key, audience)
    assert world.refused({"chain": svid.pem, "proof": proof}) == "x509.proof_audience"
    assert world.attest({"chain": svid.pem, "proof": make_proof(svid.key, [AUD])})


@pytest.mark.parametrize(
    ("iat", "reason"),
    [(NOW - MAX_SKEW - 1, "x509.proof_stale"), (NOW + MAX_SKEW + 1, "x509.proof_future")],
)
def test_a_proof_outside_the_window_is_refused(world: World, iat: float, reason: str) -> None:
    svid = world.spire.svid()
    assert world.refused(svid.evidence(AUD, iat=iat)) == reason
    assert world.attest(svid.evidence(AUD, iat=NOW - MAX_SKEW))
    assert world.attest(svid.evidence(AUD, iat=NOW + MAX_SKEW))


def _signed(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    return jwt.api_jws.encode(payload, key, algorithm="ES256")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "x509.proof_claims"),
        (b"[1]", "x509.proof_claims"),
        (json.dumps({"aud": AUD, "jti": "x"}).encode(), "x509.proof_iat"),
        (json.dumps({"aud": AUD, "iat": True, "jti": "x"}).encode(), "x509.proof_iat"),
        (b'{"aud": "spiffe://example.org", "iat": NaN, "jti": "x"}', "x509.proof_iat"),
        (json.dumps({"aud": AUD, "iat": NOW}).encode(), "x509.proof_jti"),
        (json.dumps({"aud": AUD, "iat": NOW, "jti": ""}).encode(), "x509.proof_jti"),
        (json.dumps({"aud": AUD, "iat": NOW, "jti": "x" * 129}).encode(), "x509.proof_jti"),
        (json.dumps({"aud": AUD, "iat": NOW, "jti": 7}).encode(), "x509.proof_jti"),
        (json.dumps({"iat": NOW, "jti": "x"}).encode(), "x509.proof_audience"),
    ],
)
def test_malformed_proof_claims_are_refused(world: World, payload: bytes, reason: str) -> None:
    svid = world.spire.svid(key=new_key())
    assert isinstance(svid.key, ec.EllipticCurvePrivateKey)
    assert world.refused({"chain": svid.pem, "proof": _signed(svid.key, payload)}) == reason
    good = json.dumps({"aud": AUD, "iat": NOW, "jti": "x" * 128}).encode()
    assert world.attest({"chain": svid.pem, "proof": _signed(svid.key, good)})


def test_unaccepted_proof_algorithms_are_refused(world: World) -> None:
    svid = world.spire.svid()
    claims = {"aud": AUD, "iat": NOW, "jti": "x"}
    for proof in (
        jwt.encode(claims, "a-shared-secret-of-32-bytes-long!", algorithm="HS256"),
        jwt.encode(claims, "", algorithm="none"),
        make_proof(svid.key, AUD, headers={"kid": "leaf"}),
    ):
        assert world.refused({"chain": svid.pem, "proof": proof}) == "x509.proof_signature"


@pytest.mark.parametrize(
    "evidence",
    [
        None,
        "chain",
        ["chain", "proof"],
        {"chain": None, "proof": "a.b.c"},
        {"proof": "a.b.c"},
        {"chain": 1, "proof": "a.b.c"},
        {"chain": "x" * 100_000, "proof": "a.b.c"},
        {"chain": "", "proof": "a.b.c"},
        {"chain": "\udcff", "proof": "a.b.c"},
        {"proof": "p" * 10_000},
    ],
)
def test_malformed_evidence_is_refused(world: World, evidence: object) -> None:
    assert world.refused(evidence) in ("x509.malformed", "x509.proof_missing")


@settings(max_examples=150, deadline=None)
@given(
    chain=st.one_of(st.none(), st.integers(), st.text(max_size=300), st.binary(max_size=50)),
    proof=st.one_of(st.none(), st.integers(), st.text(max_size=300), st.binary(max_size=50)),
)
def test_no_other_exception_escapes(chain: object, proof: object) -> None:
    world = World()
    svid = world.spire.svid()
    for evidence in ({"chain": chain, "proof": proof}, {"chain": svid.pem, "proof": proof}):
        with pytest.raises(AttestationError):
            world.attest(evidence)


def test_the_leaf_must_come_first(world: World) -> None:
    nested = FakeSpire("nested.org", intermediate=True)
    world.trust(nested)
    svid = nested.svid()
    reversed_chain = Svid(list(reversed(svid.chain)), svid.key)
    assert world.refused(reversed_chain.evidence(AUD)) in ("x509.uri_san", "x509.spiffe_id")
