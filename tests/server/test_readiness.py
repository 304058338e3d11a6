"""``/readyz`` fails when the store cannot write or the audit sink loses events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.server.conftest import Api
from zerolane.server.readiness import WriteReadiness
from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.group_commit import WriterStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stores(api: Api) -> SqliteStores:
    stores = api.deployment.stores
    assert isinstance(stores, SqliteStores)
    return stores


def _use(api: Api, readiness: WriteReadiness) -> None:
    api.client.app.state.readiness = readiness  # type: ignore[attr-defined]


def _readyz(api: Api) -> tuple[int, str | None]:
    reply = api.client.get("/readyz")
    return reply.status_code, reply.json().get("reason")


def _full(path: Path) -> sqlite3.Connection:
    """A connection to a database that cannot grow by one more page: SQLITE_FULL."""
    conn = sqlite3.connect(path, timeout=1, isolation_level=None)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    return conn


def test_ready_when_the_store_writes(api: Api) -> None:
    assert _readyz(api) == (200, None)
    names = sqlite3.connect(_stores(api).path).execute("SELECT name FROM sqlite_master")
    assert "zerolane_readiness_probe" not in {row[0] for row in names}  # rolled back
    api.client.post("/v1/attest", json={"join_token": api.join_token()})
    assert api.deployment.audit.verify()[1] is None


def test_a_full_database_is_not_ready(api: Api) -> None:
    clock = Clock()
    _use(api, WriteReadiness(api.deployment.stores, clock=clock, connect=_full))
    assert _readyz(api) == (503, "store.full")
    # the same database, allowed to grow: ready again once the answer is stale
    _use(api, WriteReadiness(api.deployment.stores, clock=clock))
    assert _readyz(api) == (200, None)


def test_a_full_disk_is_not_ready(api: Api) -> None:
    free = [0]
    readiness = WriteReadiness(api.deployment.stores, free_bytes=lambda _: free[0])
    _use(api, readiness)
    status, reason = _readyz(api)
    assert (status, reason) == (503, "store.disk_full")
    free[0] = 10**9
    _use(api, WriteReadiness(api.deployment.stores, free_bytes=lambda _: free[0]))
    assert _readyz(api) == (200, None)


def test_a_read_only_database_is_not_ready(api: Api) -> None:
    def read_only(path: Path) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)

    _use(api, WriteReadiness(api.deployment.stores, connect=read_only))
    assert _readyz(api) == (503, "store.read_only")


def test_a_write_lock_held_too_long_is_not_ready_and_the_answer_is_reused(api: Api) -> None:
    path = _stores(api).path
    clock = Clock()
    opened: list[int] = []

    def impatient(target: Path) -> sqlite3.Connection:
        opened.append(1)
        return sqlite3.connect(target, timeout=0.05, isolation_level=None)

    _use(api, WriteReadiness(api.deployment.stores, clock=clock, connect=impatient))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert _readyz(api) == (503, "store.busy")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _readyz(api) == (503, "store.busy")  # within a second: the same answer
    assert len(opened) == 1  # the write lock was asked for once
    clock.now += 1.0
    assert _readyz(api) == (200, None)
    assert len(opened) == 2


def test_failed_commits_and_lost_audit_events_are_not_ready(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = _stores(api)
    failed, lost = [0], [0]
    monkeypatch.setattr(stores, "writer_stats", lambda: WriterStats(1, 1, failed[0], 1))
    monkeypatch.setattr(SqliteStores, "lost_audit_events", property(lambda _: lost[0]))
    clock = Clock()
    _use(api, WriteReadiness(stores, clock=clock))
    assert _readyz(api) == (200, None)
    failed[0] += 1
    clock.now += 1.0
    assert _readyz(api) == (503, "store.write")
    clock.now += 1.0
    assert _readyz(api) == (200, None)  # no commit failed since
    lost[0] += 3
    clock.now += 1.0
    assert _readyz(api) == (503, "audit.lost")
    clock.now += 1.0
    assert _readyz(api) == (200, None)


def test_a_memory_store_has_nothing_to_probe() -> None:
    from zerolane.store.memory import MemoryStores

    WriteReadiness(MemoryStores()).check()  # no exception: nothing to check
