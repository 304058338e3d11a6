"""Rows map to records by column name: a table whose columns moved, or that gained one,
reads and writes the same records (the whole conformance suite also runs on such a
database: ``sqlite-reordered`` in ``tests/conformance/conftest.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.store.reordered import EXTRA, columns, reordered_store, tables
from zerolane.store.records import (
    AdminCredential,
    FederatedBundle,
    PlaybookRecord,
    TaskRecord,
    Workload,
)
from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.tables import TASKS
from zerolane.types import TaskState, WorkloadStatus

NOW = 1_800_000_000.0
TASK = TaskRecord(
    task_id="tsk_1",
    owner="spiffe://example.org/agent",
    playbook="reports",
    playbook_version=3,
    intent="summarize",
    scope='{"actions":[]}',
    authorization_details="[]",
    jkt="j" * 43,
    audience=("urn:gateway", "urn:other"),
    state=TaskState.ACTIVE,
    created_at=NOW,
    expires_at=NOW + 600,
    max_calls=5,
    calls_used=0,
    touched=-1,
    token_jti="jti-1",
    on_behalf_of="alice",
    user_subject="sub-1",
    user_issuer="https://idp.example",
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStores]:
    opened = reordered_store(tmp_path / "z.db")
    try:
        yield opened
    finally:
        opened.close()


def test_the_tables_really_are_reordered(store: SqliteStores) -> None:
    assert "tasks" in tables(store.path)
    assert columns(store.path, "tasks") == [*reversed(TASKS.columns), EXTRA]
    store.add_task(TASK)
    with closing(sqlite3.connect(store.path)) as conn:
        [row] = conn.execute("SELECT * FROM tasks")
    # a positional read (the old SELECT * unpacked in order) would shift every field
    assert row[: len(TASKS.columns)] != tuple(TASKS.values(TASK).values())
    assert row[0] == TASK.user_issuer
    assert row[-1] == "x"


def test_every_record_reads_back_as_written(store: SqliteStores) -> None:
    workload = Workload(
        "spiffe://example.org/w", ("unix:uid:1",), "ops", WorkloadStatus.ENABLED, NOW, NOW + 1
    )
    store.add_workload(workload)
    store.put_bundle(FederatedBundle("peer.example", '{"keys":[]}', 7, NOW))
    store.add_admin_credential(AdminCredential("adm_1", "h" * 64, NOW))
    store.put_playbook(PlaybookRecord("reports", '{"name":"reports"}', 2, NOW))
    store.add_task(TASK)
    assert store.get_workload(workload.spiffe_id) == workload
    assert store.get_bundle("peer.example") == FederatedBundle(
        "peer.example", '{"keys":[]}', 7, NOW
    )
    assert store.list_admin_credentials() == [AdminCredential("adm_1", "h" * 64, NOW)]
    assert store.get_playbook("reports") == PlaybookRecord("reports", '{"name":"reports"}', 2, NOW)
    assert store.get_task("tsk_1") == TASK
    assert store.list_tasks() == [TASK]
    spent = store.spend_call("tsk_1", expected_calls_used=0, touched=2, now=NOW + 1)
    assert spent is not None
    assert (spent.calls_used, spent.touched, spent.owner, spent.audience) == (
        1,
        2,
        TASK.owner,
        TASK.audience,
    )


def test_a_database_migrated_before_the_reorder_still_opens(tmp_path: Path) -> None:
    """The twin of the fixture: the same store over tables in their created order."""
    plain = SqliteStores(tmp_path / "plain.db")
    try:
        assert columns(plain.path, "tasks") == list(TASKS.columns)
        plain.add_task(TASK)
        assert plain.get_task("tsk_1") == TASK
    finally:
        plain.close()
