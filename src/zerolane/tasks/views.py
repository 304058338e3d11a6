"""How tasks are seen: their effective state, their delegation tree, their JSON view.

Kept light (no lifecycle, tokens or policy engine), so that ``zerolane task list``,
``show`` and ``tree`` read and show tasks without importing the rest of the core. The
lifecycle (:mod:`zerolane.tasks.lifecycle`) uses the same rules, and records an expiry
once it is due (:func:`expiry_due`); the API's ``TaskOut`` is :func:`task_view`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zerolane.store.ports import TaskStore
from zerolane.store.records import TaskRecord
from zerolane.tasks.scope import Scope
from zerolane.types import TaskState

#: how many active tasks a listing by state looks at for expiries to record
MAX_SWEEP = 10_000
#: the most tasks a delegation tree is shown with
TREE_LIMIT = 1000
#: the stored states whose expiries a listing of a state records first: a listing of
#: active, suspended or expired tasks never shows a task past its window as live
SWEPT = {
    TaskState.ACTIVE: (TaskState.ACTIVE,),
    TaskState.SUSPENDED: (TaskState.SUSPENDED,),
    TaskState.EXPIRED: (TaskState.ACTIVE, TaskState.SUSPENDED),
}


def effective_state(task: TaskRecord, now: float) -> TaskState:
    """The state a decision sees: a live (active or suspended) task past its window is
    expired (a suspension never extends a window)."""
    if not task.state.ended and now >= task.expires_at:
        return TaskState.EXPIRED
    return task.state


def expiry_due(task: TaskRecord, now: float) -> bool:
    """Whether ``task``'s expiry is still to be recorded at ``now``: it is stored live
    (active or suspended) and its window is over."""
    return not task.state.ended and now >= task.expires_at


def tree_of(
    tasks: TaskStore,
    root: TaskRecord,
    *,
    limit: int,
    seen: Callable[[TaskRecord], TaskRecord] = lambda task: task,
) -> list[TaskRecord]:
    """``root`` and its descendants, parents before children (depth first, oldest child
    first), at most ``limit`` tasks; each child read is passed through ``seen`` (the
    lifecycle records a due expiry there)."""
    found = [root]
    pending = [root]
    while pending and len(found) < limit:
        children = tasks.list_children(pending.pop().task_id)[: limit - len(found)]
        children = [seen(child) for child in children]
        found.extend(children)
        pending.extend(children)
    return _depth_first(found)


def _depth_first(tasks: Sequence[TaskRecord]) -> list[TaskRecord]:
    """``tasks`` (a tree given root first) ordered parent, then each child's subtree."""
    children: dict[str | None, list[TaskRecord]] = {}
    for task in tasks[1:]:
        children.setdefault(task.parent_id, []).append(task)
    ordered: list[TaskRecord] = []
    pending = [tasks[0]] if tasks else []
    while pending:
        task = pending.pop()
        ordered.append(task)
        kids = sorted(children.get(task.task_id, []), key=lambda t: (t.created_at, t.task_id))
        pending.extend(reversed(kids))
    return ordered


def task_view(task: TaskRecord, now: float) -> dict[str, Any]:
    """How a task is shown (the API's ``TaskOut`` and the CLI's JSON): its state as
    decisions see it at ``now``, its mode (``shadow`` when its playbook ran in shadow
    mode as it was opened: what the policies deny it is let through, audited as a
    would-deny), its scope, its place in a delegation tree and the verified person it
    acts for."""
    scope = Scope.from_json(task.scope)
    user = None
    if task.user_subject is not None and task.user_issuer is not None:
        user = {"subject": task.user_subject, "issuer": task.user_issuer}
    return {
        "task_id": task.task_id,
        "owner": task.owner,
        "playbook": task.playbook,
        "playbook_version": task.playbook_version,
        "intent": task.intent,
        "state": effective_state(task, now).value,
        "mode": "shadow" if scope.shadow else "enforce",
        "scope": {
            "actions": list(scope.actions),
            "resources": list(scope.resources),
            "destinations": list(scope.destinations),
            "data_ceiling": scope.ceiling.label,
        },
        "created_at": float(task.created_at),
        "expires_at": float(task.expires_at),
        "max_calls": task.max_calls,
        "calls_used": task.calls_used,
        "on_behalf_of": task.on_behalf_of,
        "ended_at": float(task.ended_at) if task.ended_at is not None else None,
        "end_reason": task.end_reason,
        "parent_id": task.parent_id,
        "depth": task.depth,
        "user": user,
    }
