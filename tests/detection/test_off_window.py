"""The off-window detector: a scheduled workload or playbook at work outside its hours
or weekdays fires (once per cooldown); inside its window, or unscheduled, it does not."""

from __future__ import annotations

from tests.detection.recorded import AGENT, Recorder, run, seqs
from zerolane.detection.off_window import OffWindowDetector
from zerolane.settings.detection import OffWindowSettings, Schedule
from zerolane.types import Outcome

#: Wednesday 2023-11-15 02:00 UTC, as an offset from the recorder's T0
WED_2AM = 13_600
HOUR = 3600
NIGHTLY = Schedule(workload=AGENT, hours="1-4", weekdays="mon-fri")
SETTINGS = OffWindowSettings(schedules=(NIGHTLY,), cooldown_seconds=HOUR)
OTHER = "spiffe://example.org/agents/a2"


def test_a_scheduled_workload_at_work_outside_its_hours_fires_once_per_cooldown() -> None:
    log = Recorder()
    log.decision(WED_2AM, allowed=True, reason="ok")  # inside: 02:00
    log.decision(WED_2AM + 3 * HOUR, allowed=True, reason="ok")  # 05:00: outside
    log.decision(WED_2AM + 3 * HOUR + 60, allowed=True, reason="ok")  # within the cooldown
    log.decision(WED_2AM + 5 * HOUR, allowed=True, reason="ok")  # 07:00: again
    found = run(OffWindowDetector(SETTINGS), log.records)
    assert [seqs(d) for d in found] == [[2], [4]]
    details = found[0].details()
    assert found[0].detector == "off_window"
    assert (found[0].task_id, found[0].workload) == ("tsk_1", AGENT)
    assert details["local_time"] == "wed 05:00"
    assert details["schedule"]["hours"] == "1-4"  # type: ignore[index]


def test_the_near_miss_inside_the_window_or_unscheduled_does_not_fire() -> None:
    log = Recorder()
    for hour in range(4):
        log.decision(WED_2AM - HOUR + hour * HOUR, allowed=True, reason="ok")  # 01:00-04:00
    log.decision(WED_2AM + 4 * HOUR, actor=OTHER)  # another workload, at 06:00
    log.add("decision", WED_2AM + 4 * HOUR, actor="unauthenticated", subject="unknown")
    log.add("detection", WED_2AM + 4 * HOUR, actor=AGENT)
    assert run(OffWindowDetector(SETTINGS), log.records) == []
    assert run(OffWindowDetector(OffWindowSettings()), log.records) == []


def test_a_playbook_schedule_follows_its_tasks_and_their_children() -> None:
    weekdays = Schedule(playbook="payroll", weekdays="mon-fri", timezone="Europe/Paris")
    settings = OffWindowSettings(schedules=(weekdays,))
    log = Recorder()
    opened = {"playbook": "payroll"}
    log.add("task.opened", WED_2AM, subject="tsk_p", outcome=Outcome.SUCCESS, details=opened)
    saturday = WED_2AM + 3 * 24 * HOUR
    log.add(
        "task.delegate",
        saturday,
        subject="tsk_c",
        outcome=Outcome.SUCCESS,
        actor=OTHER,
        details={"parent_id": "tsk_p"},
    )
    log.decision(saturday + 1, task="tsk_c", actor=OTHER, allowed=True, reason="ok")
    log.decision(saturday + 2, task="tsk_other", actor=OTHER, allowed=True, reason="ok")
    (found,) = run(OffWindowDetector(settings), log.records)
    assert seqs(found) == [2]  # the delegation, by the child's playbook
    assert found.details()["local_time"] == "sat 03:00"  # Paris


def test_its_tasks_and_cooldowns_survive_a_restart() -> None:
    log = Recorder()
    log.add(
        "task.opened", WED_2AM, subject="tsk_1", outcome=Outcome.SUCCESS, details={"playbook": "p"}
    )
    log.decision(WED_2AM + 3 * HOUR)
    log.decision(WED_2AM + 3 * HOUR + 60)
    first = OffWindowDetector(SETTINGS)
    assert len(run(first, log.records[:2])) == 1
    second = OffWindowDetector(SETTINGS)
    second.restore(first.state())
    assert run(second, log.records[2:]) == []  # still cooling down
    assert second.state()["tasks"] == {"tsk_1": "p"}
    empty = OffWindowDetector(SETTINGS)
    empty.restore({})
    assert empty.state() == {"tasks": {}, "fired": {}}
