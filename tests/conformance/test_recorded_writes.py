"""A state change and its audit events in one write (``RecordedWrites.write_recorded``),
on every backend (see ``conftest.BACKENDS``): both are stored, or neither is. Every
refusal has its twin that is accepted."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.conformance.test_leases import lease
from tests.conformance.test_task_tree import NOW, stored, task
from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SYSTEM, Event
from zerolane.errors import Conflict, Unavailable
from zerolane.store.changes import (
    AddAdminCredential,
    AddChildTask,
    AddJoinToken,
    AddTask,
    AddWorkload,
    ConsumeJoinToken,
    EndTree,
    ExpireTree,
    PutBundle,
    PutPlaybook,
    SetWorkloadStatus,
    TransitionLease,
)
from zerolane.store.ports import Stores
from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeStatus,
    FederatedBundle,
    JoinToken,
    LeaseRecord,
    LeaseState,
    PlaybookRecord,
    TaskRecord,
    Workload,
)
from zerolane.types import Outcome, TaskState, WorkloadStatus

AGENT = "spiffe://example.org/agents/a1"


def event(kind: str, subject: str = "s") -> dict[str, object]:
    return Event(kind, SYSTEM, subject, Outcome.SUCCESS, "ok", NOW).unsealed()


def failing_seal(unsealed: dict[str, object], seq: int, prev_hash: str) -> AuditRecord:
    raise RuntimeError("the audit sink is down")


def kinds(stores: Stores) -> list[str]:
    return [r.kind for r in stores.read_events()]


def chain_ok(stores: Stores) -> int:
    count, broken = verify(stores.read_events())
    assert broken is None
    return count


def opened(_: None) -> list[dict[str, object]]:
    return [event("task.opened")]


def ended(tasks: Sequence[TaskRecord]) -> list[dict[str, object]]:
    return [event(f"task.{t.state.value}", t.task_id) for t in tasks]


# tasks ------------------------------------------------------------------------------------


def test_a_task_is_stored_with_its_event(stores: Stores) -> None:
    stores.write_recorded(AddTask(task()), opened, seal)
    assert stored(stores, "tsk_root").state is TaskState.ACTIVE
    assert kinds(stores) == ["task.opened"]
    assert chain_ok(stores) == 1


def test_a_task_whose_event_cannot_be_sealed_is_not_stored(stores: Stores) -> None:
    with pytest.raises(Unavailable) as err:
        stores.write_recorded(AddTask(task()), opened, failing_seal)
    assert err.value.reason == "audit.write"
    assert stores.get_task("tsk_root") is None
    assert kinds(stores) == []
    # the twin, right after: the store still works and both are written
    stores.write_recorded(AddTask(task()), opened, seal)
    assert stores.get_task("tsk_root") is not None
    assert chain_ok(stores) == 1


def test_a_task_whose_events_cannot_be_built_is_not_stored(stores: Stores) -> None:
    def broken(_: None) -> list[dict[str, object]]:
        raise ValueError("no event")

    with pytest.raises(Unavailable):
        stores.write_recorded(AddTask(task()), broken, seal)
    assert stores.get_task("tsk_root") is None


def test_a_refused_change_appends_no_event(stores: Stores) -> None:
    stores.write_recorded(AddTask(task()), opened, seal)
    with pytest.raises(Conflict):
        stores.write_recorded(AddTask(task()), opened, seal)
    assert kinds(stores) == ["task.opened"]


def test_a_child_is_stored_with_its_event_and_its_carve(stores: Stores) -> None:
    stores.add_task(task(max_calls=10))

    def delegated(parent: TaskRecord | None) -> list[dict[str, object]]:
        return [event("task.delegate")] if parent is not None else []

    child = task("tsk_child", parent=task(), max_calls=4)
    with pytest.raises(Unavailable):
        stores.write_recorded(AddChildTask(child, NOW), delegated, failing_seal)
    assert stores.get_task("tsk_child") is None
    assert stored(stores, "tsk_root").max_calls == 10  # the carve was undone too
    parent = stores.write_recorded(AddChildTask(child, NOW), delegated, seal)
    assert parent is not None
    assert parent.max_calls == 6
    assert stores.get_task("tsk_child") is not None
    assert kinds(stores) == ["task.delegate"]
    # refused (more than the parent has left): no child, no event
    big = task("tsk_big", parent=task(), max_calls=7)
    assert stores.write_recorded(AddChildTask(big, NOW), delegated, seal) is None
    assert kinds(stores) == ["task.delegate"]


def test_a_tree_ends_with_its_events_or_not_at_all(stores: Stores) -> None:
    root = task()
    stores.add_task(root)
    stores.add_child_task(task("tsk_child", parent=root, max_calls=2), now=NOW)
    end = EndTree(root.task_id, TaskState.REVOKED, NOW, "revoked", "parent.revoked")
    with pytest.raises(Unavailable):
        stores.write_recorded(end, ended, failing_seal)
    assert stored(stores, "tsk_root").state is TaskState.ACTIVE
    assert stored(stores, "tsk_child").state is TaskState.ACTIVE
    done = stores.write_recorded(end, ended, seal)
    assert [t.task_id for t in done] == ["tsk_root", "tsk_child"]
    assert kinds(stores) == ["task.revoked", "task.revoked"]
    assert stored(stores, "tsk_child").end_reason == "parent.revoked"


# expiry -----------------------------------------------------------------------------------


def test_expiry_is_recorded_for_the_task_and_its_descendants(stores: Stores) -> None:
    root = task(expires_at=NOW + 60)
    stores.add_task(root)
    stores.add_child_task(task("tsk_child", parent=root, max_calls=2, expires_at=NOW + 30), now=NOW)
    # the twin: at NOW + 59 the root's window is still open; only the child's is over
    early = stores.write_recorded(ExpireTree(root.task_id, NOW + 59), ended, seal)
    assert [t.task_id for t in early] == ["tsk_child"]
    assert stored(stores, "tsk_root").state is TaskState.ACTIVE
    late = stores.write_recorded(ExpireTree(root.task_id, NOW + 60), ended, seal)
    assert [t.task_id for t in late] == ["tsk_root"]
    record = stored(stores, "tsk_root")
    assert (record.state, record.end_reason, record.ended_at) == (
        TaskState.EXPIRED,
        "expired",
        NOW + 60,  # when its window closed, not when it was seen
    )
    assert kinds(stores) == ["task.expired", "task.expired"]
    # once recorded, it stays: nothing more to expire, and nothing else ends it
    assert stores.write_recorded(ExpireTree(root.task_id, NOW + 61), ended, seal) == []
    assert stores.end_tree(root.task_id, TaskState.COMPLETED, NOW, "done", "x") == []


def test_an_expired_task_spends_nothing_even_at_an_earlier_clock(stores: Stores) -> None:
    """The spend's compare-and-set reads the stored state: a clock stepped back (this
    process's or another's) cannot bring a recorded expiry back to life."""
    stores.add_task(task("tsk_twin", expires_at=NOW + 60))
    stores.add_task(task(expires_at=NOW + 60))
    stores.write_recorded(ExpireTree("tsk_root", NOW + 60), ended, seal)
    earlier = NOW + 10  # the clock stepped back inside the window
    assert stores.spend_call("tsk_root", expected_calls_used=0, touched=0, now=earlier) is None
    # the legitimate twin (same window, expiry not recorded) still spends at that time
    assert stores.spend_call("tsk_twin", expected_calls_used=0, touched=0, now=earlier)
    # nor can it get a child
    child = task("tsk_child", parent=task(), max_calls=1, expires_at=NOW + 20)
    assert stores.add_child_task(child, now=earlier) is None


def test_an_expiry_whose_event_fails_is_not_recorded(stores: Stores) -> None:
    stores.add_task(task(expires_at=NOW + 60))
    with pytest.raises(Unavailable):
        stores.write_recorded(ExpireTree("tsk_root", NOW + 60), ended, failing_seal)
    assert stored(stores, "tsk_root").state is TaskState.ACTIVE


def test_expiring_an_unknown_task_writes_nothing(stores: Stores) -> None:
    assert stores.write_recorded(ExpireTree("tsk_nobody", NOW), ended, seal) == []
    assert kinds(stores) == []


# the other changes ------------------------------------------------------------------------


def test_every_other_change_is_undone_with_its_failed_event(stores: Stores) -> None:
    workload = Workload(AGENT, ("k8s:ns:a",), None, WorkloadStatus.ENABLED, NOW, NOW)
    token = JoinToken("a" * 64, AGENT, NOW, NOW + 600)
    playbook = PlaybookRecord("reports", "{}", 1, NOW)
    bundle = FederatedBundle("other.org", "{}", 1, NOW)
    admin = AdminCredential("adm_1", "h" * 64, NOW)
    for change in (
        AddWorkload(workload),
        AddJoinToken(token),
        PutPlaybook(playbook),
        PutBundle(bundle),
        AddAdminCredential(admin),
    ):
        with pytest.raises(Unavailable):
            stores.write_recorded(change, lambda _: [event("x")], failing_seal)
    assert stores.get_workload(AGENT) is None
    assert stores.consume_join_token(token.token_hash, NOW).status is ConsumeStatus.UNKNOWN
    assert stores.get_playbook("reports") is None
    assert stores.get_bundle("other.org") is None
    assert stores.list_admin_credentials() == []
    assert kinds(stores) == []
    # the twins: each stored with its event
    stores.write_recorded(AddWorkload(workload), lambda _: [event("workload.registered")], seal)
    stores.write_recorded(AddJoinToken(token), lambda _: [event("join_token.created")], seal)
    stores.write_recorded(PutPlaybook(playbook), lambda _: [event("playbook.applied")], seal)
    stores.write_recorded(PutBundle(bundle), lambda _: [event("federation.bundle")], seal)
    stores.write_recorded(AddAdminCredential(admin), lambda _: [event("admin.created")], seal)
    assert stores.get_workload(AGENT) == workload
    assert stores.get_playbook("reports") == playbook
    assert stores.get_bundle("other.org") == bundle
    assert stores.list_admin_credentials() == [admin]
    assert len(kinds(stores)) == 5
    assert chain_ok(stores) == 5


def test_a_status_change_and_a_consumed_join_token_are_undone_with_their_event(
    stores: Stores,
) -> None:
    stores.add_workload(Workload(AGENT, ("k8s:ns:a",), None, WorkloadStatus.ENABLED, NOW, NOW))
    stores.add_join_token(JoinToken("a" * 64, AGENT, NOW, NOW + 600))
    disable = SetWorkloadStatus(AGENT, WorkloadStatus.DISABLED, NOW + 1)
    consume = ConsumeJoinToken("a" * 64, NOW + 1)
    with pytest.raises(Unavailable):
        stores.write_recorded(disable, lambda _: [event("workload.disabled")], failing_seal)
    with pytest.raises(Unavailable):
        stores.write_recorded(consume, lambda _: [event("join_token.used")], failing_seal)
    current = stores.get_workload(AGENT)
    assert current is not None
    assert current.status is WorkloadStatus.ENABLED
    updated = stores.write_recorded(disable, lambda _: [event("workload.disabled")], seal)
    assert updated is not None
    assert updated.status is WorkloadStatus.DISABLED
    used = stores.write_recorded(consume, lambda _: [event("join_token.used")], seal)
    assert used.status is ConsumeStatus.CONSUMED  # it was still unused
    assert kinds(stores) == ["workload.disabled", "join_token.used"]


def test_a_lease_transition_is_stored_with_its_event_or_not_at_all(stores: Stores) -> None:
    stores.add_lease(lease())
    revoking = TransitionLease(
        "lse_1", (LeaseState.ACTIVE,), LeaseState.REVOKING, NOW + 1, count_attempt=True
    )

    def moved(done: LeaseRecord | None) -> list[dict[str, object]]:
        return [event("grant.revoke", done.lease_id)] if done is not None else []

    with pytest.raises(Unavailable):
        stores.write_recorded(revoking, moved, failing_seal)
    unchanged = stores.get_lease("lse_1")
    assert unchanged == lease()
    done = stores.write_recorded(revoking, moved, seal)  # the twin
    assert done is not None
    assert (done.state, done.attempts, done.updated_at) == (LeaseState.REVOKING, 1, NOW + 1)
    assert stores.get_lease("lse_1") == done
    # not in ``expected`` any more: nothing written, no event
    assert stores.write_recorded(revoking, moved, seal) is None
    assert kinds(stores) == ["grant.revoke"]
    assert (
        stores.write_recorded(TransitionLease("lse_1", (), LeaseState.REVOKED, NOW), moved, seal)
        is None
    )
