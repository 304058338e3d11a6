"""What only the SQLite backend promises: durability, file modes, WAL, migrations."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SYSTEM, Event
from zerolane.errors import InvalidInput, Unavailable
from zerolane.store.records import (
    AdminCredential,
    ConsumeStatus,
    FederatedBundle,
    JoinToken,
    Workload,
)
from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.migrations import LATEST
from zerolane.types import Outcome, WorkloadStatus

NOW = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "z.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStores]:
    opened = SqliteStores(db)
    try:
        yield opened
    finally:
        opened.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def raw(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return list(conn.execute(sql, params))


def unsealed(n: int) -> dict[str, object]:
    return Event(
        kind="test.event",
        actor=SYSTEM,
        subject=f"spiffe://example.org/w{n}",
        outcome=Outcome.SUCCESS,
        reason="ok",
        time=NOW + n,
    ).unsealed()


def test_data_survives_close_and_reopen(db: Path) -> None:
    agent = Workload("spiffe://example.org/agent", ("a:b",), None, WorkloadStatus.ENABLED, 1, 2)
    token = JoinToken("a" * 64, agent.spiffe_id, NOW, NOW + 600)
    bundle = FederatedBundle("partner.example", '{"keys": []}', 3, NOW)
    admin = AdminCredential("id", "f" * 64, NOW)

    first = SqliteStores(db)
    first.add_workload(agent)
    first.add_join_token(token)
    first.put_bundle(bundle)
    first.add_admin_credential(admin)
    records = first.append_events([unsealed(1), unsealed(2)], seal)
    first.close()

    second = SqliteStores(db)
    try:
        assert second.get_workload(agent.spiffe_id) == agent
        assert second.get_bundle("partner.example") == bundle
        assert second.list_admin_credentials() == [admin]
        assert second.read_events() == records
        assert second.consume_join_token("a" * 64, NOW).status is ConsumeStatus.CONSUMED
        # the chain continues across the restart
        [third] = second.append_events([unsealed(3)], seal)
        assert third.seq == 3
        assert third.prev_hash == records[-1].hash
        assert verify(second.read_events()) == (3, None)
    finally:
        second.close()


def test_consumed_join_token_stays_used_after_reopen(db: Path) -> None:
    first = SqliteStores(db)
    first.add_join_token(JoinToken("a" * 64, "spiffe://example.org/a", NOW, NOW + 600))
    assert first.consume_join_token("a" * 64, NOW).status is ConsumeStatus.CONSUMED
    first.close()
    second = SqliteStores(db)
    try:
        assert second.consume_join_token("a" * 64, NOW + 1).status is ConsumeStatus.ALREADY_USED
    finally:
        second.close()


def test_database_files_are_private(store: SqliteStores, db: Path) -> None:
    store.append_events([unsealed(1)], seal)  # make sure the WAL holds data
    assert mode(db) == 0o600
    sidecars = [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]
    present = [path for path in sidecars if path.exists()]
    assert present, "WAL mode keeps -wal/-shm files while the database is open"
    for path in present:
        assert mode(path) == 0o600, path


def test_existing_database_keeps_its_mode(db: Path) -> None:
    SqliteStores(db).close()
    os.chmod(db, 0o640)  # an operator chose this; reopening does not fight it
    SqliteStores(db).close()
    assert mode(db) == 0o640


def test_journal_mode_is_wal(store: SqliteStores, db: Path) -> None:
    assert raw(db, "PRAGMA journal_mode") == [("wal",)]


def test_reopening_a_migrated_database_does_not_migrate_again(db: Path) -> None:
    SqliteStores(db).close()
    applied = raw(db, "SELECT version, description, applied_at FROM schema_migrations")
    assert [row[0] for row in applied] == list(range(1, LATEST + 1))

    reopened = SqliteStores(db)
    try:
        assert reopened.schema_version() == LATEST
    finally:
        reopened.close()
    assert raw(db, "SELECT version, description, applied_at FROM schema_migrations") == applied


def test_database_from_a_newer_zerolane_is_refused(db: Path) -> None:
    SqliteStores(db).close()
    raw(db, "INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", (LATEST + 1,))
    with pytest.raises(InvalidInput) as info:
        SqliteStores(db)
    assert info.value.reason == "store.schema_too_new"
    # nothing was changed: the future version is still recorded
    assert raw(db, "SELECT max(version) FROM schema_migrations") == [(LATEST + 1,)]


def test_file_that_is_not_a_database_is_unavailable(db: Path) -> None:
    db.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    with pytest.raises(Unavailable) as info:
        SqliteStores(db)
    assert info.value.reason == "store.open"


def test_missing_parent_folder_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as info:
        SqliteStores(tmp_path / "missing" / "z.db")
    assert info.value.reason == "store.open"
