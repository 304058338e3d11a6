"""Group commit in the SQLite backend: batched writes keep every method's semantics.

Batches are made deterministic by holding the writer: :func:`holding` queues an op
that waits inside the writer's transaction, the test queues more writes behind it, and
releasing it lets the writer take all of them as one batch.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path
from sqlite3 import Connection
from typing import Any

import pytest

from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SYSTEM, Event
from zerolane.errors import Conflict, Unavailable
from zerolane.store.ports import GENESIS_HASH
from zerolane.store.records import AuditRecord, TaskRecord, Workload
from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.group_commit import GroupCommitWriter
from zerolane.types import Outcome, TaskState, WorkloadStatus

NOW = 1_800_000_000.0
WAIT = 30.0  # generous bound on any one wait: a hang fails instead of blocking the suite


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


def workload(n: int) -> Workload:
    return Workload(f"spiffe://example.org/w{n}", (), None, WorkloadStatus.ENABLED, NOW, NOW)


def task(task_id: str = "tsk_1", *, max_calls: int = 50) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        owner="spiffe://example.org/agent",
        playbook="reports",
        playbook_version=1,
        intent="summarize",
        scope="{}",
        authorization_details="[]",
        jkt="j" * 43,
        audience=("urn:gateway",),
        state=TaskState.ACTIVE,
        created_at=NOW,
        expires_at=NOW + 600,
        max_calls=max_calls,
        calls_used=0,
        touched=-1,
        token_jti="jti-1",
    )


def unsealed(n: int) -> dict[str, object]:
    return Event(
        kind="test.event",
        actor=SYSTEM,
        subject=f"s{n}",
        outcome=Outcome.SUCCESS,
        reason="ok",
        time=NOW + n,
    ).unsealed()


def raw(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.execute(sql))


def writer_of(store: SqliteStores) -> GroupCommitWriter:
    writer: GroupCommitWriter = store._writer
    return writer


@contextmanager
def holding(store: SqliteStores) -> Iterator[threading.Event]:
    """Hold the writer inside a batch's transaction until the block ends (or the
    yielded event is set); writes queued meanwhile form the next batch."""
    entered, release = threading.Event(), threading.Event()

    def hold(_: Connection) -> None:
        entered.set()
        release.wait(WAIT)

    held = writer_of(store).submit(hold, wake=True)
    assert entered.wait(WAIT)
    try:
        yield release
    finally:
        release.set()
        held.result(WAIT)


def in_thread(fn: Callable[[], Any]) -> Future[Any]:
    """Run ``fn`` in its own thread (so it can block on the writer)."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as err:
            future.set_exception(err)

    threading.Thread(target=run, daemon=True).start()
    return future


def queued(store: SqliteStores, count: int) -> None:
    """Wait until ``count`` writes are queued behind the held batch."""
    writer = writer_of(store)
    deadline = threading.Event()
    for _ in range(int(WAIT / 0.005)):
        if len(writer._items) >= count:
            return
        deadline.wait(0.005)
    raise AssertionError(f"fewer than {count} writes were queued")


# batching


def test_writes_queued_together_commit_as_one_batch(store: SqliteStores) -> None:
    before = store.writer_stats()
    with holding(store):
        futures = [in_thread(partial(store.add_workload, workload(i))) for i in range(20)]
        queued(store, 20)
    for future in futures:
        assert future.result(WAIT) is None
    after = store.writer_stats()
    assert after.batches - before.batches == 2  # the held batch, then all twenty at once
    assert after.largest_batch == 20
    assert len(store.list_workloads()) == 20


def test_a_lone_write_commits_on_its_callers_thread(store: SqliteStores) -> None:
    """No hand-off to another thread and back for a write nobody else is committing:
    the caller leads its own batch (that hop cost more CPU than SQLite's work)."""
    ran_on: list[threading.Thread] = []
    writer_of(store).run(lambda _: ran_on.append(threading.current_thread()))
    assert ran_on == [threading.current_thread()]

    # the twin: a write queued while another batch commits is committed after it, in
    # the next batch, by one of the callers waiting (never before the held one ends)
    with holding(store) as release:
        waiting = in_thread(
            lambda: writer_of(store).run(lambda _: ran_on.append(threading.current_thread()))
        )
        queued(store, 1)
        assert not waiting.done()
        release.set()
        waiting.result(WAIT)
    assert len(ran_on) == 2
    assert ran_on[1] is not threading.current_thread()


