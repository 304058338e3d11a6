"""The scope-probing detector: many different denials to one task fire; repetition,
allows, other tasks and slow probing do not."""

from __future__ import annotations

from tests.detection.recorded import Recorder, run, seqs
from zerolane.detection.scope_probing import ScopeProbingDetector
from zerolane.settings.detection import ScopeProbingSettings

SETTINGS = ScopeProbingSettings(distinct=4, window_seconds=30)


def probe(log: Recorder, at: float, n: int, task: str = "tsk_1") -> None:
    log.decision(at, task=task, action="http:GET", resource=f"https://api.example.org/{n}")


def test_distinct_denials_in_the_window_fire_with_the_first_of_each() -> None:
    log = Recorder()
    probe(log, 0, 1)
    probe(log, 1, 1)  # the same again: counts once
    log.decision(2, action="http:DELETE", resource="https://api.example.org/1")
    probe(log, 3, 2)
    log.decision(4, allowed=True, reason="ok")
    probe(log, 5, 3)
    (found,) = run(ScopeProbingDetector(SETTINGS), log.records)
    assert found.detector == "scope_probing"
    assert found.task_id == "tsk_1"
    assert seqs(found) == [1, 3, 4, 6]
    details = found.details()
    assert details["count"] == 4
    assert {"action": "http:DELETE", "resource": "https://api.example.org/1"} in details["denied"]  # type: ignore[operator]


def test_the_near_miss_one_short_or_repeated_or_slow_does_not_fire() -> None:
    log = Recorder()
    for n in range(3):  # one short of the threshold
        probe(log, n, n)
    for _ in range(10):  # the same denial again and again
        probe(log, 5, 0)
    probe(log, 40, 9)  # a fourth, after the first three left the window
    log.decision(41, allowed=True, reason="ok", resource="https://api.example.org/x")
    assert run(ScopeProbingDetector(SETTINGS), log.records) == []


def test_denials_of_different_tasks_are_counted_apart() -> None:
    log = Recorder()
    for n in range(4):
        probe(log, n, n, task=f"tsk_{n}")
    assert run(ScopeProbingDetector(SETTINGS), log.records) == []


def test_refusals_before_a_decision_mapped_the_request_are_not_probing() -> None:
    log = Recorder()
    for n in range(6):
        log.decision(n, reason="token.expired", action=None)
    for n in range(6):  # a task nobody knows
        log.decision(n, task="unknown", resource=f"https://api.example.org/{n}")
    assert run(ScopeProbingDetector(SETTINGS), log.records) == []


def test_it_fires_again_only_on_new_denials_and_survives_a_restart() -> None:
    log = Recorder()
    for n in range(6):
        probe(log, n, n)
    first = ScopeProbingDetector(SETTINGS)
    assert len(run(first, log.records[:4])) == 1
    second = ScopeProbingDetector(SETTINGS)
    second.restore(first.state())
    assert run(second, log.records[4:]) == []  # two new ones after it fired
    for n in range(6, 8):
        probe(log, 7, n)
    assert [seqs(d) for d in run(second, log.records[6:])] == [[5, 6, 7, 8]]
