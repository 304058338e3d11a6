"""The probe's credentials from a zerolane home: every task it opened ends with the run,
completed, or revoked when completing fails."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import ADMIN, Stack
from zerolane.cli.probe_home import HomeSource
from zerolane.sdk import Task
from zerolane.types import TaskState


def _state(stack: Stack, task_id: str) -> TaskState:
    return stack.deployment.lifecycle.get(task_id).state


def test_close_completes_the_tasks_it_opened(stack: Stack, home_source: HomeSource) -> None:
    task: Task = home_source.issue().handle
    home_source.close()
    assert _state(stack, task.task_id) is TaskState.COMPLETED


def test_a_task_that_cannot_be_completed_is_revoked(
    stack: Stack, home_source: HomeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck: Task = home_source.issue().handle
    ended: Task = home_source.issue().handle

    def unreachable(self: Task) -> None:
        raise httpx.ConnectError("the control plane is out of reach")

    monkeypatch.setattr(Task, "complete", unreachable)
    stack.deployment.lifecycle.revoke(ended.task_id, actor=ADMIN, reason="test")
    home_source.close()  # nothing raised for the ended ones
    assert _state(stack, stuck.task_id) is TaskState.REVOKED
    assert _state(stack, ended.task_id) is TaskState.REVOKED
