"""The core services the gateway enforces with, and the task check it shares.

The gateway gets these from its caller (the CLI opens a deployment and hands them
over), so it depends on the core's ports and never on the server or a store backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zerolane.audit.log import AuditLog
from zerolane.errors import Forbidden
from zerolane.policy.engine import PolicyEngine
from zerolane.store.ports import TaskStore
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import Authenticator
from zerolane.tasks.decisions import Decider
from zerolane.tasks.lifecycle import effective_state
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
