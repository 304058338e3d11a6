"""A task asks for a downstream credential its playbook grants (``POST /v1/tasks/{id}/grants``).

Only the task's owner, holding the task token and its key, may ask; only while the
task is active and neither it nor an ancestor is held for approval
(:mod:`zerolane.tasks.holds`: a credential handed out would reach the downstream with
no request approved); only for a broker the task's playbook lists (at the version the
task was opened under); never a legacy credential (a static secret outlives every task, so
it is only ever injected by the gateway). What the agent receives lives no longer
than the task, and is revoked when the task ends (:mod:`zerolane.grants.leases`).
"""

from __future__ import annotations

from collections.abc import Callable

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Conflict, Forbidden, NotFound
from zerolane.grants.broker import GrantTemplate
from zerolane.grants.leases import IssuedGrant, LeaseManager
from zerolane.store.ports import TaskStore
from zerolane.store.records import TaskHold, TaskRecord
from zerolane.tasks.lifecycle import effective_state
from zerolane.tasks.playbook_registry import PlaybookRegistry
from zerolane.types import Clock, Outcome, TaskState


class TaskGrants:
    def __init__(
        self,
        *,
        tasks: TaskStore,
        playbooks: PlaybookRegistry,
        leases: LeaseManager,
        audit: AuditLog,
        clock: Clock,
        held: Callable[[str, str | None], TaskHold | None] | None = None,
    ) -> None:
        """``held``: the hold on a task or one of its ancestors
        (:meth:`zerolane.tasks.holds.Holds.held`; none: no task is ever held)."""
        self._tasks = tasks
        self._playbooks = playbooks
        self.leases = leases
        self._audit = audit
        self._clock = clock
        self._held = held

    def issue(self, task_id: str, broker: str, *, holder_sub: str, holder_task: str) -> IssuedGrant:
        """Issue ``broker``'s credential to the holder of task ``task_id``'s token."""
        actor = Actor("workload", holder_sub)
        try:
            task, template = self._check(task_id, broker, actor, holder_task)
        except (Forbidden, NotFound, Conflict) as err:  # refused before any lease exists
            self._audit.record(
                "grant.issue",
                actor=actor,
                subject=task_id[:200],
                outcome=Outcome.DENIED,
                reason=err.reason,
                details={"broker": broker[:64], "task_id": task_id[:200]},
            )
            raise
        # from here the lease manager records what happens (grant.issue / revoke)
        return self.leases.issue(task, template, actor=actor)

    def _check(
        self, task_id: str, broker: str, actor: Actor, holder_task: str
    ) -> tuple[TaskRecord, GrantTemplate]:
        if holder_task != task_id:
            raise Forbidden("task.not_yours", "this token belongs to another task")
        task = self._tasks.get_task(task_id)
        if task is None:
            raise NotFound("task.unknown", f"no task {task_id}")
        if task.owner != actor.id:
            raise Forbidden("task.not_yours", "only the task's owner may ask for its grants")
        state = effective_state(task, self._clock.now())
        if state is TaskState.SUSPENDED:  # until an admin resumes it
            raise Forbidden("task.suspended", f"task {task_id} is suspended")
        if state is not TaskState.ACTIVE:
            raise Conflict("task.ended", f"task {task_id} is {state.value}")
        # held for approval (it or an ancestor): every request needs a person's yes, so
        # no credential that reaches the downstream without one (Unavailable when the
        # holds cannot be read: refused all the same)
        if self._held is not None and self._held(task.task_id, task.parent_id) is not None:
            raise Forbidden("task.held", f"task {task_id} is held for approval")
        record = self._playbooks.record(task.playbook)
        if record.version != task.playbook_version:
            raise Conflict(
                "grant.playbook_changed",
                f"playbook {task.playbook} changed since the task was opened: open a new task",
            )
        template = self._playbooks.get(task.playbook).grant(broker)
        if template is None:
            raise Forbidden(
                "grant.not_in_playbook", f"playbook {task.playbook} grants no {broker!r} credential"
            )
        configured = self.leases.brokers.get(broker)
        if configured is None:
            raise NotFound("grant.broker_unknown", f"no grant broker {broker!r} is configured")
        if configured.legacy:
            raise Forbidden(
                "grant.legacy",
                f"{broker!r} is a legacy credential: the gateway injects it, never hands it out",
            )
        return task, template
