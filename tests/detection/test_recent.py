"""Bounded memories: the least recently used key goes first; a task's playbook."""

from __future__ import annotations

from tests.detection.recorded import Recorder
from zerolane.detection.recent import Recent, TaskPlaybooks
from zerolane.detection.seen import Seen
from zerolane.types import Outcome


def test_a_recent_map_forgets_the_least_recently_used_key() -> None:
    recent: Recent[int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.touch("a") == 1  # a is now the most recent
    assert recent.touch("zz") is None
    recent.put("c", 3)
    assert list(recent.items()) == [("a", 1), ("c", 3)]
    assert "b" not in recent
    assert len(recent) == 2
    assert recent.get("c") == 3


def test_a_task_has_its_playbook_and_a_delegated_child_its_parents() -> None:
    log = Recorder()
    log.add("task.opened", 0, subject="tsk_1", outcome=Outcome.SUCCESS, details={"playbook": "p"})
    log.add(
        "task.delegate", 1, subject="tsk_2", outcome=Outcome.SUCCESS, details={"parent_id": "tsk_1"}
    )
    log.add(
        "task.delegate", 2, subject="tsk_3", outcome=Outcome.SUCCESS, details={"parent_id": "tsk_x"}
    )
    log.add("task.opened", 3, subject="tsk_4", outcome=Outcome.DENIED, details={"playbook": "q"})
    log.add("task.opened", 4, subject="tsk_5", outcome=Outcome.SUCCESS, details={"playbook": ""})
    log.add("decision", 5, subject="tsk_1", outcome=Outcome.SUCCESS)
    tasks = TaskPlaybooks(10)
    for record in log.records:
        tasks.observe(Seen.of(record))
    assert [tasks.of(t) for t in ("tsk_1", "tsk_2", "tsk_3", "tsk_4", "tsk_5", None)] == [
        "p",
        "p",
        None,
        None,
        None,
        None,
    ]
    again = TaskPlaybooks(1)
    again.restore(tasks.state())
    assert again.state() == {"tsk_2": "p"}  # bounded on restore too
