"""Suspending and resuming a task's subtree (``SuspendTree`` / ``ResumeTree`` through
``RecordedWrites.write_recorded``), on every backend (see ``conftest.BACKENDS``).
Every refusal has its twin that is accepted."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tests.conformance.test_task_tree import NOW, stored, task, tree
from zerolane.audit.chain import seal
from zerolane.audit.events import SYSTEM, Event
from zerolane.store.changes import EndTree, ResumeTree, SuspendTree
from zerolane.store.ports import Stores
from zerolane.store.records import TaskRecord
from zerolane.types import Outcome, TaskState

BELOW = "parent.suspended"


def events(tasks: Sequence[TaskRecord]) -> list[dict[str, object]]:
    return [
        Event(f"task.{t.state.value}", SYSTEM, t.task_id, Outcome.SUCCESS, "ok", NOW).unsealed()
        for t in tasks
    ]


def suspend(stores: Stores, task_id: str, at: float = NOW, reason: str = "admin") -> list[str]:
    done = stores.write_recorded(SuspendTree(task_id, at, reason, BELOW), events, seal)
    return [t.task_id for t in done]


def resume(stores: Stores, task_id: str, at: float = NOW) -> list[str]:
    done = stores.write_recorded(ResumeTree(task_id, at, BELOW), events, seal)
    return [t.task_id for t in done]


def states(stores: Stores, *ids: str) -> list[tuple[TaskState, str | None]]:
    return [(stored(stores, i).state, stored(stores, i).end_reason) for i in ids]


def test_suspending_a_task_suspends_its_live_subtree_with_its_events(stores: Stores) -> None:
    root, child, grand = tree(stores)
    ids = (root.task_id, child.task_id, grand.task_id)
    assert suspend(stores, root.task_id, reason="risk.high") == list(ids)
    assert states(stores, *ids) == [
        (TaskState.SUSPENDED, "risk.high"),
        (TaskState.SUSPENDED, BELOW),
        (TaskState.SUSPENDED, BELOW),
    ]
    for task_id in ids:  # neither ended nor moved in time
        assert stored(stores, task_id).ended_at is None
    assert stored(stores, root.task_id).expires_at == root.expires_at
    assert [(r.kind, i in r.body) for r, i in zip(stores.read_events(), ids, strict=True)] == [
        ("task.suspended", True)
    ] * 3
    # nothing of the tree can spend while suspended
    for task_id in ids:
        assert stores.spend_call(task_id, expected_calls_used=0, touched=1, now=NOW) is None


def test_resuming_restores_what_was_suspended_with_it(stores: Stores) -> None:
    root, child, grand = tree(stores)
    ids = (root.task_id, child.task_id, grand.task_id)
    suspend(stores, root.task_id)
    assert resume(stores, root.task_id, NOW + 1) == list(ids)
    assert states(stores, *ids) == [(TaskState.ACTIVE, None)] * 3
    spent = stores.spend_call(grand.task_id, expected_calls_used=0, touched=1, now=NOW + 1)
    assert spent is not None
    assert [r.kind for r in stores.read_events()][-3:] == ["task.active"] * 3


def test_only_an_active_unexpired_task_is_suspended(stores: Stores) -> None:
    root, child, _ = tree(stores)
    assert suspend(stores, "tsk_nobody") == []
    assert suspend(stores, root.task_id, at=root.expires_at) == []  # its window is over
    assert stored(stores, child.task_id).state is TaskState.ACTIVE  # nothing below either
    assert suspend(stores, root.task_id) != []
    assert suspend(stores, root.task_id) == []  # already suspended
    stores.write_recorded(
        EndTree(root.task_id, TaskState.REVOKED, NOW, "revoked", "parent.revoked"), events, seal
    )
    assert suspend(stores, root.task_id) == []  # ended
    assert resume(stores, root.task_id) == []
    assert stored(stores, root.task_id).state is TaskState.REVOKED
    assert stores.read_events()[-1].kind == "task.revoked"  # nothing recorded after


def test_a_suspended_task_can_still_be_revoked_with_its_subtree(stores: Stores) -> None:
    root, child, grand = tree(stores)
    suspend(stores, root.task_id)
    ended = stores.end_tree(root.task_id, TaskState.REVOKED, NOW, "revoked", "parent.revoked")
    assert [t.task_id for t in ended] == [root.task_id, child.task_id, grand.task_id]
    assert all(t.state is TaskState.REVOKED for t in ended)


def test_suspending_a_middle_task_leaves_its_ancestors_alone(stores: Stores) -> None:
    root, child, grand = tree(stores)
    assert suspend(stores, child.task_id) == [child.task_id, grand.task_id]
    assert stored(stores, root.task_id).state is TaskState.ACTIVE
    assert resume(stores, child.task_id) == [child.task_id, grand.task_id]


def test_a_child_suspended_on_its_own_stays_suspended_when_its_parent_resumes(
    stores: Stores,
) -> None:
    root, child, grand = tree(stores)
    sibling = task("tsk_sibling", parent=root, max_calls=1)
    assert stores.add_child_task(sibling, now=NOW) is not None
    assert suspend(stores, child.task_id, reason="probing") == [child.task_id, grand.task_id]
    # the root's suspension takes only what was still active
    assert suspend(stores, root.task_id) == [root.task_id, sibling.task_id]
    assert resume(stores, root.task_id) == [root.task_id, sibling.task_id]
    assert states(stores, child.task_id, grand.task_id) == [
        (TaskState.SUSPENDED, "probing"),
        (TaskState.SUSPENDED, BELOW),  # suspended with the child, resumed with it
    ]
    assert resume(stores, child.task_id) == [child.task_id, grand.task_id]


def test_a_task_whose_parent_is_suspended_cannot_be_resumed_alone(stores: Stores) -> None:
    root, child, grand = tree(stores)
    suspend(stores, root.task_id)
    assert resume(stores, child.task_id) == []
    assert resume(stores, grand.task_id) == []
    assert stored(stores, child.task_id).state is TaskState.SUSPENDED
    # the twin: once the parent is back, a child suspended on its own can be resumed
    resume(stores, root.task_id)
    suspend(stores, grand.task_id)
    assert resume(stores, grand.task_id) == [grand.task_id]


def test_an_expired_task_is_not_resumed_nor_what_expired_below_it(stores: Stores) -> None:
    root = task(max_calls=10, expires_at=NOW + 600)
    stores.add_task(root)
    short = task("tsk_short", parent=root, max_calls=1, expires_at=NOW + 10)
    long = task("tsk_long", parent=root, max_calls=1, expires_at=NOW + 600)
    for child in (short, long):
        assert stores.add_child_task(child, now=NOW) is not None
    suspend(stores, root.task_id)
    assert resume(stores, root.task_id, at=NOW + 600) == []  # the root's window is over
    assert resume(stores, root.task_id, at=NOW + 10) == [root.task_id, long.task_id]
    assert stored(stores, short.task_id).state is TaskState.SUSPENDED  # due to expire


def test_suspension_skips_descendants_already_past_their_window(stores: Stores) -> None:
    root = task(max_calls=10, expires_at=NOW + 600)
    stores.add_task(root)
    short = dataclasses.replace(task("tsk_short", parent=root, max_calls=1), expires_at=NOW + 5)
    assert stores.add_child_task(short, now=NOW) is not None
    assert suspend(stores, root.task_id, at=NOW + 5) == [root.task_id]
    assert stored(stores, short.task_id).state is TaskState.ACTIVE  # expired: left alone
