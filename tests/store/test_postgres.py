"""What is specific to the PostgreSQL backend (the ports themselves: the conformance
suite, ``postgresql`` in ``tests/conformance/conftest.BACKENDS``): its migrations, its
store URL, its errors and its connection pool. Concurrency between processes:
``test_postgres_concurrency``."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from tests.conformance.test_task_tree import task
from tests.store.pg_schema import SchemaStores, admin, conninfo, drop_schema, new_schema
from zerolane.audit.chain import seal
from zerolane.errors import Conflict, InvalidInput, ProofReplayed, Unavailable
from zerolane.store.changes import AddEnforcementPoint, Change
from zerolane.store.open import open_stores
from zerolane.store.postgres import PostgresStores
from zerolane.store.postgres.connection import Pool, connect, describe
from zerolane.store.postgres.migrations import LATEST, migrate, statements
from zerolane.store.postgres.stores import RETRIES
from zerolane.store.records import AdminCredential, EnforcementPoint, PlaybookRecord, SpentProof
from zerolane.store.sqlite.migrations import MIGRATIONS
from zerolane.store.sqlite.proofs import MAX_STEP_BACK
from zerolane.types import TaskState

NOW = 1_800_000_000.0


@pytest.fixture
def schema() -> Iterator[str]:
    name = new_schema()
    try:
        yield name
    finally:
        drop_schema(name)


def _versions(schema: str) -> list[int]:
    with admin() as conn:
        query = sql.SQL("SELECT version FROM {}.schema_migrations ORDER BY version").format(
            sql.Identifier(schema)
        )
        return [int(str(row[0])) for row in conn.execute(query)]


# migrations


def test_opening_migrates_to_the_latest_version_once(schema: str) -> None:
    first = PostgresStores(conninfo(schema))
    try:
        assert first.schema_version() == LATEST
    finally:
        first.close()
    assert _versions(schema) == sorted(v for v, _, _ in MIGRATIONS)
    with connect(conninfo(schema)) as conn:  # opened again: nothing left to apply
        assert migrate(conn) == []
    assert _versions(schema) == sorted(v for v, _, _ in MIGRATIONS)


def test_processes_opening_together_apply_each_migration_once(schema: str) -> None:
    opened: list[PostgresStores] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStores(conninfo(schema)))
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        assert [s.schema_version() for s in opened] == [LATEST] * 4
    finally:
        for stores in opened:
            stores.close()
    assert _versions(schema) == sorted(v for v, _, _ in MIGRATIONS)


def test_a_schema_newer_than_this_code_is_refused(schema: str) -> None:
    PostgresStores(conninfo(schema)).close()
    with admin() as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.schema_migrations (version, description, applied_at) "
                "VALUES (%s, 'from the future', 0)"
            ).format(sql.Identifier(schema)),
            (LATEST + 1,),
        )
    with pytest.raises(InvalidInput) as info:
        PostgresStores(conninfo(schema))
    assert info.value.reason == "store.schema_too_new"


def test_the_one_dialect_difference_is_bytea_for_blob() -> None:
    [table, index] = statements(5)
    assert "digest BYTEA PRIMARY KEY" in table
    assert "BLOB" not in table
    assert index.startswith("CREATE INDEX spent_proofs_expiry")
    assert statements(1)[0].startswith("CREATE TABLE workloads")
    with pytest.raises(KeyError):
        statements(LATEST + 1)


def test_digests_are_stored_as_bytea(schema: str) -> None:
    stores = SchemaStores(schema)
    proof = SpentProof.of("jkt:bytes", NOW + 60)
    assert stores.spend_proof(proof, NOW)
    with admin() as conn:
        query = sql.SQL("SELECT digest FROM {}.spent_proofs WHERE digest = %s").format(
            sql.Identifier(schema)
        )
        row = conn.execute(query, (proof.digest,)).fetchone()
    assert row is not None
    assert row[0] == proof.digest
    stores.close()


# store URLs


def test_a_postgresql_url_opens_this_backend(schema: str) -> None:
    for scheme in ("postgresql", "postgres"):
        url = conninfo(schema).replace("postgresql://", f"{scheme}://", 1)
        opened = open_stores(url)
        try:
            assert isinstance(opened, PostgresStores)
            assert opened.where == "127.0.0.1:5432/test"
            assert opened.schema_version() == LATEST
        finally:
            opened.close()


def test_a_url_that_cannot_be_parsed_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidInput) as info:
        open_stores("postgresql://user:hunter2@[::1/test")
    assert info.value.reason == "store.url"
    assert "hunter2" not in str(info.value)
    # the twin: a key=value conninfo is described by its parts
    assert describe("host=db.example port=6543 dbname=z") == "db.example:6543/z"
    assert describe("dbname=z") == "localhost:5432/z"


def test_an_unreachable_server_is_unavailable_and_its_password_never_shown() -> None:
    with pytest.raises(Unavailable) as info:
        open_stores("postgresql://zl:hunter2@127.0.0.1:1/test?connect_timeout=2")
    assert info.value.reason == "store.open"
    assert "127.0.0.1:1/test" in str(info.value)
    assert "hunter2" not in str(info.value)


# errors


def test_a_database_gone_under_the_store_is_unavailable_never_a_crash(schema: str) -> None:
    stores = PostgresStores(conninfo(schema))
    try:
        stores.add_admin_credential(AdminCredential("a1", "h" * 64, NOW))
        with pytest.raises(Conflict) as conflict:
            stores.add_admin_credential(AdminCredential("a1", "h" * 64, NOW))
        assert conflict.value.reason == "admin.exists"
        drop_schema(schema)
        with pytest.raises(Unavailable) as read:
            stores.list_admin_credentials()
        assert read.value.reason == "store.read"
        with pytest.raises(Unavailable) as write:
            stores.add_admin_credential(AdminCredential("a2", "h" * 64, NOW))
        assert write.value.reason == "store.write"
        with pytest.raises(Unavailable) as append:
            stores.append_events(
                [{"event_id": "e", "time": "t", "kind": "k", "outcome": "o"}], seal
            )
        assert append.value.reason == "audit.write"
    finally:
        stores.close()
        stores.close()  # closing twice is harmless


def test_a_write_aborted_as_a_deadlock_is_run_again_then_given_up(schema: str) -> None:
    stores = SchemaStores(schema)
    calls: list[int] = []

    def once(_conn: object) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise errors.DeadlockDetected("deadlock detected")
        return "done"

    assert stores._write(once) == "done"
    assert len(calls) == 2

    calls.clear()

    def always(_conn: object) -> str:
        calls.append(1)
        raise errors.SerializationFailure("could not serialize access")

    with pytest.raises(Unavailable) as info:
        stores._write(always)
    assert info.value.reason == "store.write"
    assert len(calls) == RETRIES + 1
    stores.close()


# the pool


def test_the_pool_reuses_a_healthy_connection_and_drops_a_spoiled_one(schema: str) -> None:
    pool = Pool(conninfo(schema), keep=1)
    with pool.connection() as first:
        pass
    with pool.connection() as again:
        assert again is first  # reused
        again.execute("BEGIN")  # given back inside a transaction: never reused
    assert first.closed
    with pool.connection() as other, pool.connection() as extra:
        assert other is not first
        assert extra is not other  # none idle: another is opened
    assert other.closed  # given back last: only ``keep`` idle ones are kept
    assert not extra.closed
    pool.close()
    assert extra.closed
    with pool.connection() as late:  # after close: works, closed when given back
        late.execute("SELECT 1")
    assert late.closed


def test_a_failed_statement_does_not_spoil_the_pool(schema: str) -> None:
    pool = Pool(conninfo(schema), keep=2)
    with pytest.raises(psycopg.Error), pool.connection() as conn:
        conn.execute("SELECT * FROM no_such_table")
    with pool.connection() as again:
        assert again is conn  # autocommit: the failed statement left no transaction
        assert again.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    pool.close()


# spent proofs across processes (SQLite's twins: tests/conformance/test_spent_proofs.py)


def test_stores_over_one_database_share_what_was_spent(schema: str) -> None:
    first = PostgresStores(conninfo(schema))
    proof = SpentProof.of("jkt:shared", NOW + 60)
    try:
        first.add_task(task("t1"))
        spent = first.spend_call("t1", expected_calls_used=0, touched=1, now=NOW, proof=proof)
        assert spent is not None
    finally:
        first.close()
    second = PostgresStores(conninfo(schema))
    try:
        with pytest.raises(ProofReplayed):
            second.spend_call("t1", expected_calls_used=1, touched=1, now=NOW, proof=proof)
        assert not second.spend_proof(proof, NOW)
        assert second.spend_proof(SpentProof.of("jkt:fresh", NOW + 60), NOW)
    finally:
        second.close()


def test_a_purged_proof_stays_refused_by_a_store_whose_clock_is_behind(schema: str) -> None:
    first = PostgresStores(conninfo(schema))
    captured = SpentProof.of("jkt:captured", NOW + 60)
    try:
        assert first.spend_proof(captured, NOW)
        assert first.spend_proof(SpentProof.of("jkt:later", NOW + 121), NOW + 61)  # purges
    finally:
        first.close()
    restarted = PostgresStores(conninfo(schema))
    try:
        assert not restarted.spend_proof(captured, NOW + 21)  # 40 s behind the purge
        # the twin: a proof made at the earlier clock is new
        assert restarted.spend_proof(SpentProof.of("jkt:fresh", NOW + 81), NOW + 21)
        far = NOW + 61 - MAX_STEP_BACK - 60  # a clock far behind: no lasting refusal
        assert restarted.spend_proof(SpentProof.of("jkt:far", far + 60), far)
    finally:
        restarted.close()


# ports outside the conformance suite (enforcement points, playbooks, task listing)


def test_enforcement_points_playbooks_and_task_lists(schema: str) -> None:
    stores = SchemaStores(schema)
    point = EnforcementPoint("edge", "h" * 64, ("https://edge.example",), NOW)
    stores.add_enforcement_point(point)
    with pytest.raises(Conflict) as conflict:
        stores.add_enforcement_point(point)
    assert conflict.value.reason == "enforcement_point.exists"
    assert stores.list_enforcement_points() == [point]
    assert stores.remove_enforcement_point("edge") == point
    assert stores.remove_enforcement_point("edge") is None
    playbook = PlaybookRecord("reports", "{}", 1, NOW)
    stores.put_playbook(playbook)
    stores.put_playbook(replaced := PlaybookRecord("reports", '{"v":2}', 2, NOW + 1))
    assert stores.get_playbook("reports") == replaced != playbook
    assert stores.list_playbooks() == [replaced]
    assert stores.get_playbook("none") is None
    stores.add_task(task("t1"))
    assert [t.task_id for t in stores.list_tasks(owner="spiffe://example.org/agents/a1")] == ["t1"]
    assert stores.list_tasks(owner="someone else") == []
    assert stores.list_tasks(state=TaskState.REVOKED) == []
    orphan = task("orphan")  # no parent: nothing to carve from
    assert stores.add_child_task(orphan, now=NOW) is None
    with pytest.raises(TypeError):
        stores.write_recorded(Change(), lambda _r: [], seal)
    stores.close()


def test_a_recorded_write_whose_events_fail_stores_nothing(schema: str) -> None:
    stores = SchemaStores(schema)
    point = EnforcementPoint("edge", "h" * 64, ("https://edge.example",), NOW)

    def refused(_result: None) -> list[dict[str, object]]:
        raise Unavailable("audit.write", "the sink refused")

    with pytest.raises(Unavailable):
        stores.write_recorded(AddEnforcementPoint(point), refused, seal)
    assert stores.list_enforcement_points() == []

    event: dict[str, object] = {"event_id": "same", "time": "t", "kind": "k", "outcome": "o"}
    stores.append_events([event], seal)
    with pytest.raises(Unavailable) as info:  # a second event with the same id: refused
        stores.write_recorded(AddEnforcementPoint(point), lambda _r: [event], seal)
    assert info.value.reason == "store.write"
    assert stores.list_enforcement_points() == []
    # the twin: a new event id records the change
    fresh = {**event, "event_id": "other"}
    stores.write_recorded(AddEnforcementPoint(point), lambda _r: [fresh], seal)
    assert stores.list_enforcement_points() == [point]
    assert len(stores.read_events()) == 2
    stores.close()
