"""The delegation tree of the task store, on every backend (see ``conftest.BACKENDS``):
carving a child's budget out of its parent, listing children, and ending a whole tree
atomically. Every refusal has its twin that is accepted."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from zerolane.errors import Conflict
from zerolane.store.ports import Stores
from zerolane.store.records import TaskRecord
from zerolane.types import TaskState

NOW = 1_800_000_000.0


def task(
    task_id: str = "tsk_root",
    *,
    parent: TaskRecord | None = None,
    max_calls: int = 10,
    expires_at: float = NOW + 600,
    created_at: float = NOW,
) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        owner="spiffe://example.org/agents/a1",
        playbook="reports",
        playbook_version=1,
        intent="Summarize",
        scope='{"actions":["read"],"ceiling":"internal","destinations":["d"],"resources":["r/*"]}',
        authorization_details="[]",
        jkt="jkt-" + task_id,
        audience=("spiffe://example.org",),
        state=TaskState.ACTIVE,
        created_at=created_at,
        expires_at=expires_at,
        max_calls=max_calls,
        calls_used=0,
        touched=-1,
        token_jti="jti-" + task_id,
        parent_id=parent.task_id if parent else None,
        depth=parent.depth + 1 if parent else 0,
        user_subject=parent.user_subject if parent else None,
        user_issuer=parent.user_issuer if parent else None,
    )


def stored(stores: Stores, task_id: str) -> TaskRecord:
    record = stores.get_task(task_id)
    assert record is not None
    return record


def tree(stores: Stores) -> tuple[TaskRecord, TaskRecord, TaskRecord]:
    """root -> child -> grandchild, each carved from the one above."""
    root = task(max_calls=10)
    stores.add_task(root)
    child = task("tsk_child", parent=root, max_calls=4)
    assert stores.add_child_task(child, now=NOW) is not None
    grandchild = task("tsk_grand", parent=child, max_calls=2)
    assert stores.add_child_task(grandchild, now=NOW) is not None
    return stored(stores, root.task_id), stored(stores, child.task_id), grandchild


# carving ---------------------------------------------------------------------------------


def test_a_child_is_stored_and_its_budget_carved_from_the_parent(stores: Stores) -> None:
    root = task(max_calls=10)
    stores.add_task(root)
    child = task("tsk_child", parent=root, max_calls=4)
    parent = stores.add_child_task(child, now=NOW)
    assert parent is not None
    assert parent.max_calls == 6
    assert stored(stores, root.task_id) == parent
    assert stored(stores, child.task_id) == child


def test_a_child_inherits_what_the_parent_read_as_of_the_carve(stores: Stores) -> None:
    """Regression: a child built before the parent's sensitive read was stored untouched
    (the egress rule then let the child send out what the parent had just read)."""
    root = task(max_calls=10)
    stores.add_task(root)
    child = task("tsk_child", parent=root, max_calls=2)  # built while the root is untouched
    assert stores.spend_call(root.task_id, expected_calls_used=0, touched=2, now=NOW)
    assert stores.add_child_task(child, now=NOW) is not None
    assert stored(stores, child.task_id).touched == 2
    # the twin: a child that starts higher than its parent keeps its own
    higher = dataclasses.replace(task("tsk_other", parent=root, max_calls=1), touched=3)
    assert stores.add_child_task(higher, now=NOW) is not None
    assert stored(stores, "tsk_other").touched == 3


def test_the_parents_whole_remaining_budget_can_be_carved(stores: Stores) -> None:
    root = task(max_calls=10)
    stores.add_task(root)
    spent = stores.spend_call(root.task_id, expected_calls_used=0, touched=1, now=NOW)
    assert spent is not None
    parent = stores.add_child_task(task("tsk_child", parent=root, max_calls=9), now=NOW)
    assert parent is not None
    assert (parent.max_calls, parent.calls_used) == (1, 1)  # nothing left to spend
    assert stores.spend_call(root.task_id, expected_calls_used=1, touched=1, now=NOW) is None


def test_a_child_asking_more_than_the_parent_has_left_is_refused(stores: Stores) -> None:
    root = task(max_calls=10)
    stores.add_task(root)
    assert stores.spend_call(root.task_id, expected_calls_used=0, touched=1, now=NOW)
    assert stores.add_child_task(task("tsk_child", parent=root, max_calls=10), now=NOW) is None
    assert stores.get_task("tsk_child") is None
    assert stored(stores, root.task_id).max_calls == 10  # nothing carved


def test_a_child_outliving_its_parent_is_refused(stores: Stores) -> None:
    root = task(expires_at=NOW + 600)
    stores.add_task(root)
    late = task("tsk_late", parent=root, max_calls=1, expires_at=NOW + 601)
    assert stores.add_child_task(late, now=NOW) is None
    same = task("tsk_same", parent=root, max_calls=1, expires_at=NOW + 600)
    assert stores.add_child_task(same, now=NOW) is not None


@pytest.mark.parametrize("state", [TaskState.COMPLETED, TaskState.REVOKED])
def test_no_child_under_an_ended_parent(stores: Stores, state: TaskState) -> None:
    root = task()
    stores.add_task(root)
    assert stores.end_task(root.task_id, state, NOW, "done") is not None
    assert stores.add_child_task(task("tsk_child", parent=root, max_calls=1), now=NOW) is None
    assert stores.get_task("tsk_child") is None


def test_no_child_under_an_expired_parent(stores: Stores) -> None:
    root = task(expires_at=NOW + 10)
    stores.add_task(root)
    child = task("tsk_child", parent=root, max_calls=1, expires_at=NOW + 10)
    assert stores.add_child_task(child, now=NOW + 10) is None
    assert stores.add_child_task(child, now=NOW + 9) is not None


def test_no_child_under_an_unknown_parent(stores: Stores) -> None:
    orphan = dataclasses.replace(task("tsk_child"), parent_id="tsk_nobody", depth=1)
    assert stores.add_child_task(orphan, now=NOW) is None
    assert stores.get_task("tsk_child") is None


def test_a_child_id_that_exists_is_a_conflict_and_carves_nothing(stores: Stores) -> None:
    root = task(max_calls=10)
    stores.add_task(root)
    stores.add_task(task("tsk_taken"))
    with pytest.raises(Conflict):
        stores.add_child_task(task("tsk_taken", parent=root, max_calls=3), now=NOW)
    assert stored(stores, root.task_id).max_calls == 10


def test_concurrent_children_never_over_commit_the_parent(stores: Stores) -> None:
    root = task(max_calls=10)
    stores.add_task(root)
    barrier = threading.Barrier(8)
    results: list[TaskRecord | None] = []
    lock = threading.Lock()

    def carve(i: int) -> None:
        barrier.wait()
        result = stores.add_child_task(task(f"tsk_c{i}", parent=root, max_calls=3), now=NOW)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=carve, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 3  # 3 x 3 = 9 <= 10 < 4 x 3
    assert stored(stores, root.task_id).max_calls == 1
    assert len(stores.list_children(root.task_id)) == 3


# listing ---------------------------------------------------------------------------------


def test_children_are_listed_oldest_first_and_only_direct_ones(stores: Stores) -> None:
    root = task(max_calls=10)
    stores.add_task(root)
    later = task("tsk_a", parent=root, max_calls=1, created_at=NOW + 2)
    earlier = task("tsk_b", parent=root, max_calls=1, created_at=NOW + 1)
    for child in (later, earlier):
        assert stores.add_child_task(child, now=NOW + 3) is not None
    assert stores.add_child_task(task("tsk_g", parent=earlier, max_calls=1), now=NOW + 3)
    assert [t.task_id for t in stores.list_children(root.task_id)] == ["tsk_b", "tsk_a"]
    assert [t.task_id for t in stores.list_children("tsk_b")] == ["tsk_g"]
    assert stores.list_children("tsk_g") == []
    assert stores.list_children("tsk_nobody") == []


# ending a tree ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "descendant_reason"),
    [(TaskState.COMPLETED, "parent.completed"), (TaskState.REVOKED, "parent.revoked")],
)
def test_ending_a_task_revokes_every_descendant(
    stores: Stores, state: TaskState, descendant_reason: str
) -> None:
    root, child, grandchild = tree(stores)
    ended = stores.end_tree(root.task_id, state, NOW + 5, "why", descendant_reason)
    assert [t.task_id for t in ended] == [root.task_id, child.task_id, grandchild.task_id]
    assert (ended[0].state, ended[0].end_reason, ended[0].ended_at) == (state, "why", NOW + 5)
    for record in ended[1:]:
        assert (record.state, record.end_reason) == (TaskState.REVOKED, descendant_reason)
        assert record.ended_at == NOW + 5
    assert [stored(stores, t.task_id) for t in ended] == ended


def test_ending_a_middle_task_leaves_its_ancestors_alone(stores: Stores) -> None:
    root, child, grandchild = tree(stores)
    ended = stores.end_tree(
        child.task_id, TaskState.COMPLETED, NOW, "completed", "parent.completed"
    )
    assert [t.task_id for t in ended] == [child.task_id, grandchild.task_id]
    assert stored(stores, root.task_id).state is TaskState.ACTIVE


def test_ended_descendants_are_not_ended_again(stores: Stores) -> None:
    root, child, grandchild = tree(stores)
    stores.end_tree(grandchild.task_id, TaskState.COMPLETED, NOW, "completed", "parent.completed")
    ended = stores.end_tree(root.task_id, TaskState.REVOKED, NOW + 1, "revoked", "parent.revoked")
    assert [t.task_id for t in ended] == [root.task_id, child.task_id]
    kept = stored(stores, grandchild.task_id)
    assert (kept.state, kept.end_reason, kept.ended_at) == (TaskState.COMPLETED, "completed", NOW)


def test_an_ended_task_still_sweeps_live_descendants(stores: Stores) -> None:
    root = task(max_calls=10)
    stores.add_task(root)
    # a live child under an ended parent (written before the parent ended, or by
    # an older version): ending the tree again revokes it
    stores.add_task(task("tsk_child", parent=root, max_calls=1))
    assert stores.end_task(root.task_id, TaskState.COMPLETED, NOW, "completed") is not None
    ended = stores.end_tree(root.task_id, TaskState.REVOKED, NOW, "revoked", "parent.revoked")
    assert [(t.task_id, t.end_reason) for t in ended] == [("tsk_child", "parent.revoked")]
    assert stored(stores, root.task_id).state is TaskState.COMPLETED
    assert stores.end_tree(root.task_id, TaskState.REVOKED, NOW, "revoked", "parent.revoked") == []


def test_ending_an_unknown_task_ends_nothing(stores: Stores) -> None:
    assert stores.end_tree("tsk_nobody", TaskState.REVOKED, NOW, "revoked", "parent.revoked") == []


def test_no_descendant_can_spend_after_the_tree_ended(stores: Stores) -> None:
    root, child, grandchild = tree(stores)
    stores.end_tree(root.task_id, TaskState.REVOKED, NOW, "revoked", "parent.revoked")
    for record in (root, child, grandchild):
        assert stores.spend_call(record.task_id, expected_calls_used=0, touched=1, now=NOW) is None


def test_a_child_added_concurrently_with_the_end_is_either_refused_or_ended(
    stores: Stores,
) -> None:
    for round_ in range(20):
        root = task(f"tsk_root{round_}", max_calls=10)
        stores.add_task(root)
        barrier = threading.Barrier(2)
        child = task(f"tsk_child{round_}", parent=root, max_calls=1)

        def add(c: TaskRecord = child, b: threading.Barrier = barrier) -> None:
            b.wait()
            stores.add_child_task(c, now=NOW)

        thread = threading.Thread(target=add)
        thread.start()
        barrier.wait()
        stores.end_tree(root.task_id, TaskState.REVOKED, NOW, "revoked", "parent.revoked")
        thread.join()
        added = stores.get_task(child.task_id)
        assert added is None or added.state is TaskState.REVOKED


def test_the_verified_user_is_stored_with_the_task(stores: Stores) -> None:
    root = dataclasses.replace(task(), user_subject="alice", user_issuer="https://idp.example.org")
    stores.add_task(root)
    child = task("tsk_child", parent=root, max_calls=1)
    assert stores.add_child_task(child, now=NOW) is not None
    assert stored(stores, root.task_id).user_subject == "alice"
    assert stored(stores, child.task_id).user_issuer == "https://idp.example.org"


def test_a_spend_decided_before_a_carve_loses_its_compare_and_set(stores: Stores) -> None:
    """A decision made on the parent as it was before a child was carved out of it
    (its ``max_calls``) must not spend: the decider re-reads and decides again."""
    root = task(max_calls=10)
    stores.add_task(root)
    assert stores.add_child_task(task("tsk_child", parent=root, max_calls=4), now=NOW)
    stale = stores.spend_call(
        root.task_id, expected_calls_used=0, expected_max_calls=10, touched=1, now=NOW
    )
    assert stale is None
    fresh = stores.spend_call(
        root.task_id, expected_calls_used=0, expected_max_calls=6, touched=1, now=NOW
    )
    assert fresh is not None
    assert (fresh.calls_used, fresh.max_calls) == (1, 6)


def test_what_one_task_of_a_tree_reads_the_whole_tree_has(stores: Stores) -> None:
    """A spend that raises ``touched`` raises it for the root and every descendant in
    the same write; a spend decided on the old value loses its compare-and-set."""
    root = task(max_calls=20)
    stores.add_task(root)
    child = task("tsk_child", parent=root, max_calls=5)
    assert stores.add_child_task(child, now=NOW)
    grandchild = task("tsk_grandchild", parent=child, max_calls=2)
    grandchild = dataclasses.replace(grandchild, depth=2)
    assert stores.add_child_task(grandchild, now=NOW)
    sibling = task("tsk_sibling", parent=root, max_calls=5)
    assert stores.add_child_task(sibling, now=NOW)
    other = task("tsk_other_tree")
    stores.add_task(other)

    read = stores.spend_call(
        grandchild.task_id, expected_calls_used=0, expected_touched=-1, touched=2, now=NOW
    )
    assert read is not None
    assert read.touched == 2
    for member in (root, child, sibling):
        assert stored(stores, member.task_id).touched == 2
    assert stored(stores, other.task_id).touched == -1  # another tree is not touched

    stale = stores.spend_call(
        sibling.task_id, expected_calls_used=0, expected_touched=-1, touched=0, now=NOW
    )
    assert stale is None  # decided before the read was known: must decide again
    fresh = stores.spend_call(
        sibling.task_id, expected_calls_used=0, expected_touched=2, touched=0, now=NOW
    )
    assert fresh is not None
    assert fresh.touched == 2
