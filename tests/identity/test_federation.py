"""Federation: importing bundles, and attesting a federated workload end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import zerolane.identity.federation as federation_module
from tests.identity.attestors.cases import FixedClock
from tests.identity.x509_factory import NOW, FakeSpire, new_key
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, Unavailable, ZerolaneError
from zerolane.identity import svid
from zerolane.identity.attestors.base import AttestationError
from zerolane.identity.bundle import parse_bundle
from zerolane.identity.federation import Federation, describe
from zerolane.identity.service import AttestRequest
from zerolane.server.deployment import Deployment, init_home
from zerolane.store.memory import MemoryStores

ADMIN = Actor("admin", "test")
AUD = "spiffe://example.org"
AGENT = "spiffe://partner.org/agent"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    opened, _ = init_home(tmp_path / "home", "example.org", FixedClock(NOW))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def spire() -> FakeSpire:
    return FakeSpire("partner.org")


def _last_event(deployment: Deployment) -> dict[str, object]:
    body: dict[str, object] = json.loads(deployment.audit.tail(1)[0].body)
    return body


def _refused(deployment: Deployment, td: str, text: str) -> str:
    with pytest.raises(ZerolaneError) as info:
        deployment.federation.add(td, text, ADMIN)
    event = _last_event(deployment)
    assert (event["kind"], event["outcome"]) == ("federation.bundle_added", "failure")
    assert event["reason"] == info.value.reason
    return info.value.reason


def test_a_bundle_is_stored_and_audited(deployment: Deployment, spire: FakeSpire) -> None:
    text = spire.bundle_json(4, jwt_key=new_key())
    record = deployment.federation.add("partner.org", text, ADMIN)
    assert (record.trust_domain, record.sequence, record.updated_at) == ("partner.org", 4, NOW)
    assert parse_bundle(record.bundle_json).x509_authorities == (spire.root,)
    assert deployment.federation.list() == [record]
    event = _last_event(deployment)
    assert (event["kind"], event["outcome"], event["subject"]) == (
        "federation.bundle_added",
        "success",
        "spiffe://partner.org",
    )
    details = event["details"]
    assert isinstance(details, dict)
    assert details["x509_authorities"] == list(describe(record).x509_authorities)
    assert details["key_ids"] == ["jwt-1"]


def test_the_trust_domain_may_be_given_as_an_id(deployment: Deployment, spire: FakeSpire) -> None:
    record = deployment.federation.add("spiffe://partner.org", spire.bundle_pem(), ADMIN)
    assert (record.trust_domain, record.sequence) == ("partner.org", 0)


@pytest.mark.parametrize("td", ["example.org", "spiffe://example.org"])
def test_our_own_trust_domain_is_refused(deployment: Deployment, spire: FakeSpire, td: str) -> None:
    assert _refused(deployment, td, spire.bundle_json()) == "federation.own_trust_domain"
    assert deployment.federation.list() == []


@pytest.mark.parametrize(
    ("td", "reason"),
    [
        ("Partner.org", "spiffe_id.uppercase_trust_domain"),
        ("partner.org:443", "spiffe_id.port"),
        ("spiffe://partner.org/agent", "spiffe_id.not_trust_domain"),
    ],
)
def test_an_invalid_trust_domain_is_refused(
    deployment: Deployment, spire: FakeSpire, td: str, reason: str
) -> None:
    assert _refused(deployment, td, spire.bundle_json()) == reason


def test_an_invalid_bundle_is_refused(deployment: Deployment, spire: FakeSpire) -> None:
    assert _refused(deployment, "partner.org", '{"keys": []}') == "bundle.no_keys"
    assert deployment.federation.list() == []
    assert deployment.federation.add("partner.org", spire.bundle_json(), ADMIN)


def test_a_lower_sequence_is_refused(deployment: Deployment, spire: FakeSpire) -> None:
    deployment.federation.add("partner.org", spire.bundle_json(5), ADMIN)
    rotated = FakeSpire("partner.org")
    assert _refused(deployment, "partner.org", rotated.bundle_json(4)) == "federation.stale_bundle"
    # a PEM bundle has sequence 0, so it cannot roll back a sequenced one either
    assert _refused(deployment, "partner.org", rotated.bundle_pem()) == "federation.stale_bundle"
    assert parse_bundle(deployment.federation.get("partner.org").bundle_json).sequence == 5
    assert deployment.federation.add("partner.org", rotated.bundle_json(5), ADMIN).sequence == 5
    assert deployment.federation.add("partner.org", rotated.bundle_json(6), ADMIN).sequence == 6
    stored = parse_bundle(deployment.federation.get("partner.org").bundle_json)
    assert stored.x509_authorities == (rotated.root,)


def test_unknown_trust_domain_lookup(deployment: Deployment) -> None:
    with pytest.raises(ZerolaneError) as info:
        deployment.federation.get("nobody.org")
    assert info.value.reason == "federation.unknown"


def test_list_is_ordered(deployment: Deployment, spire: FakeSpire) -> None:
    deployment.federation.add("zeta.org", FakeSpire("zeta.org").bundle_json(), ADMIN)
    deployment.federation.add("partner.org", spire.bundle_json(), ADMIN)
    assert [b.trust_domain for b in deployment.federation.list()] == ["partner.org", "zeta.org"]


def test_a_federated_workload_attests_with_its_svid(
    deployment: Deployment, spire: FakeSpire
) -> None:
    with pytest.raises(InvalidInput) as info:
        deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    assert info.value.reason == "spiffe_id.foreign_trust_domain"
    deployment.federation.add("partner.org", spire.bundle_json(), ADMIN)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)

    evidence = spire.svid().evidence(AUD)
    issued = deployment.identity.attest(AttestRequest(evidence={"x509_svid": evidence}))

    verified = svid.verify(
        issued.token, deployment.keyring.public_keys(), audience=AUD, clock=deployment.clock
    )
    assert verified.spiffe_id == AGENT
    attestation = [json.loads(r.body) for r in deployment.audit.tail(5) if r.kind == "attestation"][
        -1
    ]
    assert attestation["outcome"] == "success"
    assert attestation["details"]["method"] == "x509_svid"
    # the same evidence again is a replay
    with pytest.raises(AttestationError) as replay:
        deployment.identity.attest(AttestRequest(evidence={"x509_svid": evidence}))
    assert replay.value.reason == "x509.proof_replayed"


def test_an_unregistered_federated_id_gets_no_svid(
    deployment: Deployment, spire: FakeSpire
) -> None:
    deployment.federation.add("partner.org", spire.bundle_json(), ADMIN)
    evidence = spire.svid("/not-registered").evidence(AUD)
    with pytest.raises(AttestationError) as info:
        deployment.identity.attest(AttestRequest(evidence={"x509_svid": evidence}))
    assert info.value.reason == "attestation.no_workload"


def _failing_seal(*args: object) -> object:
    raise OSError("audit sink gone")


def test_no_bundle_is_stored_when_its_event_cannot_be_sealed(
    deployment: Deployment, spire: FakeSpire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundle and its event are one write (SQLite here): a bundle trusted without a
    record of its import would be an unaudited change of who we trust."""
    deployment.federation.add("partner.org", spire.bundle_json(4), ADMIN)
    rotated = FakeSpire("partner.org")
    before = len(list(deployment.audit.iter_records()))
    with monkeypatch.context() as outage:
        outage.setattr(federation_module, "seal", _failing_seal)
        with pytest.raises(Unavailable) as refused:
            deployment.federation.add("partner.org", rotated.bundle_json(5), ADMIN)
        with pytest.raises(Unavailable):
            deployment.federation.add("zeta.org", FakeSpire("zeta.org").bundle_json(), ADMIN)
    assert refused.value.reason == "audit.write"
    # neither the rotation nor the new trust domain happened (the failure events were
    # recorded: the log itself still works)
    assert [b.trust_domain for b in deployment.federation.list()] == ["partner.org"]
    assert deployment.federation.get("partner.org").sequence == 4
    failures = [json.loads(r.body) for r in deployment.audit.iter_records(before)]
    assert [(e["outcome"], e["reason"]) for e in failures] == [("failure", "audit.write")] * 2
    # the twin: once it can be sealed, the same rotation is stored with its event
    assert deployment.federation.add("partner.org", rotated.bundle_json(5), ADMIN).sequence == 5
    assert (_last_event(deployment)["outcome"], _last_event(deployment)["subject"]) == (
        "success",
        "spiffe://partner.org",
    )


def test_no_bundle_is_stored_when_the_audit_store_fails(spire: FakeSpire) -> None:
    stores = MemoryStores()
    clock = FixedClock(NOW)
    federation = Federation(stores, AuditLog(stores, clock), clock, "example.org")

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("audit disk full")

    with pytest.MonkeyPatch.context() as outage:
        outage.setattr(stores, "append_events", down)
        with pytest.raises(Unavailable):
            federation.add("partner.org", spire.bundle_json(), ADMIN)
    assert federation.list() == []
    assert stores.read_events() == []
    assert federation.add("partner.org", spire.bundle_json(), ADMIN).trust_domain == "partner.org"
    assert [json.loads(r.body)["kind"] for r in stores.read_events()] == ["federation.bundle_added"]
