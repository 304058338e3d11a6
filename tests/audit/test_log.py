"""The audit log over a store port: records, fails closed, tails and verifies."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import pytest

from tests.audit.conftest import NOW, FixedClock
from zerolane.audit.events import SYSTEM, Actor
from zerolane.audit.log import AuditLog, event_json
from zerolane.audit.masking import mask_value
from zerolane.errors import Unavailable
from zerolane.store.memory import MemoryStores
from zerolane.store.ports import GENESIS_HASH, Sealer
from zerolane.store.records import AuditRecord
from zerolane.types import Outcome

ADMIN = Actor("admin", "cli")


@pytest.fixture
def store() -> MemoryStores:
    return MemoryStores()


@pytest.fixture
def log(store: MemoryStores, clock: FixedClock) -> AuditLog:
    return AuditLog(store, clock)


def record_n(log: AuditLog, count: int) -> list[AuditRecord]:
    records = []
    for n in range(1, count + 1):
        record = log.record("test.event", actor=SYSTEM, subject=f"s{n}", outcome=Outcome.SUCCESS)
        assert record is not None  # a sync log stores each event as it records it
        records.append(record)
    return records


def test_record_stores_a_sealed_event(log: AuditLog, store: MemoryStores) -> None:
    record = log.record(
        "workload.registered",
        actor=ADMIN,
        subject="spiffe://example.org/agent",
        outcome=Outcome.SUCCESS,
        details={"owner": "ops", "api_key": "k-123"},
    )
    assert record is not None
    assert store.read_events() == [record]
    assert (record.seq, record.prev_hash) == (1, GENESIS_HASH)
    assert (record.kind, record.outcome) == ("workload.registered", "success")
    assert record.time == "2027-01-15T08:00:00.000Z"
    body = event_json(record)
    assert body["actor"] == {"type": "admin", "id": "cli"}
    assert body["reason"] == "ok"
    assert body["details"] == {"owner": "ops", "api_key": mask_value("k-123")}
    assert "k-123" not in record.body


def test_record_uses_the_clock(log: AuditLog, clock: FixedClock) -> None:
    clock.t = NOW + 61.5
    record = log.record("x", actor=SYSTEM, subject="s", outcome=Outcome.FAILURE, reason="r.x")
    assert record is not None
    assert record.time == "2027-01-15T08:01:01.500Z"
    assert json.loads(record.body)["reason"] == "r.x"


def test_records_are_chained(log: AuditLog) -> None:
    records = record_n(log, 3)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[1].prev_hash == records[0].hash
    assert records[2].prev_hash == records[1].hash
    assert log.verify() == (3, None)


def test_record_all_is_one_write(log: AuditLog, store: MemoryStores) -> None:
    events = [
        log.event("attestation", SYSTEM, "s", Outcome.SUCCESS),
        log.event("svid.issued", SYSTEM, "s", Outcome.SUCCESS),
    ]
    records = log.record_all(events)
    assert [r.kind for r in records] == ["attestation", "svid.issued"]
    assert store.read_events() == records


class BrokenStore(MemoryStores):
    """A store whose appends fail the way a full disk or a lost database would."""

    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        raise OSError("disk full")


def test_store_failure_is_unavailable(clock: FixedClock) -> None:
    log = AuditLog(BrokenStore(), clock)
    with pytest.raises(Unavailable) as info:
        log.record("x", actor=SYSTEM, subject="s", outcome=Outcome.SUCCESS)
    assert info.value.reason == "audit.write"
    assert isinstance(info.value.__cause__, OSError)


def test_store_refusal_passes_through_with_its_reason(clock: FixedClock) -> None:
    class Refusing(MemoryStores):
        def append_events(
            self, events: Sequence[dict[str, object]], seal: Sealer
        ) -> list[AuditRecord]:
            raise Unavailable("store.write", "database locked")

    with pytest.raises(Unavailable) as info:
        AuditLog(Refusing(), clock).record("x", actor=SYSTEM, subject="s", outcome=Outcome.SUCCESS)
    assert info.value.reason == "store.write"


def test_tail(log: AuditLog) -> None:
    assert log.tail(5) == []
    records = record_n(log, 5)
    assert log.tail(2) == records[3:]
    assert log.tail(5) == records
    assert log.tail(50) == records
    assert log.tail(0) == []


def test_iter_records_pages_through_everything(log: AuditLog) -> None:
    records = record_n(log, 5)
    assert list(log.iter_records(page=2)) == records
    assert list(log.iter_records(after_seq=3, page=2)) == records[3:]
    assert list(log.iter_records(page=5)) == records


def test_verify_reports_tampering_in_the_store(clock: FixedClock) -> None:
    class Tampered(MemoryStores):
        def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
            records = super().read_events(after_seq, limit)
            return [dataclasses.replace(r, outcome="success") if r.seq == 2 else r for r in records]

    store = Tampered()
    log = AuditLog(store, clock)
    log.record("x", actor=SYSTEM, subject="s", outcome=Outcome.SUCCESS)
    log.record("x", actor=SYSTEM, subject="s", outcome=Outcome.DENIED, reason="r.denied")
    log.record("x", actor=SYSTEM, subject="s", outcome=Outcome.SUCCESS)
    count, broken = log.verify()
    assert count == 1
    assert broken is not None
    assert broken.seq == 2


def test_verify_walks_more_than_one_page(log: AuditLog) -> None:
    record_n(log, 1001)
    assert log.verify() == (1001, None)
