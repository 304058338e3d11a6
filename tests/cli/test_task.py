"""``zerolane task list|show|tree`` read the home's stores alone, and show what the API
shows; a task past its window but stored live has its expiry recorded first, through
the lifecycle, exactly as before."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from zerolane.cli.main import app
from zerolane.server.deployment import Deployment, init_home
from zerolane.server.task_views import task_out
from zerolane.store.records import TaskRecord
from zerolane.tasks.scope import Scope
from zerolane.types import Sensitivity, TaskState

runner = CliRunner()
OWNER = "spiffe://example.org/agents/a1"
SCOPE = Scope(("read",), ("reports/*",), ("api.example.org",), Sensitivity.INTERNAL)


def record(task_id: str, *, expires_in: float, parent: str | None = None) -> TaskRecord:
    now = time.time()
    return TaskRecord(
        task_id=task_id,
        owner=OWNER,
        playbook="reports",
        playbook_version=1,
        intent=f"intent of {task_id}",
        scope=SCOPE.to_json(),
        authorization_details="[]",
        jkt="j" * 43,
        audience=("urn:gateway",),
        state=TaskState.ACTIVE,
        created_at=now - 60 + (1 if parent else 0),
        expires_at=now + expires_in,
        max_calls=5,
        calls_used=1,
        touched=-1,
        token_jti=f"jti-{task_id}",
        parent_id=parent,
        depth=1 if parent else 0,
        user_subject="alice" if parent is None else None,
        user_issuer="https://idp.example" if parent is None else None,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    deployment, _ = init_home(path, "example.org")
    try:
        deployment.stores.add_task(record("tsk_root", expires_in=3600))
        deployment.stores.add_task(record("tsk_child", expires_in=600, parent="tsk_root"))
    finally:
        deployment.close()
    return path


def run(home: Path, *args: str) -> Result:
    return runner.invoke(app, [*args, "--home", str(home)])


def no_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the deployment fails the command: what runs without it is proven so."""

    def refused(*_: object, **__: object) -> None:
        raise RuntimeError("the deployment was opened")

    monkeypatch.setattr("zerolane.cli.task.opened", refused)


def test_live_tasks_are_shown_from_the_stores_alone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_deployment(monkeypatch)
    listed = run(home, "task", "list", "--json")
    assert listed.exit_code == 0, listed.output
    tasks = json.loads(listed.output)
    assert [t["task_id"] for t in tasks] == ["tsk_child", "tsk_root"]
    assert run(home, "task", "list", "--state", "active", "--wide").exit_code == 0
    shown = run(home, "task", "show", "tsk_root")
    assert shown.exit_code == 0, shown.output
    tree = run(home, "task", "tree", "tsk_root", "--json")
    assert tree.exit_code == 0, tree.output
    assert [(t["task_id"], t["parent_id"]) for t in json.loads(tree.output)] == [
        ("tsk_root", None),
        ("tsk_child", "tsk_root"),
    ]
    # the very shape the API shows (TaskOut), key for key and value for value
    stored = Deployment.open(home)
    try:
        root = stored.stores.get_task("tsk_root")
    finally:
        stored.close()
    assert root is not None
    assert json.loads(shown.output) == task_out(root, time.time()).model_dump()
    assert json.loads(shown.output)["user"] == {
        "subject": "alice",
        "issuer": "https://idp.example",
    }


def test_an_expiry_due_is_recorded_first_through_the_lifecycle(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = Deployment.open(home)
    try:
        due = record("tsk_due", expires_in=-30)
        deployment.stores.add_task(due)
    finally:
        deployment.close()
    with monkeypatch.context() as patched:  # a due expiry needs the deployment
        no_deployment(patched)
        refused = run(home, "task", "list")
        assert refused.exit_code == 1
        assert "the deployment was opened" in refused.output
    listed = run(home, "task", "list", "--json")
    assert listed.exit_code == 0, listed.output
    [shown] = [t for t in json.loads(listed.output) if t["task_id"] == "tsk_due"]
    assert (shown["state"], shown["end_reason"], shown["ended_at"]) == (
        "expired",
        "expired",
        due.expires_at,
    )
    reopened = Deployment.open(home)
    try:
        stored = reopened.stores.get_task("tsk_due")
        assert stored is not None
        assert stored.state is TaskState.EXPIRED  # recorded, with its event
        kinds = [json.loads(e.body)["kind"] for e in reopened.stores.read_events(limit=10_000)]
        assert "task.expired" in kinds
    finally:
        reopened.close()
    # recorded now: the next listing reads it from the stores alone, and shows the same
    no_deployment(monkeypatch)
    again = run(home, "task", "list", "--json", "--state", "expired")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == [shown]


def test_an_unknown_task_is_refused_as_before(home: Path) -> None:
    for command in (("task", "show", "tsk_nope"), ("task", "tree", "tsk_nope")):
        refused = run(home, *command)
        assert refused.exit_code == 2
        assert refused.output.startswith("error task.unknown: no task tsk_nope")


def test_a_task_in_shadow_mode_shows_it_in_list_show_and_tree(home: Path) -> None:
    shadow = dataclasses.replace(SCOPE, shadow=True)
    deployment = Deployment.open(home)
    try:
        trial = dataclasses.replace(
            record("tsk_trial", expires_in=3600), scope=shadow.to_json(), token_jti="jti-trial"
        )
        deployment.stores.add_task(trial)
    finally:
        deployment.close()
    listed = run(home, "task", "list", "--wide")
    assert listed.exit_code == 0, listed.output
    rows = {
        cells[1]: cells for line in listed.output.splitlines() if len(cells := line.split()) > 5
    }
    assert rows["tsk_trial"][9] == "shadow"  # task, owner, playbook, state, mode
    assert rows["tsk_root"][9] == "enforce"  # the twin
    as_json = json.loads(run(home, "task", "list", "--json").output)
    assert {t["task_id"]: t["mode"] for t in as_json} == {
        "tsk_trial": "shadow",
        "tsk_child": "enforce",
        "tsk_root": "enforce",
    }
    assert json.loads(run(home, "task", "show", "tsk_trial").output)["mode"] == "shadow"
    tree = run(home, "task", "tree", "tsk_trial")
    assert tree.exit_code == 0, tree.output
    assert "active shadow calls 1/5" in tree.output
    assert " shadow" not in run(home, "task", "tree", "tsk_root").output
