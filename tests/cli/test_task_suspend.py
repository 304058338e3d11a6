"""``zerolane task suspend|resume``: the whole live subtree, audited as the CLI admin,
with clear refusals; listings and trees show the state."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tests.cli.test_task import home, record, run
from zerolane.server.deployment import Deployment
from zerolane.types import TaskState

__all__ = ["home"]  # the fixture: tsk_root with its child tsk_child


def stored(home: Path, task_id: str) -> tuple[TaskState, str | None]:
    deployment = Deployment.open(home)
    try:
        task = deployment.stores.get_task(task_id)
        assert task is not None
        return task.state, task.end_reason
    finally:
        deployment.close()


def events(home: Path, kind: str) -> list[dict[str, object]]:
    deployment = Deployment.open(home)
    try:
        bodies = [json.loads(e.body) for e in deployment.stores.read_events(limit=10_000)]
    finally:
        deployment.close()
    return [b for b in bodies if b["kind"] == kind]


def test_suspend_then_resume_the_subtree(home: Path) -> None:
    suspended = run(home, "task", "suspend", "tsk_root", "--reason", "scope probing")
    assert suspended.exit_code == 0, suspended.output
    assert "Suspended tsk_root, with 1 delegated task(s)" in suspended.output
    assert "tsk_child" in suspended.output
    assert stored(home, "tsk_root") == (TaskState.SUSPENDED, "scope probing")
    assert stored(home, "tsk_child") == (TaskState.SUSPENDED, "parent.suspended")
    [first, _] = events(home, "task.suspended")
    assert (first["actor"], first["reason"]) == ({"type": "admin", "id": "cli"}, "scope probing")

    listed = run(home, "task", "list", "--state", "suspended", "--json")
    assert [t["task_id"] for t in json.loads(listed.output)] == ["tsk_child", "tsk_root"]
    tree = run(home, "task", "tree", "tsk_root")
    assert tree.exit_code == 0, tree.output
    assert "suspended" in tree.output
    assert "(parent.suspended)" in tree.output

    resumed = run(home, "task", "resume", "tsk_root", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert [(t["task_id"], t["state"]) for t in json.loads(resumed.output)] == [
        ("tsk_root", "active"),
        ("tsk_child", "active"),
    ]
    assert stored(home, "tsk_child") == (TaskState.ACTIVE, None)
    assert [e["reason"] for e in events(home, "task.resumed")] == ["resumed", "parent.resumed"]


def test_a_leaf_prints_no_list_of_delegated_tasks(home: Path) -> None:
    suspended = run(home, "task", "suspend", "tsk_child")
    assert suspended.exit_code == 0, suspended.output
    assert suspended.output.strip() == "Suspended tsk_child"
    refused = run(home, "task", "resume", "tsk_root")
    assert refused.exit_code == 2
    assert refused.output.startswith("error task.not_suspended:")
    assert run(home, "task", "resume", "tsk_child").output.strip() == "Resumed tsk_child"


def test_refusals_exit_2_with_their_reason(home: Path) -> None:
    cases = [
        (("task", "suspend", "tsk_nope"), "task.unknown"),
        (("task", "resume", "tsk_nope"), "task.unknown"),
        (("task", "resume", "tsk_root"), "task.not_suspended"),
        (("task", "suspend", "tsk_root", "--reason", ""), "task.reason"),
    ]
    for args, reason in cases:
        refused = run(home, *args)
        assert refused.exit_code == 2, refused.output
        assert refused.output.startswith(f"error {reason}:"), refused.output
    assert run(home, "task", "suspend", "tsk_root").exit_code == 0  # the twin
    again = run(home, "task", "suspend", "tsk_root")
    assert again.output.startswith("error task.already_suspended:")
    child = run(home, "task", "resume", "tsk_child")
    assert child.output.startswith("error task.parent_suspended:")
    assert run(home, "task", "revoke", "tsk_root").exit_code == 0
    ended = run(home, "task", "resume", "tsk_root")
    assert ended.output.startswith("error task.ended:")


def test_listing_expired_records_a_suspended_task_past_its_window(home: Path) -> None:
    deployment = Deployment.open(home)
    try:  # suspended, and its window ended since
        late = dataclasses.replace(record("tsk_late", expires_in=-30), state=TaskState.SUSPENDED)
        deployment.stores.add_task(late)
    finally:
        deployment.close()
    listed = run(home, "task", "list", "--state", "expired", "--json")
    assert listed.exit_code == 0, listed.output
    assert [t["task_id"] for t in json.loads(listed.output)] == ["tsk_late"]
    assert stored(home, "tsk_late") == (TaskState.EXPIRED, "expired")  # recorded
    assert run(home, "task", "list", "--state", "suspended", "--json").output.strip() == "[]"