def test_a_write_nobody_waits_for_is_still_committed(store: SqliteStores) -> None:
    """``wake=True`` (the audit log's async mode) hands the write to the background
    thread at once; a write queued without it and never waited for is committed by
    that thread within its poll interval, so nothing queued is left behind."""
    woken = writer_of(store).submit(lambda conn: store_marker(conn, "woken"), wake=True)
    left = writer_of(store).submit(lambda conn: store_marker(conn, "left"))
    assert woken.result(WAIT) is None
    assert left.result(WAIT) is None  # never waited with wait(): the thread took it
    assert sorted(r[0] for r in raw(store.path, "SELECT name FROM marker")) == ["left", "woken"]


def test_a_write_cancelled_before_its_batch_never_runs(store: SqliteStores) -> None:
    """A future cancelled while queued (its waiter gave up) drops the write; the writes
    around it commit, and the row it names no longer holds back a read of it."""
    with holding(store):
        dropped = writer_of(store).submit(lambda conn: store_marker(conn, "dropped"), key="k")
        kept = in_thread(lambda: writer_of(store).run(lambda conn: store_marker(conn, "kept")))
        queued(store, 2)
        assert dropped.cancel()
    kept.result(WAIT)
    writer_of(store).settle("k")  # returns at once: nothing of "k" is queued any more
    assert [r[0] for r in raw(store.path, "SELECT name FROM marker")] == ["kept"]


def store_marker(conn: Connection, name: str) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS marker (name TEXT)")
    conn.execute("INSERT INTO marker VALUES (?)", (name,))


def test_a_lone_write_is_its_own_batch(store: SqliteStores) -> None:
    before = store.writer_stats()
    for i in range(5):
        store.add_workload(workload(i))
    after = store.writer_stats()
    assert (after.batches - before.batches, after.ops - before.ops) == (5, 5)


def test_batches_are_bounded(db: Path) -> None:
    small = SqliteStores(db, max_batch=4)
    try:
        before = small.writer_stats()
        with holding(small):
            futures = [in_thread(partial(small.add_workload, workload(i))) for i in range(10)]
            queued(small, 10)
        for future in futures:
            future.result(WAIT)
        after = small.writer_stats()
        assert after.largest_batch == 4
        assert after.batches - before.batches == 1 + 3  # 4 + 4 + 2
    finally:
        small.close()


# the compare-and-set spend and the audit chain under concurrency


def test_concurrent_spends_on_one_task_spend_exactly_its_budget(store: SqliteStores) -> None:
    store.add_task(task(max_calls=50))
    barrier = threading.Barrier(32)

    def spender() -> int:
        won = 0
        barrier.wait(WAIT)
        while True:
            current = store.get_task("tsk_1")
            assert current is not None
            if current.calls_used >= current.max_calls:
                return won
            spent = store.spend_call(
                "tsk_1", expected_calls_used=current.calls_used, touched=1, now=NOW
            )
            if spent is not None:
                assert spent.calls_used <= 50
                won += 1

    with ThreadPoolExecutor(32) as pool:
        wins = list(pool.map(lambda _: spender(), range(32)))
    assert sum(wins) == 50
    final = store.get_task("tsk_1")
    assert final is not None
    assert (final.calls_used, final.touched) == (50, 1)
    # durably: a fresh connection sees the same count
    assert raw(store.path, "SELECT calls_used FROM tasks") == [(50,)]


