"""How a task is shown (the API's and the CLI's JSON): kept apart from the routes, so
that the CLI shows tasks without importing the web framework."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from zerolane.store.records import TaskRecord
from zerolane.tasks.lifecycle import effective_state
from zerolane.tasks.scope import Scope


class TaskOut(BaseModel):
    task_id: str
    owner: str
    playbook: str
    playbook_version: int
    intent: str
    state: str
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
    scope = Scope.from_json(task.scope)
    return TaskOut(
        task_id=task.task_id,
        owner=task.owner,
        playbook=task.playbook,
        playbook_version=task.playbook_version,
        intent=task.intent,
        state=effective_state(task, now).value,
        scope={
            "actions": list(scope.actions),
            "resources": list(scope.resources),
            "destinations": list(scope.destinations),
            "data_ceiling": scope.ceiling.label,
        },
        created_at=task.created_at,
        expires_at=task.expires_at,
        max_calls=task.max_calls,
        calls_used=task.calls_used,
        on_behalf_of=task.on_behalf_of,
        ended_at=task.ended_at,
        end_reason=task.end_reason,
        parent_id=task.parent_id,
        depth=task.depth,
        user={"subject": task.user_subject, "issuer": task.user_issuer}
        if task.user_subject is not None and task.user_issuer is not None
        else None,
    )
