"""The delegation fan-out detector: many children or a deep chain made quickly fire;
fewer, slower or refused delegations do not."""

from __future__ import annotations

from tests.detection.recorded import Recorder, run, seqs
from zerolane.detection.delegation_fanout import DelegationFanoutDetector
from zerolane.settings.detection import DelegationFanoutSettings
from zerolane.types import Outcome

SETTINGS = DelegationFanoutSettings(children=3, depth=3, window_seconds=60)


def test_many_children_of_one_task_fire_naming_the_parent() -> None:
    log = Recorder()
    for n in range(3):
        log.delegate(n, f"tsk_c{n}", "tsk_root")
    (found,) = run(DelegationFanoutDetector(SETTINGS), log.records)
    assert found.detector == "delegation_fanout"
    assert found.task_id == "tsk_root"
    assert seqs(found) == [1, 2, 3]
    assert found.details()["pattern"] == "children"


def test_the_near_miss_fewer_slower_or_refused_children_do_not_fire() -> None:
    log = Recorder()
    log.delegate(0, "tsk_c0", "tsk_root")
    log.delegate(1, "tsk_c1", "tsk_root")
    log.delegate(70, "tsk_c2", "tsk_root")  # the first two left the window
    log.add(
        "task.delegate",
        71,
        subject="tsk_root",
        reason="delegation.depth",
        details={"parent_id": "tsk_root"},
    )  # refused: no child
    log.delegate(72, "tsk_d0", "tsk_other")
    log.add("task.delegate", 73, subject="tsk_x", outcome=Outcome.SUCCESS)  # no parent
    assert run(DelegationFanoutDetector(SETTINGS), log.records) == []


def test_a_deep_chain_made_quickly_fires_once_from_its_top() -> None:
    log = Recorder()
    log.delegate(0, "tsk_a", "tsk_root", 1)
    log.delegate(1, "tsk_b", "tsk_a", 2)
    log.delegate(2, "tsk_c", "tsk_b", 3)
    log.delegate(3, "tsk_d", "tsk_c", 4)  # deeper still: the chain already fired
    (found,) = run(DelegationFanoutDetector(SETTINGS), log.records)
    assert found.task_id == "tsk_root"
    assert found.details()["chain"] == ["tsk_root", "tsk_a", "tsk_b", "tsk_c"]
    assert seqs(found) == [1, 2, 3]


def test_the_near_miss_a_chain_built_slowly_does_not_fire() -> None:
    log = Recorder()
    log.delegate(0, "tsk_a", "tsk_root", 1)
    log.delegate(50, "tsk_b", "tsk_a", 2)
    log.delegate(100, "tsk_c", "tsk_b", 3)  # the first link is out of the window
    assert run(DelegationFanoutDetector(SETTINGS), log.records) == []


def test_its_windows_and_chains_survive_a_restart() -> None:
    log = Recorder()
    log.delegate(0, "tsk_a", "tsk_root", 1)
    log.delegate(1, "tsk_b", "tsk_a", 2)
    log.delegate(2, "tsk_b2", "tsk_a", 2)
    log.delegate(3, "tsk_c", "tsk_b", 3)
    first = DelegationFanoutDetector(SETTINGS)
    assert run(first, log.records[:3]) == []
    second = DelegationFanoutDetector(SETTINGS)
    second.restore(first.state())
    (found,) = run(second, log.records[3:])
    assert found.details()["chain"] == ["tsk_root", "tsk_a", "tsk_b", "tsk_c"]
    empty = DelegationFanoutDetector(SETTINGS)
    empty.restore({})
    assert empty.state() == {"children": {}, "links": {}}
