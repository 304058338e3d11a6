"""Risk score rows on every backend (see ``conftest.BACKENDS``): written only with the
responder's cursor, in the same write (compare-and-set, all or none), each replacing
its key's score, read by version, the forgotten ones deleted."""

from __future__ import annotations

import pytest

from tests.conformance.test_recorded_writes import event, failing_seal, kinds
from zerolane.audit.chain import seal
from zerolane.errors import Unavailable
from zerolane.store.changes import AdvanceCursors, CursorAdvance, RiskScore
from zerolane.store.ports import Stores


def score(key: str, value: float, version: int, kind: str = "task") -> RiskScore:
    return RiskScore(kind, key, value, 1.0, 100.0 + value, version)


def advance(
    old: int, new: int, *scores: RiskScore, forget_before: float | None = None
) -> AdvanceCursors:
    step = CursorAdvance("response", old, new, "{}", 1.0)
    return AdvanceCursors((step,), scores, forget_before)


def responded(ok: bool) -> list[dict[str, object]]:
    return [event("response")] if ok else []


def test_no_scores_at_first(stores: Stores) -> None:
    assert stores.risk_scores_since(-1) == []


def test_scores_are_written_with_the_cursor_and_read_by_version(stores: Stores) -> None:
    first = (score("tsk_1", 30, 4), score("spiffe://a", 30, 4, "workload"))
    assert stores.write_recorded(advance(0, 4, *first), responded, seal)
    assert sorted(stores.risk_scores_since(-1), key=lambda s: s.kind) == list(first)
    # the next write replaces tsk_1's score and adds tsk_2's; the workload's stays
    assert stores.write_recorded(
        advance(4, 9, score("tsk_1", 60, 9), score("tsk_2", 10, 9)), responded, seal
    )
    assert {(s.key, s.value, s.version) for s in stores.risk_scores_since(4)} == {
        ("tsk_1", 60, 9),
        ("tsk_2", 10, 9),
    }
    assert [s.version for s in stores.risk_scores_since(-1)] == [4, 9, 9]  # by version
    assert stores.risk_scores_since(9) == []
    assert kinds(stores) == ["response", "response"]


def test_a_task_and_a_workload_of_one_name_are_two_scores(stores: Stores) -> None:
    assert stores.write_recorded(
        advance(0, 1, score("x", 10, 1), score("x", 20, 1, "workload")), responded, seal
    )
    assert {(s.kind, s.value) for s in stores.risk_scores_since(-1)} == {
        ("task", 10),
        ("workload", 20),
    }


def test_forgotten_scores_are_deleted_in_the_write(stores: Stores) -> None:
    # forget_at is 100 + value: tsk_low at 110, tsk_high at 190
    stores.write_recorded(advance(0, 1, score("tsk_low", 10, 1), score("tsk_high", 90, 1)),
                          responded, seal)  # fmt: skip
    assert stores.write_recorded(advance(1, 2, forget_before=150.0), responded, seal)
    assert [s.key for s in stores.risk_scores_since(-1)] == ["tsk_high"]
    assert stores.write_recorded(advance(2, 3, forget_before=190.0), responded, seal)
    assert [s.key for s in stores.risk_scores_since(-1)] == ["tsk_high"]  # not before it


def test_a_cursor_moved_elsewhere_writes_no_score(stores: Stores) -> None:
    stores.write_recorded(advance(0, 5, score("tsk_1", 30, 5)), responded, seal)
    assert not stores.write_recorded(
        advance(0, 7, score("tsk_1", 90, 7), forget_before=1e9), responded, seal
    )
    assert [(s.value, s.version) for s in stores.risk_scores_since(-1)] == [(30, 5)]
    assert kinds(stores) == ["response"]


def test_no_score_is_written_when_the_events_cannot_be(stores: Stores) -> None:
    stores.write_recorded(advance(0, 5, score("tsk_1", 30, 5)), responded, seal)
    with pytest.raises(Unavailable):
        stores.write_recorded(
            advance(5, 7, score("tsk_1", 90, 7), score("tsk_2", 9, 7), forget_before=1e9),
            responded,
            failing_seal,
        )
    assert [(s.key, s.value) for s in stores.risk_scores_since(-1)] == [("tsk_1", 30)]
    assert stores.get_cursor("response") is not None
    assert stores.write_recorded(advance(5, 7, score("tsk_1", 90, 7)), responded, seal)
    assert [(s.key, s.value) for s in stores.risk_scores_since(-1)] == [("tsk_1", 90)]