def test_concurrent_appends_chain_without_gaps(store: SqliteStores) -> None:
    per_thread, threads = 20, 16

    def appender(t: int) -> list[AuditRecord]:
        records: list[AuditRecord] = []
        for i in range(per_thread):
            records += store.append_events([unsealed(t * 1000 + i) for _ in range(1 + i % 3)], seal)
        return records

    with ThreadPoolExecutor(threads) as pool:
        returned = [r for batch in pool.map(appender, range(threads)) for r in batch]
    stored = store.read_events(limit=10_000)
    total = threads * sum(1 + i % 3 for i in range(per_thread))
    assert [r.seq for r in stored] == list(range(1, total + 1))
    assert stored[0].prev_hash == GENESIS_HASH
    assert verify(stored) == (total, None)
    assert sorted(returned, key=lambda r: r.seq) == stored  # each caller got its records


def test_appends_in_one_batch_chain_through_each_other(store: SqliteStores) -> None:
    with holding(store):
        futures = [in_thread(partial(store.append_events, [unsealed(i)], seal)) for i in range(8)]
        queued(store, 8)
    records = [f.result(WAIT)[0] for f in futures]
    assert sorted(r.seq for r in records) == list(range(1, 9))
    assert verify(store.read_events()) == (8, None)


# failures inside a batch


def test_a_failing_op_does_not_affect_the_others_in_its_batch(store: SqliteStores) -> None:
    store.add_workload(workload(0))
    store.add_task(task())

    def bad_seal(event: dict[str, object], seq: int, prev: str) -> AuditRecord:
        raise ValueError("cannot seal")

    with holding(store):
        ok = in_thread(lambda: store.add_workload(workload(1)))
        duplicate = in_thread(lambda: store.add_workload(workload(0)))
        stale = in_thread(
            lambda: store.spend_call("tsk_1", expected_calls_used=7, touched=1, now=NOW)
        )
        spent = in_thread(
            lambda: store.spend_call("tsk_1", expected_calls_used=0, touched=2, now=NOW)
        )
        sealing = in_thread(lambda: store.append_events([unsealed(1)], bad_seal))
        appended = in_thread(lambda: store.append_events([unsealed(2)], seal))
        queued(store, 6)
    assert ok.result(WAIT) is None
    with pytest.raises(Conflict) as info:
        duplicate.result(WAIT)
    assert info.value.reason == "workload.exists"
    assert stale.result(WAIT) is None
    spent_task = spent.result(WAIT)
    assert spent_task is not None
    assert spent_task.calls_used == 1
    with pytest.raises(ValueError, match="cannot seal"):
        sealing.result(WAIT)
    [record] = appended.result(WAIT)
    assert (record.seq, record.prev_hash) == (1, GENESIS_HASH)  # the failed append left no row
    assert [w.spiffe_id for w in store.list_workloads()] == [
        "spiffe://example.org/w0",
        "spiffe://example.org/w1",
    ]
    assert verify(store.read_events()) == (1, None)


