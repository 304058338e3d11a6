"""The lease store suite every backend must pass (see ``conftest.BACKENDS``)."""

from __future__ import annotations

import threading

import pytest

from zerolane.errors import Conflict
from zerolane.store.ports import Stores
from zerolane.store.records import LeaseRecord, LeaseState

NOW = 1_800_000_000.0
ACTIVE, REVOKING, REVOKED, FAILED = (
    LeaseState.ACTIVE,
    LeaseState.REVOKING,
    LeaseState.REVOKED,
    LeaseState.FAILED,
)


def lease(lease_id: str = "lse_1", *, task_id: str = "tsk_1", at: float = NOW) -> LeaseRecord:
    return LeaseRecord(
        lease_id=lease_id,
        task_id=task_id,
        broker="postgres",
        handle=f"zl_{lease_id}",
        state=ACTIVE,
        created_at=at,
        expires_at=at + 300,
        updated_at=at,
    )


def test_added_lease_is_returned_as_stored(stores: Stores) -> None:
    stored = lease()
    stores.add_lease(stored)
    assert stores.get_lease("lse_1") == stored
    assert stores.get_lease("lse_other") is None


def test_adding_a_lease_twice_is_a_conflict(stores: Stores) -> None:
    stores.add_lease(lease())
    with pytest.raises(Conflict) as caught:
        stores.add_lease(lease())
    assert caught.value.reason == "lease.exists"


def test_leases_are_listed_newest_first_and_filtered(stores: Stores) -> None:
    stores.add_lease(lease("lse_a", task_id="tsk_1", at=NOW))
    stores.add_lease(lease("lse_b", task_id="tsk_2", at=NOW + 1))
    stores.add_lease(lease("lse_c", task_id="tsk_1", at=NOW + 2))
    assert [x.lease_id for x in stores.list_leases()] == ["lse_c", "lse_b", "lse_a"]
    assert [x.lease_id for x in stores.list_leases(task_id="tsk_1")] == ["lse_c", "lse_a"]
    assert [x.lease_id for x in stores.list_leases(limit=1)] == ["lse_c"]
    stores.transition_lease("lse_b", expected=(ACTIVE,), state=REVOKED, at=NOW + 3)
    assert [x.lease_id for x in stores.list_leases(state=REVOKED)] == ["lse_b"]
    assert [x.lease_id for x in stores.list_leases(state=ACTIVE, task_id="tsk_1")] == [
        "lse_c",
        "lse_a",
    ]
    assert stores.list_leases(task_id="tsk_none") == []


def test_leases_are_paged_with_before(stores: Stores) -> None:
    stores.add_lease(lease("lse_a", at=NOW))
    stores.add_lease(lease("lse_b", at=NOW + 1))
    stores.add_lease(lease("lse_c", at=NOW + 1))  # same time: the id breaks the tie
    stores.add_lease(lease("lse_d", at=NOW + 2))
    first = stores.list_leases(limit=2)
    assert [x.lease_id for x in first] == ["lse_d", "lse_c"]
    cursor = (first[-1].created_at, first[-1].lease_id)
    assert [x.lease_id for x in stores.list_leases(limit=2, before=cursor)] == ["lse_b", "lse_a"]
    assert stores.list_leases(before=(NOW, "lse_a")) == []


def test_transition_is_compare_and_set(stores: Stores) -> None:
    stores.add_lease(lease())
    claimed = stores.transition_lease(
        "lse_1", expected=(ACTIVE,), state=REVOKING, at=NOW + 5, count_attempt=True, end_reason="r"
    )
    assert claimed is not None
    assert (claimed.state, claimed.attempts, claimed.updated_at) == (REVOKING, 1, NOW + 5)
    assert claimed.end_reason == "r"
    # the same claim a second time finds the lease no longer active
    again = stores.transition_lease("lse_1", expected=(ACTIVE,), state=REVOKING, at=NOW + 6)
    assert again is None
    assert stores.get_lease("lse_1") == claimed
    assert stores.transition_lease("lse_none", expected=(ACTIVE,), state=REVOKED, at=NOW) is None
    assert stores.transition_lease("lse_1", expected=(), state=REVOKED, at=NOW) is None


def test_failure_keeps_its_error_and_schedule_until_replaced(stores: Stores) -> None:
    stores.add_lease(lease())
    stores.transition_lease("lse_1", expected=(ACTIVE,), state=REVOKING, at=NOW, count_attempt=True)
    failed = stores.transition_lease(
        "lse_1",
        expected=(REVOKING,),
        state=FAILED,
        at=NOW + 1,
        error="boom",
        next_attempt_at=NOW + 6,
    )
    assert failed is not None
    assert (failed.state, failed.last_error, failed.next_attempt_at) == (FAILED, "boom", NOW + 6)
    assert failed.end_reason is None
    retried = stores.transition_lease(
        "lse_1", expected=(FAILED,), state=REVOKING, at=NOW + 7, count_attempt=True
    )
    assert retried is not None
    # the last error stays (history) while nothing replaces it; the schedule is cleared
    assert (retried.attempts, retried.last_error, retried.next_attempt_at) == (2, "boom", None)
    done = stores.transition_lease("lse_1", expected=(REVOKING,), state=REVOKED, at=NOW + 8)
    assert done is not None
    assert done.state is REVOKED


def test_due_before_lists_only_scheduled_leases_that_are_due(stores: Stores) -> None:
    for name, due in (("lse_a", NOW + 10), ("lse_b", NOW + 100), ("lse_c", None)):
        stores.add_lease(lease(name))
        stores.transition_lease(
            name, expected=(ACTIVE,), state=FAILED, at=NOW, error="e", next_attempt_at=due
        )
    assert [x.lease_id for x in stores.list_leases(state=FAILED, due_before=NOW + 10)] == ["lse_a"]
    assert {x.lease_id for x in stores.list_leases(state=FAILED, due_before=NOW + 100)} == {
        "lse_a",
        "lse_b",
    }
    assert stores.list_leases(state=FAILED, due_before=NOW) == []
    assert len(stores.list_leases(state=FAILED)) == 3


def test_concurrent_claims_have_exactly_one_winner(stores: Stores) -> None:
    stores.add_lease(lease())
    barrier = threading.Barrier(8)
    wins: list[LeaseRecord] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        won = stores.transition_lease(
            "lse_1", expected=(ACTIVE,), state=REVOKING, at=NOW, count_attempt=True
        )
        if won is not None:
            with lock:
                wins.append(won)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    stored = stores.get_lease("lse_1")
    assert stored is not None
    assert stored.attempts == 1
