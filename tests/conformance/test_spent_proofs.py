"""Spent one-time proofs: every backend remembers them, and a decision's spend takes
its proof in the same write (a proof spent before undoes the spend; a decision's
commit with its event: ``test_decision_commits``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerolane.errors import ProofReplayed
from zerolane.store.ports import Stores
from zerolane.store.records import SpentProof, TaskRecord
from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.proofs import MAX_STEP_BACK
from zerolane.types import TaskState

NOW = 1_000_000.0


def _task(task_id: str = "t1") -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        owner="spiffe://example.org/agent",
        playbook="reports",
        playbook_version=1,
        intent="intent",
        scope="{}",
        authorization_details="[]",
        jkt="jkt",
        audience=("spiffe://example.org",),
        state=TaskState.ACTIVE,
        created_at=NOW - 10,
        expires_at=NOW + 600,
        max_calls=10,
        calls_used=0,
        touched=0,
        token_jti=f"jti-{task_id}",
    )


def _spend(stores: Stores, proof: SpentProof | None, expected: int = 0) -> TaskRecord | None:
    return stores.spend_call("t1", expected_calls_used=expected, touched=1, now=NOW, proof=proof)


def test_a_proof_is_spent_once(stores: Stores) -> None:
    proof = SpentProof.of("jkt:one", NOW + 60)
    assert stores.spend_proof(proof, NOW)
    assert not stores.spend_proof(proof, NOW)
    assert not stores.spend_proof(proof, NOW + 59)
    # the twin: another proof of the same key is new
    assert stores.spend_proof(SpentProof.of("jkt:two", NOW + 60), NOW)


def test_an_expired_proof_is_never_new(stores: Stores) -> None:
    assert not stores.spend_proof(SpentProof.of("jkt:old", NOW), NOW)
    assert not stores.spend_proof(SpentProof.of("jkt:old", NOW - 1), NOW)


def test_a_proof_is_remembered_until_it_expires_even_after_purges(stores: Stores) -> None:
    kept = SpentProof.of("jkt:kept", NOW + 60)
    assert stores.spend_proof(kept, NOW)
    for step in range(1, 60, 5):  # purges run along the way: only expired rows go
        assert stores.spend_proof(SpentProof.of(f"jkt:filler{step}", NOW + step + 1), NOW + step)
        assert not stores.spend_proof(kept, NOW + step)


def test_a_spend_takes_its_proof_in_the_same_write(stores: Stores) -> None:
    stores.add_task(_task())
    proof = SpentProof.of("jkt:call", NOW + 60)
    spent = _spend(stores, proof)
    assert spent is not None
    assert spent.calls_used == 1
    assert not stores.spend_proof(proof, NOW)  # spent with the call

    with pytest.raises(ProofReplayed):
        _spend(stores, proof, expected=1)
    task = stores.get_task("t1")
    assert task is not None
    assert task.calls_used == 1
    # the twin: a new proof spends the next call
    assert _spend(stores, SpentProof.of("jkt:next", NOW + 60), expected=1) is not None


def test_a_spend_that_loses_its_compare_and_set_leaves_the_proof_unspent(stores: Stores) -> None:
    stores.add_task(_task())
    proof = SpentProof.of("jkt:lost", NOW + 60)
    assert _spend(stores, proof, expected=5) is None
    assert _spend(stores, proof, expected=0) is not None  # decided again: same proof, spent


def test_a_proof_spent_elsewhere_makes_the_spend_fail_whole(stores: Stores) -> None:
    stores.add_task(_task())
    proof = SpentProof.of("jkt:elsewhere", NOW + 60)
    assert stores.spend_proof(proof, NOW)
    with pytest.raises(ProofReplayed):
        _spend(stores, proof)
    task = stores.get_task("t1")
    assert task is not None
    assert (task.calls_used, task.touched) == (0, 0)


def test_processes_over_one_database_share_what_was_spent(tmp_path: Path) -> None:
    """Two stores over one SQLite file (two processes of a deployment, or one process
    before and after a restart) see each other's spent proofs."""
    first = SqliteStores(tmp_path / "z.db")
    proof = SpentProof.of("jkt:shared", NOW + 60)
    try:
        first.add_task(_task())
        assert first.spend_call("t1", expected_calls_used=0, touched=1, now=NOW, proof=proof)
    finally:
        first.close()
    second = SqliteStores(tmp_path / "z.db")
    try:
        with pytest.raises(ProofReplayed):
            second.spend_call("t1", expected_calls_used=1, touched=1, now=NOW, proof=proof)
        assert not second.spend_proof(proof, NOW)
        assert second.spend_proof(SpentProof.of("jkt:fresh", NOW + 60), NOW)
    finally:
        second.close()


def test_a_purged_proof_stays_refused_by_a_process_whose_clock_is_behind(
    tmp_path: Path,
) -> None:
    """Review finding (clock stepper): once purged, a proof was new again to a store
    opened later with an earlier clock (the clock stepped back, then a restart)."""
    first = SqliteStores(tmp_path / "z.db")
    captured = SpentProof.of("jkt:captured", NOW + 60)
    try:
        assert first.spend_proof(captured, NOW)
        assert first.spend_proof(SpentProof.of("jkt:later", NOW + 121), NOW + 61)  # purges
    finally:
        first.close()
    restarted = SqliteStores(tmp_path / "z.db")
    try:
        assert not restarted.spend_proof(captured, NOW + 21)  # 40 s behind the purge
        # the twin: a proof made at the earlier clock is new
        assert restarted.spend_proof(SpentProof.of("jkt:fresh", NOW + 81), NOW + 21)
        # a clock far behind (set far ahead, then corrected): no lasting refusal
        far = NOW + 61 - MAX_STEP_BACK - 60
        assert restarted.spend_proof(SpentProof.of("jkt:far", far + 60), far)
    finally:
        restarted.close()
