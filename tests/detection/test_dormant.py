"""The dormant-identity detector: a workload silent for longer than its threshold that
acts again fires; a shorter silence, or a workload never seen, does not."""

from __future__ import annotations

from tests.detection.recorded import AGENT, Recorder, run, seqs
from zerolane.detection.dormant import DormantDetector
from zerolane.settings.detection import DormantSettings
from zerolane.types import Outcome

DAY = 86400
SETTINGS = DormantSettings(days=30)
OTHER = "spiffe://example.org/agents/a2"


def test_a_workload_silent_past_the_threshold_fires_when_it_acts_again() -> None:
    log = Recorder()
    log.decision(0, allowed=True, reason="ok")
    log.decision(31 * DAY, allowed=True, reason="ok")
    log.decision(31 * DAY + 1, allowed=True, reason="ok")  # active again: once
    (found,) = run(DormantDetector(SETTINGS), log.records)
    assert found.detector == "dormant"
    assert (found.task_id, found.workload) == ("tsk_1", AGENT)
    assert seqs(found) == [2]
    assert found.details()["silent_days"] == 31.0
    assert found.details()["last_seen"] == "2023-11-14T22:13:20+00:00"


def test_a_registered_workload_that_first_acts_long_after_fires() -> None:
    log = Recorder()
    log.add("workload.registered", 0, subject=OTHER, outcome=Outcome.SUCCESS, actor="admin")
    log.add("task.opened", 40 * DAY, subject="tsk_2", outcome=Outcome.SUCCESS, actor=OTHER)
    (found,) = run(DormantDetector(SETTINGS), log.records)
    assert found.workload == OTHER


def test_the_near_miss_a_shorter_silence_or_a_new_workload_does_not_fire() -> None:
    log = Recorder()
    log.decision(0, allowed=True, reason="ok")
    log.decision(29 * DAY, allowed=True, reason="ok")
    log.decision(58 * DAY, allowed=True, reason="ok")  # 58 days in all, never 30 silent
    log.decision(100 * DAY, actor=OTHER)  # first seen
    log.add("decision", 200 * DAY, actor="unauthenticated", subject="unknown")
    log.add("detection", 200 * DAY, actor=AGENT)  # detections are not activity
    log.add("workload.registered", 200 * DAY, subject="", outcome=Outcome.SUCCESS, actor="admin")
    assert run(DormantDetector(SETTINGS), log.records) == []


def test_it_remembers_the_most_recently_active_and_survives_a_restart() -> None:
    log = Recorder()
    log.decision(0)
    log.decision(1, actor=OTHER)
    first = DormantDetector(DormantSettings(days=30, max_workloads=1))
    run(first, log.records)
    assert list(first.state()["last"]) == [OTHER]  # the longest silent forgotten
    second = DormantDetector(DormantSettings(days=30, max_workloads=1))
    second.restore(first.state())
    log.decision(40 * DAY, actor=OTHER)
    log.decision(80 * DAY)  # forgotten: new again
    assert [d.workload for d in run(second, log.records[2:])] == [OTHER]
