"""The core services the gateway enforces with, and the task checks it shares.

The gateway gets these from its caller (the CLI opens a deployment and hands them
over), so it depends on the core's ports and never on the server or a store backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zerolane.audit.log import AuditLog
from zerolane.errors import Forbidden
from zerolane.policy.context import TaskFacts
from zerolane.policy.engine import PolicyEngine
from zerolane.store.ports import TaskStore
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import Authenticator
from zerolane.tasks.decisions import Decider
from zerolane.tasks.lifecycle import effective_state
from zerolane.tasks.scope import Scope
from zerolane.tokens.rfc9068 import TaskTokenClaims
from zerolane.types import Clock, TaskState


@dataclass(frozen=True, slots=True, kw_only=True)
class Enforcement:
    decider: Decider
    authenticator: Authenticator
    tasks: TaskStore
    engine: Callable[[], PolicyEngine]
    audit: AuditLog
    clock: Clock
    internal_destinations: tuple[str, ...] = ()


def task_facts(task: TaskRecord, state: TaskState) -> TaskFacts:
    """The policy facts of a stored task (as the decider builds them)."""
    scope = Scope.from_json(task.scope)
    return TaskFacts(
        id=task.task_id,
        playbook=task.playbook,
        intent=task.intent,
        state=state,
        actions=scope.actions,
        resources=scope.resources,
        destinations=scope.destinations,
        ceiling=scope.ceiling,
        touched=task.touched,
        calls_used=task.calls_used,
        max_calls=task.max_calls,
        created_at=task.created_at,
        expires_at=task.expires_at,
        depth=task.depth,
        delegated=task.parent_id is not None,
        on_behalf_of=task.on_behalf_of,
    )


def live_task(tasks: TaskStore, claims: TaskTokenClaims, now: float) -> TaskRecord:
    """The task a verified token is for, when it is still active; else :class:`Forbidden`."""
    task = tasks.get_task(claims.task_id)
    if task is None:
        raise Forbidden("task.unknown", "the token's task does not exist")
    if task.owner != claims.subject or task.token_jti != claims.jti:
        raise Forbidden("token.task_mismatch", "the token was not issued for this task")
    state = effective_state(task, now)
    if state is not TaskState.ACTIVE:
        raise Forbidden(f"task.{state.value}", f"task {task.task_id} is {state.value}")
    return task
