"""Many writers over one PostgreSQL database: stores opened side by side (each its own
pool of connections, as separate processes have) and real separate processes. The
audit chain stays one verifiable chain, a budget is spent exactly, and a delegation
tree changed from every side never loses a child or deadlocks."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conformance.test_task_tree import task
from tests.store.pg_schema import conninfo, drop_schema, new_schema
from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SYSTEM, Event
from zerolane.store.postgres import PostgresStores
from zerolane.store.records import Spend, SpentProof, TaskRecord
from zerolane.types import Outcome, TaskState

NOW = 1_800_000_000.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two() -> Iterator[tuple[PostgresStores, PostgresStores]]:
    """Two stores over one schema: two processes of a deployment."""
    schema = new_schema()
    first = PostgresStores(conninfo(schema))
    second = PostgresStores(conninfo(schema))
    try:
        yield first, second
    finally:
        first.close()
        second.close()
        drop_schema(schema)


def _event(name: str) -> dict[str, object]:
    return Event("decision", SYSTEM, "t", Outcome.SUCCESS, "ok", NOW, {"n": name}).unsealed()


def _run(workers: list[Callable[[], None]]) -> None:
    """Start ``workers`` together, wait for them, raise the first error of any."""
    start = threading.Barrier(len(workers))
    failures: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            start.wait(timeout=30)
            work()
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    if failures:
        raise failures[0]


def test_writers_over_two_stores_keep_one_chain(
    two: tuple[PostgresStores, PostgresStores],
) -> None:
    def writer(stores: PostgresStores, name: str) -> Callable[[], None]:
        def work() -> None:
            for n in range(10):
                batch = [_event(f"{name}-{n}-{i}") for i in range(1 + n % 2)]
                stores.append_events(batch, seal)

        return work

    _run([writer(two[i % 2], f"w{i}") for i in range(6)])
    records = two[0].read_events(limit=10_000)
    assert len(records) == 6 * 15
    assert verify(records) == (90, None)
    assert [r.seq for r in records] == list(range(1, 91))
    assert two[1].last_event() == records[-1]


_APPENDER = """
import sys
from zerolane.audit.chain import seal
from zerolane.audit.events import SYSTEM, Event
from zerolane.store.postgres import PostgresStores
from zerolane.types import Outcome

stores = PostgresStores(sys.argv[1])
for n in range(25):
    event = Event("decision", SYSTEM, "t", Outcome.SUCCESS, "ok", 0.0, {"p": sys.argv[2], "n": n})
    stores.append_events([event.unsealed()], seal)
stores.close()
"""


def test_separate_processes_appending_keep_one_verifiable_chain() -> None:
    schema = new_schema()
    try:
        PostgresStores(conninfo(schema)).close()  # migrated before they start
        processes = [
            subprocess.Popen([sys.executable, "-c", _APPENDER, conninfo(schema), f"p{i}"], cwd=ROOT)
            for i in range(3)
        ]
        assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
        reader = PostgresStores(conninfo(schema))
        try:
            records = reader.read_events(limit=1000)
        finally:
            reader.close()
        assert verify(records) == (75, None)
    finally:
        drop_schema(schema)


def test_concurrent_spenders_over_two_stores_spend_exactly_the_budget(
    two: tuple[PostgresStores, PostgresStores],
) -> None:
    budget = 7
    two[0].add_task(task("t", max_calls=budget))
    allowed: list[TaskRecord] = []
    lock = threading.Lock()

    def spender(stores: PostgresStores, name: str, rank: int) -> Callable[[], None]:
        def work() -> None:
            for attempt in range(200):
                current = stores.get_task("t")
                assert current is not None
                if current.calls_used >= current.max_calls:
                    return
                spend = Spend(
                    task_id="t",
                    expected_calls_used=current.calls_used,
                    expected_max_calls=current.max_calls,
                    expected_touched=current.touched,
                    touched=max(current.touched, rank),  # some raise it: the tree's lock
                    now=NOW,
                    proof=SpentProof.of(f"jkt:{name}:{attempt}", NOW + 60),
                )
                spent = stores.commit_decision(spend, [_event(name)], seal).result()
                if spent is not None:
                    with lock:
                        allowed.append(spent)

        return work

    _run([spender(two[i % 2], f"s{i}", i % 3) for i in range(8)])
    assert len(allowed) == budget
    assert sorted(t.calls_used for t in allowed) == list(range(1, budget + 1))
    stored = two[1].get_task("t")
    assert stored is not None
    assert (stored.calls_used, stored.max_calls) == (budget, budget)
    records = two[1].read_events()
    assert verify(records) == (budget, None)  # one event per allowed call, one chain


def _tree(stores: PostgresStores, children: int) -> list[str]:
    root = task("root", max_calls=1000)
    stores.add_task(root)
    ids = []
    for i in range(children):
        child = task(f"c{i}", parent=root, max_calls=100)
        assert stores.add_child_task(child, now=NOW) is not None
        ids.append(child.task_id)
    return ids


def _whole_tree(stores: PostgresStores) -> list[TaskRecord]:
    found: list[TaskRecord] = []
    todo = ["root"]
    while todo:
        current = stores.get_task(todo.pop())
        assert current is not None
        found.append(current)
        todo.extend(child.task_id for child in stores.list_children(current.task_id))
    return found


def test_raises_and_new_children_of_one_tree_never_miss_each_other(
    two: tuple[PostgresStores, PostgresStores],
) -> None:
    children = _tree(two[0], 4)

    def raiser(stores: PostgresStores, task_id: str) -> Callable[[], None]:
        def work() -> None:
            for rank in range(1, 6):
                for _ in range(50):  # re-read and spend again when another won
                    current = stores.get_task(task_id)
                    assert current is not None
                    spent = stores.spend_call(
                        task_id,
                        expected_calls_used=current.calls_used,
                        expected_touched=current.touched,
                        touched=rank,
                        now=NOW,
                    )
                    if spent is not None or current.touched >= rank:
                        break

        return work

    def adder(stores: PostgresStores, parent_id: str) -> Callable[[], None]:
        def work() -> None:
            parent = stores.get_task(parent_id)
            assert parent is not None
            for n in range(6):
                grandchild = task(f"{parent_id}-g{n}", parent=parent, max_calls=1)
                assert stores.add_child_task(grandchild, now=NOW) is not None

        return work

    workers = [raiser(two[i % 2], c) for i, c in enumerate(children)]
    workers += [adder(two[(i + 1) % 2], c) for i, c in enumerate(children)]
    _run(workers)
    tree = _whole_tree(two[0])
    assert len(tree) == 1 + 4 + 4 * 6
    assert {t.touched for t in tree} == {5}  # what one task read, the whole tree has


def test_ending_a_tree_while_children_are_added_leaves_nothing_live(
    two: tuple[PostgresStores, PostgresStores],
) -> None:
    children = _tree(two[0], 3)

    def adder(stores: PostgresStores, parent_id: str) -> Callable[[], None]:
        def work() -> None:
            parent = stores.get_task(parent_id)
            assert parent is not None
            for n in range(10):
                stores.add_child_task(
                    task(f"{parent_id}-g{n}", parent=parent, max_calls=1), now=NOW
                )

        return work

    def ender() -> None:
        ended = two[1].end_tree("root", TaskState.REVOKED, NOW, "revoked", "parent_revoked")
        assert ended[0].task_id == "root"

    _run([adder(two[i % 2], c) for i, c in enumerate(children)] + [ender])
    tree = _whole_tree(two[0])
    assert len(tree) >= 4
    assert {t.state for t in tree} == {TaskState.REVOKED}
