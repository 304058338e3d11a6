"""The PostgreSQL backend's decision writer: ``commit_decision`` hands its write to a
thread and returns at once (the event loop is never blocked on a commit), the writes
of a task commit in the order handed over, and ``close()`` commits what was handed
over before it stops. The writer alone first (plain functions), then over a database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
import pytest

from tests.conformance.test_task_tree import NOW, task
from tests.store.pg_schema import SchemaStores, conninfo, drop_schema, new_schema
from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SYSTEM, Event
from zerolane.errors import ProofReplayed, Unavailable
from zerolane.store import ports
from zerolane.store.memory.done import Failed
from zerolane.store.postgres import PostgresStores
from zerolane.store.postgres.decision_writer import DecisionWriter, PendingWrite
from zerolane.store.records import Spend, SpentProof, TaskRecord
from zerolane.types import Outcome

T = TypeVar("T")

#: how long a test waits for something it expects to happen (a failure, never a pause)
PATIENCE = 30.0


@pytest.fixture
def writer() -> Iterator[DecisionWriter]:
    opened = DecisionWriter()
    try:
        yield opened
    finally:
        opened.close()


def _held(gate: threading.Event, value: T) -> Callable[[], T]:
    """A write that waits for ``gate`` (a slow statement), then returns ``value``."""

    def run() -> T:
        assert gate.wait(PATIENCE)
        return value

    return run


def _appends(ran: list[str], item: str) -> Callable[[], None]:
    return lambda: ran.append(item)


# the writer alone


def test_submit_returns_before_the_write_runs_and_result_waits_for_it(
    writer: DecisionWriter,
) -> None:
    gate = threading.Event()
    pending = writer.submit("t", _held(gate, 7))  # returns while the write is held
    waited: list[int] = []
    waiter = threading.Thread(target=lambda: waited.append(pending.result()))
    waiter.start()
    waiter.join(timeout=0.05)
    assert waiter.is_alive()
    assert waited == []
    gate.set()
    waiter.join(PATIENCE)
    assert waited == [7]
    assert pending.result() == 7  # asked again: the same result


def test_writes_run_in_the_order_handed_over(writer: DecisionWriter) -> None:
    gate = threading.Event()
    ran: list[str] = []
    first = writer.submit("a", _held(gate, 0))
    pendings = []
    for n in range(20):
        key = "ab"[n % 2]
        pendings.append(writer.submit(key, _appends(ran, f"{key}{n}")))
    gate.set()
    assert first.result() == 0
    for pending in pendings:
        pending.result()
    assert ran == [f"{'ab'[n % 2]}{n}" for n in range(20)]


def test_a_write_that_raises_gives_its_own_error_and_the_next_runs(
    writer: DecisionWriter,
) -> None:
    def replayed() -> None:
        raise ProofReplayed

    failing = writer.submit("t", replayed)
    after = writer.submit("t", lambda: 1)
    with pytest.raises(ProofReplayed):
        failing.result()
    assert after.result() == 1


def test_a_write_that_does_not_commit_in_time_is_unavailable_not_a_hang() -> None:
    writer = DecisionWriter(wait_seconds=0.01)
    gate = threading.Event()
    try:
        pending = writer.submit("t", _held(gate, 1))
        with pytest.raises(Unavailable) as err:
            pending.result()
        assert err.value.reason == "store.timeout"
        with pytest.raises(Unavailable) as err:
            asyncio.run(pending.result_async())
        assert err.value.reason == "store.timeout"
    finally:
        gate.set()
        writer.close()
    assert pending.result() == 1  # the timed-out wait left the write to commit


def test_result_async_keeps_the_loop_running_while_the_write_is_held(
    writer: DecisionWriter,
) -> None:
    gate = threading.Event()
    pending = writer.submit("t", _held(gate, 5))

    async def main() -> tuple[int, int]:
        waiting = asyncio.create_task(pending.result_async())
        ticks = 0
        for _ in range(50):  # the loop goes on while the write is held
            await asyncio.sleep(0)
            ticks += 1
            assert not waiting.done()
        gate.set()
        return ticks, await waiting

    assert asyncio.run(main()) == (50, 5)


def test_async_errors_are_the_writes_own(writer: DecisionWriter) -> None:
    def replayed() -> None:
        raise ProofReplayed

    with pytest.raises(ProofReplayed):
        asyncio.run(writer.submit("t", replayed).result_async())
    assert asyncio.run(writer.submit("t", lambda: 3).result_async()) == 3


def test_settle_waits_for_the_writes_of_its_key_handed_over_before(
    writer: DecisionWriter,
) -> None:
    writer.settle("nothing")  # no write of it: returns at once
    gate = threading.Event()
    ran: list[str] = []
    held = writer.submit("t", _held(gate, 0))
    writer.submit("t", lambda: ran.append("t"))
    settled = threading.Event()

    def settle() -> None:
        writer.settle("t")
        settled.set()

    reader = threading.Thread(target=settle)
    reader.start()
    assert not settled.wait(0.05)  # the held write of t is not done: the read waits
    gate.set()
    assert settled.wait(PATIENCE)
    assert ran == ["t"]
    assert held.result() == 0
    reader.join(PATIENCE)


def test_close_commits_every_write_handed_over_then_refuses_new_ones() -> None:
    writer = DecisionWriter()
    gate = threading.Event()
    ran: list[str] = []
    accepted: list[PendingWrite[None]] = [writer.submit("t", _held(gate, None))]
    closer = threading.Thread(target=writer.close)
    closer.start()
    refused = None
    for n in range(100_000):  # hand writes over until close() refuses them
        try:
            accepted.append(writer.submit("t", _appends(ran, str(n))))
        except Unavailable as err:
            refused = err
            break
    assert refused is not None
    assert refused.reason == "store.closed"
    assert closer.is_alive()  # close() waits for the held write and those behind it
    gate.set()
    closer.join(PATIENCE)
    assert not closer.is_alive()
    for pending in accepted:
        assert pending.result() is None
    assert ran == [str(n) for n in range(len(accepted) - 1)]  # none lost, in order
    writer.close()  # closing again does nothing


def test_a_writer_thread_that_dies_fails_what_is_left_as_closed() -> None:
    writer = DecisionWriter()
    gate = threading.Event()

    def interrupted() -> None:
        assert gate.wait(PATIENCE)
        raise KeyboardInterrupt

    dying = writer.submit("t", interrupted)
    left = writer.submit("t", lambda: 1)
    gate.set()
    for pending in (dying, left):
        with pytest.raises(Unavailable) as err:
            pending.result()
        assert err.value.reason == "store.closed"
    with pytest.raises(Unavailable):
        writer.submit("t", lambda: 2)
    writer.close()


# over PostgreSQL


@pytest.fixture
def stores() -> Iterator[SchemaStores]:
    opened = SchemaStores(new_schema())
    try:
        yield opened
    finally:
        opened.close()


def _event(name: str) -> dict[str, object]:
    return Event("decision", SYSTEM, "t", Outcome.SUCCESS, "ok", NOW, {"n": name}).unsealed()


def _spend(task_id: str, calls_used: int, proof: str | None = None) -> Spend:
    return Spend(
        task_id=task_id,
        expected_calls_used=calls_used,
        expected_max_calls=100,
        expected_touched=-1,
        touched=-1,  # the task's own: it stays as it is
        now=NOW,
        proof=SpentProof.of(proof, NOW + 60) if proof is not None else None,
    )


@contextmanager
def _row_locked(schema: str, task_id: str) -> Iterator[None]:
    """Hold the task's row locked (another process's transaction, on a thread of its
    own) until the block ends: a spend of it waits until then. A commit that made its
    caller wait would see the lock go only after :data:`PATIENCE`: a failure, not a hang."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(conninfo(schema)) as conn:
            conn.execute("SELECT 1 FROM tasks WHERE task_id = %s FOR UPDATE", (task_id,))
            locked.set()
            release.wait(PATIENCE)
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(PATIENCE)
        yield
    finally:
        release.set()
        holder.join(PATIENCE)


