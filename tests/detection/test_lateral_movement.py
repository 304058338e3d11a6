"""The lateral-movement detector: once a playbook and a workload have learned, a
destination or trust domain new to both fires; one known to either does not."""

from __future__ import annotations

from tests.detection.recorded import AGENT, Recorder, run, seqs
from zerolane.detection.lateral_movement import LateralMovementDetector, trust_domain
from zerolane.settings.detection import LateralMovementSettings
from zerolane.types import Outcome

SETTINGS = LateralMovementSettings(learning_seconds=100, min_history=3, max_items=8)
OTHER = "spiffe://example.org/agents/a2"


def opened(
    log: Recorder, at: float, task: str, playbook: str = "reports", actor: str = AGENT
) -> None:
    log.add(
        "task.opened",
        at,
        subject=task,
        outcome=Outcome.SUCCESS,
        actor=actor,
        details={"playbook": playbook},
    )


def call(
    log: Recorder,
    at: float,
    host: str,
    task: str = "tsk_1",
    actor: str = AGENT,
    allowed: bool = True,
) -> None:
    log.add(
        "decision",
        at,
        subject=task,
        actor=actor,
        outcome=Outcome.SUCCESS if allowed else Outcome.DENIED,
        details={"action": "http:GET", "destination": host, "destination_internal": True},
    )


def learned(log: Recorder) -> None:
    """A week of the agent's task reaching its two usual hosts."""
    opened(log, 0, "tsk_1")
    for n in range(4):
        call(log, n * 50, "db.internal")
        call(log, n * 50 + 1, "api.internal")


def test_a_destination_new_to_the_playbook_and_the_workload_fires() -> None:
    log = Recorder()
    learned(log)
    call(log, 400, "hr.internal")  # the seq 10th event
    call(log, 401, "hr.internal")  # now known: once only
    (found,) = run(LateralMovementDetector(SETTINGS), log.records)
    assert found.detector == "lateral_movement"
    assert (found.task_id, found.workload) == ("tsk_1", AGENT)
    assert seqs(found) == [10]
    details = found.details()
    assert details["reached"] == {"kind": "destination", "value": "hr.internal"}
    assert details["playbook"] == "reports"
    assert details["known"] == 3  # its trust domain and two hosts


def test_the_near_miss_known_to_either_or_still_learning_does_not_fire() -> None:
    log = Recorder()
    opened(log, 0, "tsk_1")
    call(log, 1, "db.internal")
    call(log, 2, "new.internal")  # still learning: too little history
    learned(log)
    call(log, 400, "api.internal")  # known
    call(log, 401, "forbidden.internal", allowed=False)  # denied: not reached
    # another workload of the same playbook reaches a host new to it, known to the playbook
    opened(log, 402, "tsk_2", actor=OTHER)
    for n in range(4):
        call(log, 402 + n * 50, "db.internal", task="tsk_2", actor=OTHER)
    call(log, 700, "api.internal", task="tsk_2", actor=OTHER)
    log.add("decision", 701, subject="tsk_1", outcome=Outcome.SUCCESS, details={"action": "x"})
    log.add(
        "grant.issue", 701, subject="lse_1", outcome=Outcome.SUCCESS, details={"destination": "x"}
    )
    log.add(
        "decision",
        702,
        subject="unknown",
        actor="unauthenticated",
        outcome=Outcome.SUCCESS,
        details={"destination": "elsewhere"},
    )
    assert run(LateralMovementDetector(SETTINGS), log.records) == []


def test_a_delegation_into_a_new_trust_domain_fires() -> None:
    log = Recorder()
    learned(log)
    delegate = {"parent_id": "tsk_1", "delegate": "spiffe://partner.example/agents/b"}
    log.add("task.delegate", 500, subject="tsk_c", outcome=Outcome.SUCCESS, details=delegate)
    (found,) = run(LateralMovementDetector(SETTINGS), log.records)
    assert found.task_id == "tsk_c"
    assert found.details()["reached"] == {"kind": "trust_domain", "value": "partner.example"}
    assert found.details()["playbook"] == "reports"


def test_a_task_whose_playbook_is_unknown_is_judged_by_its_workload_alone() -> None:
    log = Recorder()
    for n in range(4):
        call(log, n * 50, "db.internal", task="tsk_9")
    call(log, 300, "hr.internal", task="tsk_9")
    (found,) = run(LateralMovementDetector(SETTINGS), log.records)
    assert found.details()["playbook"] is None
    assert "workload" in found.summary


def test_its_profiles_are_bounded_and_survive_a_restart() -> None:
    log = Recorder()
    learned(log)
    first = LateralMovementDetector(SETTINGS)
    assert run(first, log.records) == []
    second = LateralMovementDetector(SETTINGS)
    second.restore(first.state())
    call(log, 400, "hr.internal")
    assert len(run(second, log.records[-1:])) == 1
    small = LateralMovementDetector(
        LateralMovementSettings(max_items=2, max_profiles=2, min_history=1, learning_seconds=0)
    )
    opened(log, 500, "tsk_2", playbook="other")  # a third profile: the oldest goes
    run(small, log.records)
    profiles = small.state()["profiles"]
    assert list(profiles) == [f"workload:{AGENT}", "playbook:other"]
    assert [len(p[2]) for p in profiles.values()] == [2, 1]
    empty = LateralMovementDetector(SETTINGS)
    empty.restore({})
    assert empty.state() == {"tasks": {}, "profiles": {}}


def test_a_trust_domain_is_read_from_a_spiffe_id_only() -> None:
    assert trust_domain("spiffe://Example.org/a") == "example.org"
    assert trust_domain("spiffe:///a") is None
    assert trust_domain("https://example.org") is None
    assert trust_domain(None) is None
