"""Join-token consumption and its ``join_token.used`` event are one write.

A consumed token without its event would be a silent use; a token whose use cannot be
recorded must therefore stay unused (and the attestation fail closed). A refused use
writes nothing and is audited as the failed attestation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.identity.attestors.cases import FixedClock
from tests.identity.conftest import ADMIN, AGENT, TRUST_DOMAIN
from zerolane.audit.events import Actor, Event
from zerolane.audit.log import AuditLog
from zerolane.audit.masking import fingerprint
from zerolane.config import SvidConfig
from zerolane.errors import Unavailable
from zerolane.identity.attestors.base import AttestationError
from zerolane.identity.attestors.join_token import USED, JoinTokenAttestor, token_hash
from zerolane.identity.join_tokens import JoinTokens
from zerolane.identity.keyring import Keyring
from zerolane.identity.registry import WorkloadRegistry
from zerolane.identity.service import AttestRequest, IdentityService
from zerolane.store.memory import MemoryStores
from zerolane.store.ports import Sealer, Stores
from zerolane.store.records import AuditRecord, ConsumeStatus
from zerolane.store.sqlite import SqliteStores
from zerolane.types import Outcome


class FailingAppend(MemoryStores):
    """Audit appends fail while ``broken`` is set."""

    broken = False

    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        if self.broken:
            raise OSError("audit disk full")
        return super().append_events(events, seal)


class FailingUsedEvent(AuditLog):
    """Cannot build the ``join_token.used`` event while ``broken`` is set."""

    broken = False

    def event(
        self,
        kind: str,
        actor: Actor,
        subject: str,
        outcome: Outcome,
        reason: str = "ok",
        details: Mapping[str, object] | None = None,
    ) -> Event:
        if self.broken and kind == USED:
            raise RuntimeError("event builder failed")
        return super().event(kind, actor, subject, outcome, reason, details)


@pytest.fixture(params=["memory", "sqlite"])
def any_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    stores: Stores = (
        MemoryStores() if request.param == "memory" else SqliteStores(tmp_path / "z.db")
    )
    yield stores
    stores.close()


def bodies(stores: Stores) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in stores.read_events()]


def issue(stores: Stores, audit: AuditLog, clock: FixedClock, ttl: int = 600) -> str:
    registry = WorkloadRegistry(TRUST_DOMAIN, stores, stores, audit, clock)
    if stores.get_workload(AGENT) is None:
        registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    return JoinTokens(stores, registry, audit, clock).create(AGENT, ttl=ttl, actor=ADMIN).token


def test_a_token_is_consumed_with_its_join_token_used_event(
    any_stores: Stores, clock: FixedClock
) -> None:
    audit = AuditLog(any_stores, clock)
    token = issue(any_stores, audit, clock)
    attested = JoinTokenAttestor(any_stores, clock, audit).attest(token)
    assert attested.spiffe_id == AGENT
    used = bodies(any_stores)[-1]
    assert (used["kind"], used["outcome"], used["subject"]) == (USED, "success", AGENT)
    assert used["actor"] == {"type": "workload", "id": AGENT}
    assert used["details"] == {"token_id": fingerprint(token), "expires_at": clock.t + 600}
    # it correlates with the creation's event, and the token itself is never recorded
    created = [b for b in bodies(any_stores) if b["kind"] == "join_token.created"]
    assert created[-1]["details"]["token_id"] == used["details"]["token_id"]  # type: ignore[index]
    assert all(token not in r.body for r in any_stores.read_events())
    # consumed: a second consumption finds it used
    again = any_stores.consume_join_token(token_hash(token), clock.t)
    assert again.status is ConsumeStatus.ALREADY_USED


def test_a_token_whose_use_cannot_be_recorded_stays_unused(
    any_stores: Stores, clock: FixedClock
) -> None:
    audit = FailingUsedEvent(any_stores, clock)
    token = issue(any_stores, audit, clock)
    before = len(any_stores.read_events())
    attestor = JoinTokenAttestor(any_stores, clock, audit)
    audit.broken = True
    with pytest.raises(Unavailable) as refused:
        attestor.attest(token)
    assert refused.value.reason == "audit.write"
    assert len(any_stores.read_events()) == before  # no event, and no use either
    # the twin: once the event can be recorded, the very same token is used, once
    audit.broken = False
    assert attestor.attest(token).spiffe_id == AGENT
    assert [b["kind"] for b in bodies(any_stores)[before:]] == [USED]
    with pytest.raises(AttestationError) as second:
        attestor.attest(token)
    assert second.value.reason == "join_token.used"


def test_attestation_fails_closed_and_keeps_the_token_when_the_audit_store_fails(
    keyring: Keyring, clock: FixedClock, svid_config: SvidConfig
) -> None:
    stores = FailingAppend()
    audit = AuditLog(stores, clock)
    token = issue(stores, audit, clock)
    service = IdentityService(
        trust_domain=TRUST_DOMAIN,
        keyring=keyring,
        workloads=stores,
        attestors=[JoinTokenAttestor(stores, clock, audit)],
        audit=audit,
        clock=clock,
        svid_config=svid_config,
    )
    request = AttestRequest(evidence={"join_token": token})
    stores.broken = True
    with pytest.raises(Unavailable) as refused:
        service.attest(request)
    assert refused.value.reason == "audit.write"
    assert USED not in [b["kind"] for b in bodies(stores)]
    stores.broken = False
    issued = service.attest(request)  # the same token still attests: no SVID was lost
    assert issued.spiffe_id == AGENT
    kinds = [b["kind"] for b in bodies(stores)]
    assert kinds[-3:] == [USED, "attestation", "svid.issued"]


def test_refused_uses_write_nothing_and_are_audited_as_the_failed_attestation(
    identity: IdentityService,
    stores: MemoryStores,
    audit: AuditLog,
    clock: FixedClock,
) -> None:
    expiring = issue(stores, audit, clock, ttl=60)
    used = issue(stores, audit, clock)
    identity.attest(AttestRequest(evidence={"join_token": used}))
    clock.t += 60
    for token, reason in ((expiring, "join_token.expired"), (used, "join_token.used")):
        before = len(stores.read_events())
        with pytest.raises(AttestationError) as refused:
            identity.attest(AttestRequest(evidence={"join_token": token}))
        assert refused.value.reason == reason
        after = bodies(stores)[before:]
        assert [(b["kind"], b["outcome"], b["reason"]) for b in after] == [
            ("attestation", "denied", reason)
        ]
    # the expired token stays unused: it was refused, not consumed
    record = stores.consume_join_token(token_hash(expiring), clock.t)
    assert record.status is ConsumeStatus.EXPIRED
    assert record.token is not None
    assert record.token.used_at is None


def test_concurrent_uses_of_one_token_record_one_use(tmp_path: Path, clock: FixedClock) -> None:
    stores = SqliteStores(tmp_path / "z.db")
    try:
        audit = AuditLog(stores, clock)
        token = issue(stores, audit, clock)
        attestor = JoinTokenAttestor(stores, clock, audit)
        results: list[str] = []

        def use() -> None:
            try:
                attestor.attest(token)
                results.append("ok")
            except AttestationError as err:
                results.append(err.reason)

        threads = [threading.Thread(target=use) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["join_token.used"] * 7 + ["ok"]
        assert [b["kind"] for b in bodies(stores)].count(USED) == 1
    finally:
        stores.close()
