"""How tasks are seen (``zerolane.tasks.views``): when an expiry is due, and the one
JSON view the CLI prints and the API's ``TaskOut`` models."""

from __future__ import annotations

import dataclasses

import pytest

from zerolane.server.task_views import TaskOut, task_out
from zerolane.store.records import TaskRecord
from zerolane.tasks.scope import Scope
from zerolane.tasks.views import effective_state, expiry_due, task_view
from zerolane.types import Sensitivity, TaskState

END = 1_800_000_600
TASK = TaskRecord(
    task_id="tsk_1",
    owner="spiffe://example.org/agents/a1",
    playbook="reports",
    playbook_version=2,
    intent="summarize",
    scope=Scope(("read",), ("reports/*",), ("api.example.org",), Sensitivity.INTERNAL).to_json(),
    authorization_details="[]",
    jkt="j" * 43,
    audience=("urn:gateway",),
    state=TaskState.ACTIVE,
    created_at=1_800_000_000,  # whole numbers, as a store may give them back
    expires_at=END,
    max_calls=5,
    calls_used=2,
    touched=1,
    token_jti="jti-1",
)
#: a task opened under a playbook in shadow mode (its scope keeps the mode)
SHADOWED = dataclasses.replace(
    TASK,
    task_id="tsk_2",
    scope=dataclasses.replace(Scope.from_json(TASK.scope), shadow=True).to_json(),
)


@pytest.mark.parametrize(
    ("state", "due"),
    [
        (TaskState.ACTIVE, True),
        (TaskState.SUSPENDED, True),  # live too: its expiry is recorded
        (TaskState.EXPIRED, False),
        (TaskState.COMPLETED, False),
        (TaskState.REVOKED, False),
    ],
)
def test_an_expiry_is_due_for_a_live_task_past_its_window(state: TaskState, due: bool) -> None:
    task = dataclasses.replace(TASK, state=state)
    assert expiry_due(task, END) is due
    assert expiry_due(task, END - 0.001) is False  # the twin: inside its window


def test_the_view_shows_the_state_decisions_see() -> None:
    assert task_view(TASK, END - 1)["state"] == "active"
    assert task_view(TASK, END)["state"] == effective_state(TASK, END).value == "expired"
    revoked = dataclasses.replace(TASK, state=TaskState.REVOKED, ended_at=END - 5)
    assert task_view(revoked, END + 10)["state"] == "revoked"


def test_the_view_is_the_apis_task_out_value_for_value() -> None:
    """The CLI prints the view as it is; the API validates it as TaskOut: both print the
    same JSON (times as floats even when stored as whole numbers)."""
    delegated = dataclasses.replace(
        TASK,
        parent_id="tsk_0",
        depth=1,
        ended_at=END - 1,
        end_reason="parent.revoked",
        user_subject="alice",
        user_issuer="https://idp.example",
    )
    for task in (TASK, delegated, SHADOWED):
        view = task_view(task, END - 1)
        assert view == task_out(task, END - 1).model_dump()
        assert set(view) == set(TaskOut.model_fields)
        assert isinstance(view["created_at"], float)
    assert task_view(delegated, END - 1)["user"] == {
        "subject": "alice",
        "issuer": "https://idp.example",
    }
    assert task_view(TASK, END - 1)["scope"] == {
        "actions": ["read"],
        "resources": ["reports/*"],
        "destinations": ["api.example.org"],
        "data_ceiling": "internal",
    }


def test_the_view_shows_the_tasks_mode() -> None:
    assert task_view(TASK, END - 1)["mode"] == task_out(TASK, END - 1).mode == "enforce"
    assert task_view(SHADOWED, END - 1)["mode"] == task_out(SHADOWED, END - 1).mode == "shadow"
    # the mode is not a permission: the scope shown is the same
    assert task_view(SHADOWED, END - 1)["scope"] == task_view(TASK, END - 1)["scope"]