def _stored_calls(schema: str, task_id: str) -> int:
    with psycopg.connect(conninfo(schema), autocommit=True) as conn:
        row = conn.execute("SELECT calls_used FROM tasks WHERE task_id = %s", (task_id,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_commit_decision_returns_before_the_write_commits_and_the_loop_goes_on(
    stores: SchemaStores,
) -> None:
    stores.add_task(task("t", max_calls=100))

    async def main() -> tuple[int, TaskRecord | None]:
        with _row_locked(stores.schema, "t"):
            pending = stores.commit_decision(_spend("t", 0, "p1"), [_event("a")], seal)
            assert _stored_calls(stores.schema, "t") == 0  # handed over, not committed
            waiting = asyncio.create_task(pending.result_async())
            ticks = 0
            for _ in range(50):
                await asyncio.sleep(0)  # the loop is not blocked on the commit
                ticks += 1
            assert not waiting.done()
        return ticks, await waiting

    ticks, spent = asyncio.run(main())
    assert ticks == 50
    assert spent is not None
    assert spent.calls_used == 1
    assert _stored_calls(stores.schema, "t") == 1
    assert verify(stores.read_events()) == (1, None)


def test_writes_of_each_task_commit_in_the_order_handed_over(stores: SchemaStores) -> None:
    tasks = ["gate", "a", "b", "c", "d"]
    for task_id in tasks:
        stores.add_task(task(task_id, max_calls=100))
    per_task = 15
    handed: dict[str, list[ports.PendingWrite[TaskRecord | None]]] = {}
    failures: list[BaseException] = []

    def decider(task_id: str) -> None:
        # as the decider does under the task's lock: each spend expects the one before
        try:
            handed[task_id] = [
                stores.commit_decision(_spend(task_id, n), [_event(f"{task_id}{n}")], seal)
                for n in range(per_task)
            ]
        except BaseException as err:
            failures.append(err)

    with _row_locked(stores.schema, "gate"):
        gate = stores.commit_decision(_spend("gate", 0), [], seal)  # holds the writer
        threads = [threading.Thread(target=decider, args=(t,)) for t in tasks[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)
        assert failures == []
        assert all(_stored_calls(stores.schema, t) == 0 for t in tasks)
    gate_spent = gate.result()
    assert gate_spent is not None
    assert gate_spent.calls_used == 1
    for task_id in tasks[1:]:
        spent = [pending.result() for pending in handed[task_id]]
        assert [s.calls_used if s is not None else None for s in spent] == list(
            range(1, per_task + 1)
        )  # none lost its compare-and-set: each ran after the one before
    assert verify(stores.read_events(limit=1000)) == (4 * per_task, None)


def test_a_replayed_proof_and_a_lost_compare_and_set_come_back_as_before(
    stores: SchemaStores,
) -> None:
    stores.add_task(task("t", max_calls=100))
    first = stores.commit_decision(_spend("t", 0, "p"), [_event("a")], seal)
    replay = stores.commit_decision(_spend("t", 1, "p"), [_event("b")], seal)
    lost = stores.commit_decision(_spend("t", 0), [_event("c")], seal)
    spent = first.result()
    assert spent is not None
    assert spent.calls_used == 1
    with pytest.raises(ProofReplayed):
        replay.result()
    assert lost.result() is None
    current = stores.get_task("t")
    assert current is not None
    assert current.calls_used == 1
    assert verify(stores.read_events()) == (1, None)  # nothing of the refused ones


def test_get_task_sees_the_decisions_handed_over_before_it(stores: SchemaStores) -> None:
    stores.add_task(task("t", max_calls=100))
    with _row_locked(stores.schema, "t"):
        pending = stores.commit_decision(_spend("t", 0), [_event("a")], seal)
    current = stores.get_task("t")  # waits for the handed-over spend, not a snapshot
    assert current is not None
    assert current.calls_used == 1
    assert pending.result() == current


def test_close_commits_the_decisions_handed_over_and_refuses_later_ones() -> None:
    schema = new_schema()
    try:
        stores = PostgresStores(conninfo(schema))
        stores.add_task(task("t", max_calls=100))
        with _row_locked(schema, "t"):
            pendings = [
                stores.commit_decision(_spend("t", n), [_event(f"{n}")], seal) for n in range(3)
            ]
            closer = threading.Thread(target=stores.close)
            closer.start()
            # the writer is held: hand decisions (of a task that is not there) over
            # until close() refuses them; every one accepted before is still committed
            late = [stores.commit_decision(_spend("x", 0), [], seal) for _ in range(1)]
            while not _refused(late[-1]):
                late.append(stores.commit_decision(_spend("x", 0), [], seal))
            assert closer.is_alive()  # close() waits for the held writes
        closer.join(PATIENCE)
        assert not closer.is_alive()
        spent = [pending.result() for pending in pendings]
        assert [s.calls_used if s is not None else None for s in spent] == [1, 2, 3]
        assert [pending.result() for pending in late[:-1]] == [None] * (len(late) - 1)
        assert _stored_calls(schema, "t") == 3  # committed, none lost
        with pytest.raises(Unavailable) as err:
            late[-1].result()
        assert err.value.reason == "store.closed"
        with pytest.raises(Unavailable) as err:
            asyncio.run(late[-1].result_async())
        assert err.value.reason == "store.closed"
    finally:
        drop_schema(schema)


def _refused(pending: object) -> bool:
    """A pending write refused at once (the store is closing): already failed."""
    return isinstance(pending, Failed)


def test_close_called_by_a_write_itself_stops_the_writer_after_that_write() -> None:
    writer = DecisionWriter()
    gate = threading.Event()
    held = writer.submit("t", _held(gate, 0))
    closing = writer.submit("t", writer.close)  # on the writer's thread: no self-join
    behind = writer.submit("t", lambda: 2)
    gate.set()
    assert held.result() == 0
    assert closing.result() is None
    assert behind.result() == 2  # handed over before close(): still committed
    with pytest.raises(Unavailable):
        writer.submit("t", lambda: 3)
    writer.close()
