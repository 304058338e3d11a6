"""The decision log: the audit mode chooses, once, how a decider's allows are committed
with their events (one durable write in ``sync``; the event queued after the spend in
``async``), and the audit log builds, stamps and seals the events it is handed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit.conftest import FixedClock
from tests.conformance.test_spent_proofs import _task
from tests.store.test_group_commit import holding, queued
from zerolane.audit.decision_log import (
    DecisionEvent,
    DurableDecisions,
    QueuedDecisionEvents,
    decision_log,
)
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.store.memory import MemoryStores
from zerolane.store.records import Spend
from zerolane.store.sqlite import SqliteStores
from zerolane.types import Outcome

AGENT = Actor("workload", "spiffe://example.org/agent")
SPEND_AT = 1_000_000.0  # the stored task's time (tests.conformance.test_spent_proofs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStores]:
    opened = SqliteStores(tmp_path / "z.db")
    opened.add_task(_task())
    try:
        yield opened
    finally:
        opened.close()


def allow(decision_id: str) -> DecisionEvent:
    return {
        "kind": "decision",
        "actor": AGENT,
        "subject": "t1",
        "outcome": Outcome.SUCCESS,
        "reason": "ok",
        "details": {"decision_id": decision_id, "decision": "allow"},
    }


def spend(expected: int) -> Spend:
    return Spend("t1", expected, 10, 0 if expected == 0 else 1, touched=1, now=SPEND_AT)


def decision_ids(store: SqliteStores) -> list[object]:
    return [json.loads(r.body)["details"]["decision_id"] for r in store.read_events()]


def test_the_audit_mode_chooses_the_decision_log(store: SqliteStores) -> None:
    clock = FixedClock()
    assert isinstance(decision_log(AuditLog(store, clock), store), DurableDecisions)
    queued_log = decision_log(AuditLog(store, clock, mode="async"), store)
    assert isinstance(queued_log, QueuedDecisionEvents)
    memory = MemoryStores()  # cannot queue an append: the mode in effect is sync
    assert isinstance(decision_log(AuditLog(memory, clock, mode="async"), memory), DurableDecisions)


def test_a_durable_decision_is_stamped_and_sealed_by_the_audit_log(store: SqliteStores) -> None:
    log = AuditLog(store, FixedClock())
    decisions = decision_log(log, store)
    before = store.writer_stats().ops
    spent = decisions.commit(spend(0), allow("d1")).result()
    assert spent is not None
    assert store.writer_stats().ops == before + 1  # the spend and its event: one write
    (record,) = store.read_events()
    body = json.loads(record.body)
    assert (body["kind"], body["actor"], body["subject"]) == ("decision", AGENT.as_json(), "t1")
    assert body["time"] == log.event(**allow("d1")).unsealed()["time"]  # the log's clock
    # the twin: a lost compare-and-set stores no event; a refusal's event is recorded
    assert decisions.commit(spend(0), allow("lost")).result() is None
    decisions.record({**allow("d2"), "outcome": Outcome.DENIED, "reason": "scope.action"})
    assert decision_ids(store) == ["d1", "d2"]
    assert log.verify() == (2, None)


def test_queued_events_follow_a_durable_spend(store: SqliteStores) -> None:
    """``async``: the answer waits for the spend alone; its event is queued once the
    spend is durable (and only when it spent), in order with every other write."""
    log = AuditLog(store, FixedClock(), mode="async")
    decisions = decision_log(log, store)
    with holding(store):
        write = decisions.commit(spend(0), allow("d1"))
        queued(store, 1)  # the spend alone: its event waits for it
    spent = write.result()  # queues the event, does not wait for it
    assert spent is not None
    assert spent.calls_used == 1
    # the twin: a spend that lost its compare-and-set queues no event
    assert decisions.commit(spend(0), allow("lost")).result() is None
    store.close()  # commits what is queued
    reopened = SqliteStores(store.path)
    try:
        assert decision_ids(reopened) == ["d1"]
        assert AuditLog(reopened, FixedClock()).verify() == (1, None)
        assert log.lost_events == 0
    finally:
        reopened.close()
