"""Attestation through the identity service: evidence in, a JWT-SVID out, every step audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.attestors.cases import FixedClock
from tests.identity.conftest import ADMIN, AGENT, TRUST_DOMAIN, audit_bodies
from zerolane.audit.log import AuditLog
from zerolane.config import SvidConfig
from zerolane.errors import Forbidden, InvalidInput, Unavailable, ZerolaneError
from zerolane.identity import svid
from zerolane.identity.attestors.base import AttestationError, Attested
from zerolane.identity.attestors.join_token import JoinTokenAttestor, new_join_token
from zerolane.identity.join_tokens import JoinTokens
from zerolane.identity.keyring import Keyring, public_jwk
from zerolane.identity.registry import WorkloadRegistry
from zerolane.identity.service import AttestRequest, IdentityService
from zerolane.store.memory import MemoryStores
from zerolane.store.ports import Sealer
from zerolane.store.records import AuditRecord
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.types import WorkloadStatus

DEFAULT_AUD = f"spiffe://{TRUST_DOMAIN}"


@pytest.fixture
def agent(registry: WorkloadRegistry) -> str:
    registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    return AGENT


def token_for(join_tokens: JoinTokens, spiffe_id: str = AGENT) -> str:
    return join_tokens.create(spiffe_id, ttl=600, actor=ADMIN).token


def attest(identity: IdentityService, token: str, **kwargs: Any) -> svid.IssuedSvid:
    return identity.attest(AttestRequest(evidence={"join_token": token}, **kwargs))


def refusal(identity: IdentityService, request: AttestRequest) -> ZerolaneError:
    with pytest.raises(ZerolaneError) as info:
        identity.attest(request)
    return info.value


def test_join_token_attestation_issues_an_svid_and_audits_it(
    identity: IdentityService,
    join_tokens: JoinTokens,
    keyring: Keyring,
    stores: MemoryStores,
    clock: FixedClock,
    agent: str,
) -> None:
    token = token_for(join_tokens)
    issued = attest(identity, token)
    assert issued.spiffe_id == AGENT
    verified = svid.verify(issued.token, keyring.public_keys(), audience=DEFAULT_AUD, clock=clock)
    assert verified.spiffe_id == AGENT

    attestation, issuance = audit_bodies(stores)[-2:]
    assert attestation["kind"] == "attestation"
    assert attestation["outcome"] == "success"
    assert attestation["subject"] == AGENT
    assert attestation["actor"] == {"type": "workload", "id": AGENT}
    details = attestation["details"]
    assert isinstance(details, dict)
    assert details["method"] == "join_token"

    assert issuance["kind"] == "svid.issued"
    assert issuance["outcome"] == "success"
    assert issuance["details"] == {
        "svid_id": issued.jti,
        "kid": keyring.active_kid(),
        "aud": [DEFAULT_AUD],
        "exp": issued.expires_at,
        "jkt": None,
        "method": "join_token",
    }
    # neither the join token nor the SVID reaches the audit log
    for record in stores.read_events():
        assert token not in record.body
        assert issued.token not in record.body


def test_second_use_of_a_join_token_is_refused_and_audited(
    identity: IdentityService, join_tokens: JoinTokens, stores: MemoryStores, agent: str
) -> None:
    token = token_for(join_tokens)
    attest(identity, token)
    error = refusal(identity, AttestRequest(evidence={"join_token": token}))
    assert isinstance(error, AttestationError)
    assert error.reason == "join_token.used"
    denied = audit_bodies(stores)[-1]
    assert (denied["kind"], denied["outcome"], denied["reason"]) == (
        "attestation",
        "denied",
        "join_token.used",
    )
    assert denied["details"] == {"method": "join_token"}
    assert token not in stores.read_events()[-1].body


def test_disabled_workload_is_refused(
    identity: IdentityService,
    join_tokens: JoinTokens,
    registry: WorkloadRegistry,
    stores: MemoryStores,
    agent: str,
) -> None:
    token = token_for(join_tokens)
    registry.set_status(agent, WorkloadStatus.DISABLED, actor=ADMIN)
    error = refusal(identity, AttestRequest(evidence={"join_token": token}))
    assert isinstance(error, Forbidden)
    assert error.reason == "workload.disabled"
    assert audit_bodies(stores)[-1]["reason"] == "workload.disabled"
    # once enabled again, a fresh token works
    registry.set_status(agent, WorkloadStatus.ENABLED, actor=ADMIN)
    attest(identity, token_for(join_tokens))


def test_unregistered_workload_is_refused(
    identity: IdentityService, stores: MemoryStores, clock: FixedClock, agent: str
) -> None:
    # a token (stored directly) naming a workload nobody registered
    issued = new_join_token("spiffe://example.org/ghost", 600, clock)
    stores.add_join_token(issued.record)
    error = refusal(identity, AttestRequest(evidence={"join_token": issued.token}))
    assert error.reason == "attestation.no_workload"
    assert audit_bodies(stores)[-1]["outcome"] == "denied"


def test_requested_spiffe_id_must_match_the_evidence(
    identity: IdentityService, join_tokens: JoinTokens, agent: str
) -> None:
    request = AttestRequest(
        evidence={"join_token": token_for(join_tokens)}, spiffe_id="spiffe://example.org/other"
    )
    assert refusal(identity, request).reason == "attestation.spiffe_id_mismatch"
    attest(identity, token_for(join_tokens), spiffe_id=AGENT)


def test_public_jwk_binds_the_svid(
    identity: IdentityService,
    join_tokens: JoinTokens,
    keyring: Keyring,
    clock: FixedClock,
    agent: str,
) -> None:
    jwk = public_jwk(ec.generate_private_key(ec.SECP256R1()))
    issued = attest(identity, token_for(join_tokens), public_jwk=jwk)
    assert issued.jkt == thumbprint(jwk)
    verified = svid.verify(issued.token, keyring.public_keys(), audience=DEFAULT_AUD, clock=clock)
    assert verified.jkt == thumbprint(jwk)


def test_public_jwk_with_a_private_member_is_refused(
    identity: IdentityService, join_tokens: JoinTokens, stores: MemoryStores, agent: str
) -> None:
    jwk = {**public_jwk(ec.generate_private_key(ec.SECP256R1())), "d": "c2VjcmV0"}
    request = AttestRequest(evidence={"join_token": token_for(join_tokens)}, public_jwk=jwk)
    error = refusal(identity, request)
    assert isinstance(error, InvalidInput)
    assert error.reason == "public_jwk.private_member"
    assert audit_bodies(stores)[-1]["reason"] == "public_jwk.private_member"
    public = {k: v for k, v in jwk.items() if k != "d"}
    assert attest(identity, token_for(join_tokens), public_jwk=public).jkt == thumbprint(public)


def test_default_ttl_and_audience(
    identity: IdentityService, join_tokens: JoinTokens, svid_config: SvidConfig, agent: str
) -> None:
    issued = attest(identity, token_for(join_tokens))
    assert issued.expires_at - issued.issued_at == svid_config.default_ttl
    assert issued.audience == (DEFAULT_AUD,)


def test_ttl_is_capped_at_max_ttl(
    identity: IdentityService, join_tokens: JoinTokens, svid_config: SvidConfig, agent: str
) -> None:
    long = attest(identity, token_for(join_tokens), ttl=10 * svid_config.max_ttl)
    assert long.expires_at - long.issued_at == svid_config.max_ttl
    short = attest(identity, token_for(join_tokens), ttl=42)
    assert short.expires_at - short.issued_at == 42


@pytest.mark.parametrize("ttl", [0, -5])
def test_non_positive_ttl_is_refused(
    identity: IdentityService, join_tokens: JoinTokens, agent: str, ttl: int
) -> None:
    request = AttestRequest(evidence={"join_token": token_for(join_tokens)}, ttl=ttl)
    assert refusal(identity, request).reason == "attest.ttl"


def test_requested_audiences_are_deduplicated(
    identity: IdentityService, join_tokens: JoinTokens, agent: str
) -> None:
    audience = ["https://api.example.org", "spiffe://example.org/db", "https://api.example.org"]
    issued = attest(identity, token_for(join_tokens), audience=audience)
    assert issued.audience == ("https://api.example.org", "spiffe://example.org/db")


@pytest.mark.parametrize(
    ("audience", "reason"),
    [
        ([], "attest.audience"),
        ([""], "attest.audience"),
        (["x" * 2049], "attest.audience"),
        ([f"aud{n}" for n in range(17)], "attest.audience"),
        (["spiffe://Bad/aud"], "spiffe_id.uppercase_trust_domain"),
        (["spiffe://example.org/db/"], "spiffe_id.trailing_slash"),
    ],
)
def test_bad_audiences_are_refused(
    identity: IdentityService, join_tokens: JoinTokens, agent: str, audience: list[str], reason: str
) -> None:
    request = AttestRequest(evidence={"join_token": token_for(join_tokens)}, audience=audience)
    error = refusal(identity, request)
    assert isinstance(error, InvalidInput)
    assert error.reason == reason


def test_sixteen_audiences_are_accepted(
    identity: IdentityService, join_tokens: JoinTokens, agent: str
) -> None:
    audience = [f"aud{n}" for n in range(16)]
    assert attest(identity, token_for(join_tokens), audience=audience).audience == tuple(audience)


class SelectorAttestor:
    """A second attestor, so that a request can carry two kinds of evidence."""

    method = "fake"
    evidence_field = "fake_evidence"

    def attest(self, evidence: object) -> Attested:
        if evidence != "good":
            raise AttestationError("fake.bad", "bad fake evidence")
        return Attested(method=self.method, selectors=("fake:agent",))


@pytest.fixture
def two_attestors(
    keyring: Keyring,
    stores: MemoryStores,
    audit: AuditLog,
    clock: FixedClock,
    svid_config: SvidConfig,
) -> IdentityService:
    return IdentityService(
        trust_domain=TRUST_DOMAIN,
        keyring=keyring,
        workloads=stores,
        attestors=[JoinTokenAttestor(stores, clock, audit), SelectorAttestor()],
        audit=audit,
        clock=clock,
        svid_config=svid_config,
    )


def test_two_kinds_of_evidence_at_once_are_refused(
    two_attestors: IdentityService,
    join_tokens: JoinTokens,
    registry: WorkloadRegistry,
    stores: MemoryStores,
) -> None:
    registry.register(AGENT, selectors=["fake:agent"], owner=None, actor=ADMIN)
    token = token_for(join_tokens)
    request = AttestRequest(evidence={"join_token": token, "fake_evidence": "good"})
    error = refusal(two_attestors, request)
    assert error.reason == "attest.evidence"
    denied = audit_bodies(stores)[-1]
    assert (denied["outcome"], denied["details"]) == ("denied", {"method": "unknown"})
    # neither piece of evidence was used up: each works alone
    assert two_attestors.attest(AttestRequest(evidence={"join_token": token})).spiffe_id == AGENT
    selected = two_attestors.attest(AttestRequest(evidence={"fake_evidence": "good"}))
    assert selected.spiffe_id == AGENT


@pytest.mark.parametrize("evidence", [{}, {"join_token": None}, {"unknown_field": "x"}])
def test_no_evidence_is_refused(
    identity: IdentityService, stores: MemoryStores, evidence: dict[str, object]
) -> None:
    assert refusal(identity, AttestRequest(evidence=evidence)).reason == "attest.evidence"
    assert audit_bodies(stores)[-1]["outcome"] == "denied"


def test_selector_match_picks_the_workload(
    two_attestors: IdentityService, registry: WorkloadRegistry
) -> None:
    registry.register(AGENT, selectors=["fake:agent"], owner=None, actor=ADMIN)
    registry.register(
        "spiffe://example.org/other", selectors=["fake:other"], owner=None, actor=ADMIN
    )
    issued = two_attestors.attest(AttestRequest(evidence={"fake_evidence": "good"}))
    assert issued.spiffe_id == AGENT


def test_ambiguous_selector_match_is_refused(
    two_attestors: IdentityService, registry: WorkloadRegistry
) -> None:
    registry.register(AGENT, selectors=["fake:agent"], owner=None, actor=ADMIN)
    registry.register(
        "spiffe://example.org/twin", selectors=["fake:agent"], owner=None, actor=ADMIN
    )
    request = AttestRequest(evidence={"fake_evidence": "good"})
    assert refusal(two_attestors, request).reason == "attestation.ambiguous"
    named = AttestRequest(evidence={"fake_evidence": "good"}, spiffe_id=AGENT)
    assert two_attestors.attest(named).spiffe_id == AGENT


class FailingAudit(MemoryStores):
    """Audit writes fail once ``broken`` is set."""

    broken = False

    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        if self.broken:
            raise OSError("audit disk full")
        return super().append_events(events, seal)


def test_no_svid_when_the_issuance_cannot_be_audited(
    keyring: Keyring, clock: FixedClock, svid_config: SvidConfig
) -> None:
    stores = FailingAudit()
    audit = AuditLog(stores, clock)
    registry = WorkloadRegistry(TRUST_DOMAIN, stores, stores, audit, clock)
    registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    tokens = JoinTokens(stores, registry, audit, clock)
    service = IdentityService(
        trust_domain=TRUST_DOMAIN,
        keyring=keyring,
        workloads=stores,
        attestors=[JoinTokenAttestor(stores, clock, audit)],
        audit=audit,
        clock=clock,
        svid_config=svid_config,
    )
    token = token_for(tokens)
    stores.broken = True
    with pytest.raises(Unavailable) as info:
        service.attest(AttestRequest(evidence={"join_token": token}))
    assert info.value.reason == "audit.write"
    stores.broken = False
    service.attest(AttestRequest(evidence={"join_token": token_for(tokens)}))
