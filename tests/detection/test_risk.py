"""Risk scores: added per detection, capped, decaying by half-life, kept and forgotten,
stored as rows of the scores changed; the deciders' view reads again only once per
refresh interval, only the rows written since (or, once, an old home's whole table)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.detection.recorded import T0
from zerolane.audit.chain import seal
from zerolane.detection.risk import RESPONSE_CURSOR, RiskScores, RiskView
from zerolane.errors import Unavailable
from zerolane.policy.context import RiskFacts
from zerolane.store.changes import AdvanceCursors, CursorAdvance, RiskScore
from zerolane.store.records import DetectorCursor
from zerolane.store.sqlite import SqliteStores

HOUR = 3600.0


def test_a_detection_adds_its_weight_to_task_and_workload() -> None:
    scores = RiskScores(HOUR)
    scores.add("tsk_1", "spiffe://a", 30, T0)
    scores.add("tsk_2", "spiffe://a", 30, T0)
    assert scores.facts("tsk_1", "spiffe://a", T0) == RiskFacts(30, 60)
    assert scores.facts("tsk_2", "spiffe://b", T0) == RiskFacts(30, 0)
    scores.add(None, None, 60, T0)  # about nobody known: scores nothing
    assert scores.state(T0)["tasks"].keys() == {"tsk_1", "tsk_2"}


def test_scores_are_capped_at_100() -> None:
    scores = RiskScores(HOUR)
    for _ in range(5):
        scores.add("tsk_1", None, 60, T0)
    assert scores.task("tsk_1", T0) == 100


def test_risk_decays_by_half_life() -> None:
    scores = RiskScores(HOUR)
    scores.add("tsk_1", "spiffe://a", 80, T0)
    assert scores.task("tsk_1", T0 + HOUR) == 40
    assert scores.workload("spiffe://a", T0 + 2 * HOUR) == 20
    # a new detection adds to what is left of the old score
    scores.add("tsk_1", None, 10, T0 + HOUR)
    assert scores.task("tsk_1", T0 + HOUR) == 50
    assert scores.task("tsk_1", T0) == 50  # never read before its last detection: no growth


def test_decayed_scores_are_forgotten_and_kept_ones_restored() -> None:
    scores = RiskScores(HOUR)
    scores.add("tsk_old", None, 10, T0)
    scores.add("tsk_new", "spiffe://a", 10, T0 + 10 * HOUR)
    state = scores.state(T0 + 10 * HOUR)  # 10 / 2**10 < 0.5: forgotten
    assert set(state["tasks"]) == {"tsk_new"}
    again = RiskScores(HOUR)
    again.restore(json.loads(json.dumps(state)))
    assert again.facts("tsk_new", "spiffe://a", T0 + 10 * HOUR) == RiskFacts(10, 10)


@pytest.mark.parametrize("state", [{"tasks": []}, {"tasks": {"t": [1]}}, {"workloads": {"w": "x"}}])
def test_malformed_state_is_refused(state: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        RiskScores(HOUR).restore(state)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> float:
        return self.at


class CountingStore(SqliteStores):
    reads = 0

    def get_cursor(self, detector: str) -> DetectorCursor | None:
        self.reads += 1
        return super().get_cursor(detector)


def _store_scores(store: SqliteStores, seq: int, expected: int, state: str) -> None:
    change = AdvanceCursors((CursorAdvance(RESPONSE_CURSOR, expected, seq, state, T0),))
    assert store.write_recorded(change, lambda ok: [], seal)


def test_view_reads_the_store_once_per_refresh(tmp_path: Path) -> None:
    store, clock = CountingStore(tmp_path / "z.db"), Clock()
    view = RiskView(store, clock, half_life=HOUR, refresh=1.0)
    assert view.facts("tsk_1", "spiffe://a") == RiskFacts(0, 0)  # nothing stored yet
    scores = RiskScores(HOUR)
    scores.add("tsk_1", "spiffe://a", 60, T0)
    _store_scores(store, 5, 0, json.dumps({"risk": scores.state(T0)}))
    for _ in range(100):  # within the interval: no read, the old (empty) scores
        assert view.facts("tsk_1", "spiffe://a") == RiskFacts(0, 0)
    assert store.reads == 1
    clock.at += 1.0
    assert view.facts("tsk_1", "spiffe://a") == RiskFacts(60, 60)
    assert store.reads == 2
    clock.at += HOUR
    assert view.facts("tsk_1", "spiffe://b") == RiskFacts(30, 0)  # same seq: kept, decayed
    store.close()


def test_view_keeps_the_last_scores_when_a_read_fails(tmp_path: Path) -> None:
    store, clock = SqliteStores(tmp_path / "z.db"), Clock()
    view = RiskView(store, clock, half_life=HOUR, refresh=0.1)
    scores = RiskScores(HOUR)
    scores.add("tsk_1", None, 60, T0)
    view.put(scores, 3)
    _store_scores(store, 4, 0, "not json")
    clock.at += HOUR
    assert view.facts("tsk_1", "w").task == 30  # the unreadable state left them as they were
    older = RiskScores(HOUR)
    view.put(older, 2)  # older than what it holds: ignored
    assert view.facts("tsk_1", "w").task == 30
    store.close()


def test_a_reload_just_done_by_another_thread_is_not_repeated(tmp_path: Path) -> None:
    store, clock = CountingStore(tmp_path / "z.db"), Clock()
    view = RiskView(store, clock, half_life=HOUR, refresh=1.0)
    view.facts("tsk_1", "w")
    view._reload(clock.at)  # what a thread that waited for the lock finds
    assert store.reads == 1
    store.close()


def test_rows_hold_only_the_scores_changed_since_the_last_rows() -> None:
    scores = RiskScores(HOUR)
    scores.add("tsk_1", "spiffe://a", 10, T0)
    rows = scores.rows(5)
    assert [(r.kind, r.key, r.value, r.at, r.version) for r in rows] == [
        ("task", "tsk_1", 10.0, T0, 5),
        ("workload", "spiffe://a", 10.0, T0, 5),
    ]
    # 10 halves to 0.5 in log2(20) half-lives: forgotten after that, as state() forgets it
    assert rows[0].forget_at == pytest.approx(T0 + math.log2(20) * HOUR)
    assert set(scores.state(rows[0].forget_at - 1)["tasks"]) == {"tsk_1"}
    assert scores.state(rows[0].forget_at + 1)["tasks"] == {}
    assert scores.rows(6) == ()  # nothing changed since
    scores.add("tsk_2", None, 20, T0)
    assert [(r.key, r.version) for r in scores.rows(7)] == [("tsk_2", 7)]
    assert scores.forget_at(0.1, T0) == T0  # below the threshold already


class RowCountingStore(SqliteStores):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.since: list[int] = []
        self.fail = False

    def risk_scores_since(self, version: int) -> list[RiskScore]:
        self.since.append(version)
        if self.fail:
            raise Unavailable("store.read", "down")
        return super().risk_scores_since(version)


def _store_rows(store: SqliteStores, expected: int, seq: int, *rows: RiskScore) -> None:
    change = AdvanceCursors((CursorAdvance(RESPONSE_CURSOR, expected, seq, "{}", T0),), rows)
    assert store.write_recorded(change, lambda ok: [], seal)


def _row(key: str, value: float, version: int, kind: str = "task") -> RiskScore:
    return RiskScore(kind, key, value, T0, T0 + 100 * HOUR, version)


def test_view_reads_only_the_rows_written_since_its_last_read(tmp_path: Path) -> None:
    store, clock = RowCountingStore(tmp_path / "z.db"), Clock()
    _store_rows(store, 0, 3, _row("tsk_1", 60, 3), _row("spiffe://a", 40, 3, "workload"))
    view = RiskView(store, clock, half_life=HOUR, refresh=1.0)
    assert view.facts("tsk_1", "spiffe://a") == RiskFacts(60, 40)
    _store_rows(store, 3, 8, _row("tsk_2", 20, 8))
    for _ in range(100):  # within the interval: no read
        view.facts("tsk_2", "spiffe://a")
    clock.at += 1.0
    assert view.facts("tsk_2", "spiffe://a") == RiskFacts(20, 40)
    assert view.facts("tsk_1", "spiffe://a") == RiskFacts(60, 40)  # kept from the first read
    assert store.since == [-1, 3]  # every row once, then those of version 8 only
    store.close()


def test_view_merges_others_rows_into_a_copy_of_a_handed_over_table(tmp_path: Path) -> None:
    """A same-process responder's scores are handed over as they are; rows another
    responder wrote since are merged into a copy, never into the responder's table."""
    store, clock = RowCountingStore(tmp_path / "z.db"), Clock()
    view = RiskView(store, clock, half_life=HOUR, refresh=1.0)
    mine = RiskScores(HOUR)
    mine.add("tsk_1", None, 60, T0)
    view.put(mine, 4)
    _store_rows(store, 0, 9, _row("tsk_2", 30, 9))
    clock.at += 1.0
    assert view.facts("tsk_2", "w").task == 30
    assert view.facts("tsk_1", "w").task == 60
    assert set(mine.tasks) == {"tsk_1"}  # the responder's own table untouched
    assert store.since == [4]
    store.fail = True
    _store_rows(store, 9, 10, _row("tsk_2", 90, 10))
    clock.at += 1.0
    assert view.facts("tsk_2", "w").task == 30  # a failed read keeps the last scores
    store.fail = False
    clock.at += 1.0
    assert view.facts("tsk_2", "w").task == 90
    store.close()


def test_view_of_an_unreadable_old_state_reads_the_rows(tmp_path: Path) -> None:
    store, clock = SqliteStores(tmp_path / "z.db"), Clock()
    _store_scores(store, 2, 0, '{"risk": {"tasks": []}}')
    view = RiskView(store, clock, half_life=HOUR, refresh=1.0)
    assert view.facts("tsk_1", "w") == RiskFacts(0, 0)
    _store_rows(store, 2, 3, _row("tsk_1", 50, 3))
    clock.at += 1.0
    assert view.facts("tsk_1", "w").task == 50
    store.close()
