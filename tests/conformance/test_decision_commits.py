"""``DecisionStore.commit_decision``: an allowed decision's spend (compare-and-set), its
spent proof and its audit event are stored together, or nothing of them is. Every
backend; the coming PostgreSQL backend is one more entry in ``conftest.BACKENDS``."""

from __future__ import annotations

import json

import pytest

from tests.conformance.test_spent_proofs import NOW, _task
from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SYSTEM, Event
from zerolane.errors import ProofReplayed, Unavailable
from zerolane.store.ports import Stores
from zerolane.store.records import AuditRecord, Spend, SpentProof, TaskRecord
from zerolane.types import Outcome


def _event(name: str) -> dict[str, object]:
    return Event("decision", SYSTEM, "t1", Outcome.SUCCESS, "ok", NOW, {"name": name}).unsealed()


def _spend(expected: int = 0, proof: SpentProof | None = None, touched: int = 2) -> Spend:
    return Spend(
        task_id="t1",
        expected_calls_used=expected,
        expected_max_calls=10,
        expected_touched=0 if expected == 0 else touched,
        touched=touched,
        now=NOW,
        proof=proof,
    )


def _commit(stores: Stores, spend: Spend, name: str = "allow") -> TaskRecord | None:
    return stores.commit_decision(spend, [_event(name)], seal).result()


def _stored(stores: Stores) -> TaskRecord:
    task = stores.get_task("t1")
    assert task is not None
    return task


def _names(stores: Stores) -> list[object]:
    records = stores.read_events()
    assert verify(records)[1] is None
    return [_details(record)["name"] for record in records]


def _details(record: AuditRecord) -> dict[str, object]:
    body = json.loads(record.body)
    assert isinstance(body["details"], dict)
    return body["details"]


def test_an_allow_commits_its_spend_proof_and_event_together(stores: Stores) -> None:
    stores.add_task(_task())
    proof = SpentProof.of("jkt:allow", NOW + 60)
    spent = _commit(stores, _spend(proof=proof))
    assert spent is not None
    assert (spent.calls_used, spent.touched) == (1, 2)
    assert _stored(stores) == spent
    assert _names(stores) == ["allow"]  # sealed onto the chain, which verifies
    assert not stores.spend_proof(proof, NOW)  # the proof was spent with it
    # the twin: the next decision, expecting this spend, commits too
    assert _commit(stores, _spend(1, SpentProof.of("jkt:next", NOW + 60)), "next") is not None
    assert _names(stores) == ["allow", "next"]


def test_a_lost_compare_and_set_stores_nothing(stores: Stores) -> None:
    stores.add_task(_task())
    proof = SpentProof.of("jkt:lost", NOW + 60)
    assert _commit(stores, _spend(expected=3, proof=proof)) is None
    assert _stored(stores).calls_used == 0
    assert stores.read_events() == []
    assert _commit(stores, _spend(proof=proof)) is not None  # the same proof, decided again


def test_a_replayed_proof_stores_nothing_and_raises(stores: Stores) -> None:
    stores.add_task(_task())
    proof = SpentProof.of("jkt:replayed", NOW + 60)
    assert stores.spend_proof(proof, NOW)  # spent elsewhere first
    write = stores.commit_decision(_spend(proof=proof), [_event("replayed")], seal)
    with pytest.raises(ProofReplayed):
        write.result()
    assert _stored(stores).calls_used == 0
    assert stores.read_events() == []
    assert _commit(stores, _spend(proof=SpentProof.of("jkt:fresh", NOW + 60))) is not None


def test_a_failing_audit_append_undoes_the_spend(stores: Stores) -> None:
    stores.add_task(_task())
    proof = SpentProof.of("jkt:unsealed", NOW + 60)

    def broken(event: dict[str, object], seq: int, prev: str) -> AuditRecord:
        raise OSError("disk full")

    with pytest.raises(Unavailable) as info:
        stores.commit_decision(_spend(proof=proof), [_event("broken")], broken).result()
    assert info.value.reason == "audit.write"
    assert (_stored(stores).calls_used, _stored(stores).touched) == (0, 0)
    assert stores.read_events() == []
    assert stores.spend_proof(proof, NOW)  # not spent either


def test_writes_of_one_task_apply_in_the_order_they_were_handed_over(stores: Stores) -> None:
    """The pipelined hot path: the next decision is handed over before this one is
    known to be durable, its compare-and-set expecting this spend."""
    stores.add_task(_task())
    first = stores.commit_decision(_spend(0), [_event("first")], seal)
    second = stores.commit_decision(_spend(1), [_event("second")], seal)
    lost = stores.commit_decision(_spend(1), [_event("lost")], seal)  # a wrong guess
    spent = second.result()
    assert first.result() is not None
    assert spent is not None
    assert lost.result() is None
    assert spent.calls_used == 2
    assert _names(stores) == ["first", "second"]


def test_a_spend_with_no_events_is_the_spend_alone(stores: Stores) -> None:
    stores.add_task(_task())
    assert stores.commit_decision(_spend(), [], seal).result() is not None
    assert _stored(stores).calls_used == 1
    assert stores.read_events() == []
