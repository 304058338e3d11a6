"""Approvals on every backend (see ``conftest.BACKENDS``): asked once per request (the
same request reuses its pending or denied approval), bounded per task, decided and used
compare-and-set, pruned by expiry, each change in the write that appends its events;
task holds placed once and cleared."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conformance.test_recorded_writes import event, failing_seal, kinds
from zerolane.audit.chain import seal
from zerolane.errors import Conflict, Unavailable
from zerolane.store.changes import (
    ClearHold,
    DecideApproval,
    PlaceHold,
    PruneApprovals,
    RequestApproval,
    UseApproval,
)
from zerolane.store.ports import Stores
from zerolane.store.records import ApprovalRecord, ApprovalStatus, TaskHold

APPROVED, DENIED = ApprovalStatus.APPROVED, ApprovalStatus.DENIED


def asked(
    approval_id: str = "a1", *, task: str = "t1", digest: str = "d1", at: float = 10.0
) -> ApprovalRecord:
    return ApprovalRecord(
        approval_id=approval_id,
        task_id=task,
        action="http:POST",
        resource="payments",
        destination="bank.example",
        digest=digest,
        policy_version="v1",
        policies=("approval.payments",),
        requester="spiffe://td/agent",
        status=ApprovalStatus.PENDING,
        created_at=at,
        expires_at=at + 100,
    )


def request(stores: Stores, approval: ApprovalRecord, max_pending: int = 3) -> ApprovalRecord:
    def events(result: ApprovalRecord) -> list[dict[str, object]]:
        return [event("approval.requested")] if result is approval else []

    return stores.write_recorded(RequestApproval(approval, max_pending), events, seal)


def decide(
    stores: Stores, approval_id: str, status: ApprovalStatus, at: float = 20.0
) -> ApprovalRecord | None:
    change = DecideApproval(approval_id, status, "alice", "looks right", at)
    return stores.write_recorded(change, lambda r: [event("approval.granted")] if r else [], seal)


def use(stores: Stores, approval_id: str, at: float = 30.0) -> ApprovalRecord | None:
    change = UseApproval(approval_id, at)
    return stores.write_recorded(change, lambda r: [event("approval.used")] if r else [], seal)


def test_an_approval_is_stored_listed_and_read_back(stores: Stores) -> None:
    assert stores.get_approval("a1") is None
    first = asked()
    assert request(stores, first) == first
    assert stores.get_approval("a1") == first
    request(stores, asked("a2", task="t2", at=11.0))
    assert [a.approval_id for a in stores.list_approvals()] == ["a2", "a1"]
    assert [a.approval_id for a in stores.list_approvals(task_id="t1")] == ["a1"]
    assert stores.list_approvals(status=APPROVED) == []
    assert len(stores.list_approvals(limit=1)) == 1
    assert kinds(stores) == ["approval.requested", "approval.requested"]


def test_the_same_request_reuses_its_pending_approval_and_a_changed_one_does_not(
    stores: Stores,
) -> None:
    request(stores, asked())
    again = request(stores, asked("a2", at=12.0))
    assert again.approval_id == "a1"  # no second approval, no second event
    assert kinds(stores) == ["approval.requested"]
    changed = request(stores, asked("a3", digest="d2", at=12.0))  # other arguments
    assert changed.approval_id == "a3"
    # once the first expired, the same request is asked again
    assert request(stores, asked("a4", at=111.0)).approval_id == "a4"


def test_a_denied_request_stays_denied_until_its_approval_expires(stores: Stores) -> None:
    request(stores, asked())
    assert decide(stores, "a1", DENIED) is not None
    again = request(stores, asked("a2", at=25.0))
    assert (again.approval_id, again.status) == ("a1", DENIED)


def test_pending_approvals_are_bounded_per_task(stores: Stores) -> None:
    for n in range(2):
        request(stores, asked(f"a{n}", digest=f"d{n}"), max_pending=2)
    with pytest.raises(Conflict) as refused:
        request(stores, asked("a9", digest="d9"), max_pending=2)
    assert refused.value.reason == "approval.too_many"
    assert stores.get_approval("a9") is None
    # another task is not held back, nor this one once its approvals expired
    assert request(stores, asked("b1", task="t2"), max_pending=2).approval_id == "b1"
    assert request(stores, asked("a8", digest="d8", at=200.0), max_pending=2).approval_id == "a8"


def test_an_approval_id_is_stored_once(stores: Stores) -> None:
    request(stores, asked())
    with pytest.raises(Conflict) as refused:
        request(stores, asked("a1", digest="other"))
    assert refused.value.reason == "approval.exists"


def test_an_approval_is_decided_once_and_only_while_pending_and_unexpired(
    stores: Stores,
) -> None:
    request(stores, asked())
    assert decide(stores, "nope", APPROVED) is None
    assert decide(stores, "a1", APPROVED, at=110.0) is None  # expired
    granted = decide(stores, "a1", APPROVED)
    assert granted is not None
    assert (granted.status, granted.approver, granted.reason, granted.decided_at) == (
        APPROVED,
        "alice",
        "looks right",
        20.0,
    )
    assert decide(stores, "a1", DENIED) is None  # decided already
    assert stores.get_approval("a1") == granted
    assert [a.approval_id for a in stores.list_approvals(status=APPROVED)] == ["a1"]


def test_an_approved_request_is_found_and_used_exactly_once(stores: Stores) -> None:
    request(stores, asked())
    assert stores.find_approved(asked("x"), 15.0) is None  # pending is not approved
    assert use(stores, "a1") is None
    decide(stores, "a1", APPROVED)
    assert stores.find_approved(asked("x", digest="d2"), 25.0) is None  # other arguments
    assert stores.find_approved(asked("x"), 110.0) is None  # expired
    found = stores.find_approved(asked("x"), 25.0)
    assert found is not None
    assert found.approval_id == "a1"
    used = use(stores, "a1")
    assert used is not None
    assert (used.status, used.used_at) == (ApprovalStatus.USED, 30.0)
    assert use(stores, "a1") is None  # a duplicate gets nothing
    assert stores.find_approved(asked("x"), 31.0) is None
    assert kinds(stores) == ["approval.requested", "approval.granted", "approval.used"]


def test_an_approval_past_its_expiry_is_not_used(stores: Stores) -> None:
    request(stores, asked())
    decide(stores, "a1", APPROVED)
    assert use(stores, "a1", at=110.0) is None
    stored = stores.get_approval("a1")
    assert stored is not None
    assert stored.status_at(110.0) is ApprovalStatus.EXPIRED
    assert stored.status_at(50.0) is APPROVED
    assert dataclasses.replace(stored, status=DENIED).status_at(110.0) is DENIED


def test_a_change_whose_events_fail_is_undone(stores: Stores) -> None:
    with pytest.raises(Unavailable):
        stores.write_recorded(
            RequestApproval(asked(), 3), lambda _: [event("approval.requested")], failing_seal
        )
    assert stores.get_approval("a1") is None
    request(stores, asked())
    with pytest.raises(Unavailable):
        stores.write_recorded(
            DecideApproval("a1", APPROVED, "alice", "ok", 20.0),
            lambda _: [event("approval.granted")],
            failing_seal,
        )
    stored = stores.get_approval("a1")
    assert stored is not None
    assert stored.status is ApprovalStatus.PENDING


def prune(stores: Stores, before: float, limit: int = 100) -> int:
    change = PruneApprovals(before, limit)
    return stores.write_recorded(change, lambda n: [event("approval.pruned")] if n else [], seal)


def test_a_preview_is_stored_and_read_back(stores: Stores) -> None:
    shown = dataclasses.replace(asked(), preview='{"method":"POST","path":"/pay"}')
    request(stores, shown)
    stored = stores.get_approval("a1")
    assert stored is not None
    assert stored.preview == '{"method":"POST","path":"/pay"}'


def test_approvals_expired_before_the_cutoff_are_pruned_and_no_other(stores: Stores) -> None:
    request(stores, asked("old", at=10.0))  # expires at 110
    request(stores, asked("used", digest="d2", at=10.0))
    decide(stores, "used", APPROVED)
    use(stores, "used")
    request(stores, asked("new", digest="d3", at=50.0))  # expires at 150
    assert prune(stores, before=110.0) == 0  # expiring at the cutoff: kept
    assert prune(stores, before=120.0, limit=1) == 1  # at most limit at once
    assert prune(stores, before=120.0) == 1
    assert [a.approval_id for a in stores.list_approvals()] == ["new"]
    assert kinds(stores).count("approval.pruned") == 2
    assert prune(stores, before=120.0) == 0  # nothing left: no event
    assert kinds(stores).count("approval.pruned") == 2


def hold(task: str = "t1", at: float = 5.0) -> TaskHold:
    return TaskHold(task, "hold-probers", "scope_probing", "evt1", at)


def test_a_hold_is_placed_once_listed_and_cleared(stores: Stores) -> None:
    def place(held: TaskHold) -> TaskHold | None:
        return stores.write_recorded(
            PlaceHold(held), lambda r: [event("task.held")] if r else [], seal
        )

    def clear(task: str) -> TaskHold | None:
        return stores.write_recorded(
            ClearHold(task), lambda r: [event("task.released")] if r else [], seal
        )

    assert stores.get_hold("t1") is None
    assert place(hold()) == hold()
    assert place(hold(at=9.0)) is None  # held already: nothing written
    assert place(hold("t0", at=7.0)) is not None
    assert stores.get_hold("t1") == hold()
    assert [h.task_id for h in stores.list_holds()] == ["t1", "t0"]  # oldest first
    assert len(stores.list_holds(limit=1)) == 1
    assert clear("t1") == hold()
    assert clear("t1") is None
    assert [h.task_id for h in stores.list_holds()] == ["t0"]
    assert kinds(stores) == ["task.held", "task.held", "task.released"]
