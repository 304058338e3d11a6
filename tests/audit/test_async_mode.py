"""The audit log's modes: ``sync`` (default, fail closed) and ``async`` (decision events
queued: returned before they are durable, failures counted after the fact)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from sqlite3 import Connection
from typing import Any

import pytest

from tests.audit.conftest import FixedClock
from tests.store.test_group_commit import (
    WAIT,
    deferred_fk_tables,
    holding,
    in_thread,
    queued,
    writer_of,
)
from zerolane.audit.events import SYSTEM, Actor
from zerolane.audit.log import AuditLog, QueuedAuditStore, parse_audit_mode
from zerolane.config import AuditConfig, load_config, parse_config, render_config
from zerolane.errors import InvalidInput, Unavailable
from zerolane.store.memory import MemoryStores
from zerolane.store.sqlite import SqliteStores
from zerolane.types import Outcome

AGENT = Actor("workload", "spiffe://example.org/agent")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStores]:
    opened = SqliteStores(tmp_path / "z.db")
    try:
        yield opened
    finally:
        opened.close()


def decide(log: AuditLog, n: int) -> Any:
    return log.record(
        "decision",
        actor=AGENT,
        subject="tsk_1",
        outcome=Outcome.SUCCESS,
        details={"decision_id": f"d{n}", "decision": "allow"},
    )


def kinds_and_ids(store: SqliteStores) -> list[tuple[str, object]]:
    events = [json.loads(r.body) for r in store.read_events()]
    return [(e["kind"], e["details"].get("decision_id")) for e in events]


def test_sync_is_the_default_and_stores_before_returning(
    store: SqliteStores, clock: FixedClock
) -> None:
    log = AuditLog(store, clock)
    assert log.mode == "sync"
    record = decide(log, 1)
    assert record is not None
    assert store.read_events() == [record]


def test_async_queues_decisions_and_the_writer_keeps_their_order(
    store: SqliteStores, clock: FixedClock
) -> None:
    log = AuditLog(store, clock, mode="async")
    assert log.mode == "async"
    assert isinstance(store, QueuedAuditStore)
    with holding(store):
        for n in range(5):
            assert decide(log, n) is None  # returned while the writer is busy
        queued(store, 5)
        assert store.read_events() == []  # not durable yet: the documented risk
        opened = in_thread(
            lambda: log.record(
                "task.opened", actor=SYSTEM, subject="tsk_1", outcome=Outcome.SUCCESS
            )
        )
        queued(store, 6)
    record = opened.result(WAIT)
    assert record is not None  # other kinds are recorded synchronously, after the queue
    assert kinds_and_ids(store) == [
        *(("decision", f"d{n}") for n in range(5)),
        ("task.opened", None),
    ]
    assert log.verify() == (6, None)
    assert log.lost_events == 0


def test_close_stores_the_queued_events(tmp_path: Path, clock: FixedClock) -> None:
    store = SqliteStores(tmp_path / "z.db")
    log = AuditLog(store, clock, mode="async")
    for n in range(20):
        decide(log, n)
    store.close()
    reopened = SqliteStores(tmp_path / "z.db")
    try:
        assert [i for _, i in kinds_and_ids(reopened)] == [f"d{n}" for n in range(20)]
        assert AuditLog(reopened, clock).verify() == (20, None)
    finally:
        reopened.close()


def test_async_failure_is_counted_and_logged_not_raised(
    store: SqliteStores, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(store, clock, mode="async")
    deferred_fk_tables(store)

    def violate(conn: Connection) -> None:  # makes the batch's COMMIT fail
        conn.execute("INSERT INTO child VALUES (7)")

    with caplog.at_level(logging.ERROR), holding(store):
        assert decide(log, 1) is None
        assert decide(log, 2) is None
        failing = writer_of(store).submit(violate)
        queued(store, 3)
    with pytest.raises(Unavailable):
        failing.result(WAIT)
    assert log.lost_events == 2
    assert store.lost_audit_events == 2
    assert "audit event(s) queued in async mode were lost" in caplog.text
    assert store.read_events() == []
    # later events still chain from the genesis: nothing half-written
    assert decide(log, 3) is None
    log.record("task.completed", actor=SYSTEM, subject="tsk_1", outcome=Outcome.SUCCESS)
    assert [i for _, i in kinds_and_ids(store)] == ["d3", None]
    assert log.verify() == (2, None)


def test_async_on_a_closed_store_is_refused(tmp_path: Path, clock: FixedClock) -> None:
    store = SqliteStores(tmp_path / "z.db")
    log = AuditLog(store, clock, mode="async")
    store.close()
    with pytest.raises(Unavailable):  # the decider turns this into a deny
        decide(log, 1)


def test_async_over_a_store_that_cannot_queue_is_sync(clock: FixedClock) -> None:
    store = MemoryStores()
    log = AuditLog(store, clock, mode="async")
    assert log.mode == "sync"
    assert decide(log, 1) is not None
    assert log.lost_events == 0


def test_unknown_mode_is_refused(store: SqliteStores, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput) as info:
        AuditLog(store, clock, mode="fast")
    assert info.value.reason == "audit.mode"
    assert parse_audit_mode("async") == "async"


# the setting


def test_config_audit_mode() -> None:
    assert parse_config({"trust_domain": "example.org"}).audit == AuditConfig("sync")
    config = parse_config({"trust_domain": "example.org", "audit": {"mode": "async"}})
    assert config.audit.mode == "async"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"audit": {"mode": "later"}}, "config.audit_mode"),
        # a choice's own rule names a value of the wrong type too (typed config)
        ({"audit": {"mode": 1}}, "config.audit_mode"),
        ({"audit": {"sink": "x"}}, "config.unknown_key"),
    ]
    for doc, reason in cases:
        with pytest.raises(InvalidInput) as info:
            parse_config({"trust_domain": "example.org", **doc})
        assert info.value.reason == reason


def test_config_audit_mode_is_rendered_and_loads_back(tmp_path: Path) -> None:
    config = parse_config({"trust_domain": "example.org", "audit": {"mode": "async"}})
    text = render_config(config)
    assert "[audit]" in text
    (tmp_path / "zerolane.toml").write_text(text)
    assert load_config(tmp_path) == config
