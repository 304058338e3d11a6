"""How the API shows a task: :class:`TaskOut`, the model of :func:`~zerolane.tasks.views.task_view`
(the CLI prints that view as it is, without pydantic or the web framework)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from zerolane.store.records import TaskRecord
from zerolane.tasks.views import task_view


class TaskOut(BaseModel):
    task_id: str
    owner: str
    playbook: str
    playbook_version: int
    intent: str
    state: str
    #: ``enforce``, or ``shadow``: the task's playbook ran in shadow mode when it was
    #: opened (kept for its life and its delegated tasks), so what the policies deny it
    #: is let through and audited as a would-deny
    mode: str = "enforce"
    scope: dict[str, Any]
    created_at: float
    expires_at: float
    max_calls: int
    calls_used: int
    on_behalf_of: str | None
    ended_at: float | None
    end_reason: str | None
    #: the delegation tree: the parent task (None for a root task) and hops from the root
    parent_id: str | None = None
    depth: int = 0
    #: the verified person the task acts for (from an ID token): ``subject`` and ``issuer``
    user: dict[str, str] | None = None


def task_out(task: TaskRecord, now: float) -> TaskOut:
    return TaskOut(**task_view(task, now))