def deferred_fk_tables(store: SqliteStores) -> None:
    def create(conn: Connection) -> None:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (parent_id INTEGER "
            "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )

    writer_of(store).run(create)


def test_a_commit_that_fails_fails_every_op_of_the_batch(store: SqliteStores) -> None:
    store.add_task(task())
    deferred_fk_tables(store)

    def violate(conn: Connection) -> None:  # accepted now, refused by the COMMIT
        conn.execute("INSERT INTO child VALUES (42)")

    with holding(store):
        ops = [
            in_thread(lambda: store.add_workload(workload(1))),
            in_thread(lambda: store.append_events([unsealed(1), unsealed(2)], seal)),
            in_thread(lambda: store.spend_call("tsk_1", expected_calls_used=0, touched=1, now=NOW)),
            in_thread(lambda: store.add_workload(workload(1))),  # a Conflict, were it to commit
            in_thread(lambda: writer_of(store).run(violate)),
        ]
        queued(store, len(ops))
    reasons = []
    for future in ops:
        with pytest.raises(Unavailable) as info:
            future.result(WAIT)
        reasons.append(info.value.reason)
    assert reasons == ["store.write", "audit.write", "store.write", "store.write", "store.write"]
    # nothing of the batch is durable, and the store goes on working
    assert store.list_workloads() == []
    assert store.read_events() == []
    current = store.get_task("tsk_1")
    assert current is not None
    assert current.calls_used == 0
    assert raw(store.path, "SELECT COUNT(*) FROM child") == [(0,)]
    assert store.writer_stats().failed_commits == 1
    store.add_workload(workload(2))
    [record] = store.append_events([unsealed(3)], seal)
    assert record.seq == 1


def test_a_disk_write_failure_at_commit_is_unavailable(
    store: SqliteStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_workload(workload(0))  # the writer has its connection now
    writer = writer_of(store)

    def failing_commit(_conn: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    entered, release = threading.Event(), threading.Event()

    def hold_the_writer(_conn: object) -> bool:
        entered.set()
        return release.wait(WAIT)

    held = writer_of(store).submit(hold_the_writer, wake=True)
    assert entered.wait(WAIT)
    monkeypatch.setattr(writer, "_commit", failing_commit)
    ops = [
        in_thread(lambda: store.add_workload(workload(1))),
        in_thread(lambda: store.append_events([unsealed(1)], seal)),
        in_thread(lambda: store.add_task(task())),
    ]
    queued(store, len(ops))
    release.set()
    for future in [held, *ops]:
        with pytest.raises(Unavailable):
            future.result(WAIT)
    monkeypatch.undo()
    assert [w.spiffe_id for w in store.list_workloads()] == ["spiffe://example.org/w0"]
    assert store.read_events() == []
    assert store.get_task("tsk_1") is None
    store.add_workload(workload(2))  # the writer recovered
    assert len(store.list_workloads()) == 2


def test_an_op_error_is_the_callers_and_the_writer_goes_on(store: SqliteStores) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        writer_of(store).run(lambda conn: conn.execute("SELECT * FROM missing"))
    store.add_workload(workload(1))
    assert len(store.list_workloads()) == 1


# reads alongside the writer


def test_reads_do_not_wait_for_an_open_write_transaction(store: SqliteStores) -> None:
    store.add_workload(workload(0))
    with holding(store):
        # the writer holds BEGIN IMMEDIATE; a read that took the write lock would block
        assert len(store.list_workloads()) == 1
        assert store.get_task("unknown") is None
        assert store.read_events() == []


def test_a_task_read_waits_for_queued_writes_to_that_task(store: SqliteStores) -> None:
    store.add_task(task())
    store.add_task(task("tsk_2"))
    with holding(store):
        spend = in_thread(
            lambda: store.spend_call("tsk_1", expected_calls_used=0, touched=1, now=NOW)
        )
        queued(store, 1)
        read = in_thread(lambda: store.get_task("tsk_1"))
        other = store.get_task("tsk_2")  # no write queued for it: answered at once
        assert other is not None
        with pytest.raises(TimeoutError):  # waits for the spend queued before it
            read.result(timeout=0.2)
    assert spend.result(WAIT) is not None
    seen = read.result(WAIT)
    assert seen is not None
    assert seen.calls_used == 1


# close


def test_close_commits_what_is_queued_then_refuses(db: Path) -> None:
    store = SqliteStores(db)
    with holding(store):
        futures = [in_thread(partial(store.add_workload, workload(i))) for i in range(10)]
        queued(store, 10)
        closing_ = in_thread(store.close)
        for _ in range(200):
            if writer_of(store)._closing:
                break
            threading.Event().wait(0.005)
        assert writer_of(store)._closing
        assert not closing_.done()  # close() waits for the queued writes
    for future in futures:
        assert future.result(WAIT) is None
    closing_.result(WAIT)
    assert not writer_of(store)._thread.is_alive()
    with pytest.raises(Unavailable) as info:
        store.add_workload(workload(99))
    assert info.value.reason == "store.closed"
    store.close()  # idempotent
    reopened = SqliteStores(db)
    try:
        assert len(reopened.list_workloads()) == 10
    finally:
        reopened.close()


def test_a_closed_store_refuses_audit_appends(db: Path) -> None:
    store = SqliteStores(db)
    store.close()
    with pytest.raises(Unavailable) as info:
        store.append_events([unsealed(1)], seal)
    assert info.value.reason == "audit.write"
    with pytest.raises(Unavailable):
        store.append_events_later([unsealed(1)], seal)


def test_max_batch_must_be_positive(db: Path) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitWriter(lambda: pytest.fail("never connects"), max_batch=0)
