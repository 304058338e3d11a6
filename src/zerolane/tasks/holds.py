"""Tasks held for human approval: a response rule's ``require_approval``.

When a detection matches a ``[[response.rules]]`` rule whose actions include
``require_approval``, its task is *held* (a :class:`~zerolane.store.records.TaskHold`
stored with a ``task.held`` event, actor ``system/response:<rule>``). From then on each
request of the task, and of every task delegated below it at any depth, that the
policies would allow is answered "approval required" instead (``approval.required``,
the policy ``response:<rule>`` named): a person approves that one request
(:mod:`zerolane.tasks.approvals`, bound to its arguments as any approval), and it is
allowed once. A request the policies deny stays denied. The hold lasts until an admin
clears it (``zerolane approval release``, ``POST /v1/admin/holds/{task_id}/release``:
a ``task.released`` event) or the task ends (completed, revoked, expired: released by
``system/task-ended``, since an ended task is refused everything anyway and a hold kept
would only count toward :data:`MAX_HOLDS`); an ended task is never held.

Deciders read holds through :class:`Holds` from memory: the stored holds, read again
at most every ``refresh`` seconds (none per decision), and a hold placed or cleared in
this process at once. While any task is held, a task's ancestors are looked up (each
task's parent read once from the store, then remembered: a parent never changes), so
a delegation chain cannot step out of its root's hold. A read that fails makes
:meth:`Holds.held` refuse (``hold.unavailable``: the request is denied) until a read
succeeds again, so a hold another process placed is never missed for longer than
``refresh``: fail closed. So does a read that finds more than :data:`MAX_HOLDS` holds
(one left out would let its task through): release the holds of ended tasks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, NotFound, Unavailable
from zerolane.store.changes import ClearHold, PlaceHold
from zerolane.store.ports import RecordedWrites, TaskHoldStore, TaskStore
from zerolane.store.records import TaskHold, TaskRecord
from zerolane.types import Clock, Outcome

log = logging.getLogger(__name__)

#: seconds between two reads of the stored holds, by default
DEFAULT_REFRESH = 1.0
#: ancestors looked at above a task at most (delegation chains are far shorter)
MAX_ANCESTORS = 64
#: parents remembered at most (then forgotten all at once and read again)
MAX_PARENTS = 100_000
#: holds read at most: more stored than that (never released, even of ended tasks) is
#: a read that cannot be complete, refused as one that fails (a hold left out would let
#: its task through)
MAX_HOLDS = 10_000
MAX_REASON = 256
#: who releases the hold of a task that ended
ENDED = Actor("system", "task-ended")


class HoldStores(TaskHoldStore, TaskStore, RecordedWrites, Protocol):
    """What holds are kept in (every backend's ``Stores`` is one)."""


class Holds:
    """Places, clears and reads task holds (see the module doc)."""

    def __init__(
        self,
        stores: HoldStores,
        audit: AuditLog,
        clock: Clock,
        *,
        refresh: float = DEFAULT_REFRESH,
    ) -> None:
        self._stores = stores
        self._audit = audit
        self._clock = clock
        self._refresh = refresh
        self._lock = threading.Lock()
        self._held: dict[str, TaskHold] = {}
        self._next = 0.0
        self._failed = False
        self._parents: dict[str, str | None] = {}

    # the decider's side
    def held(self, task_id: str, parent_id: str | None = None) -> TaskHold | None:
        """The hold on ``task_id`` or on one of its ancestors (``parent_id`` the first),
        None when none is held. Raises :class:`~zerolane.errors.Unavailable`
        (``hold.unavailable``) while the stored holds, or an ancestor, cannot be read."""
        now = self._clock.now()
        if now >= self._next:
            self._reload(now)
        if self._failed:
            raise Unavailable("hold.unavailable", "the task holds could not be read")
        held = self._held
        if not held:
            return None
        found = held.get(task_id)
        above = parent_id
        for _ in range(MAX_ANCESTORS):
            if found is not None or above is None:
                break
            found = held.get(above)
            above = self._parent_of(above)
        return found

    def _parent_of(self, task_id: str) -> str | None:
        """The parent of ``task_id`` (None: a root, or a task not stored)."""
        if task_id in self._parents:
            return self._parents[task_id]
        try:
            task = self._stores.get_task(task_id)
        except Exception as err:
            raise Unavailable("hold.unavailable", "a task's ancestors could not be read") from err
        parent = task.parent_id if task is not None else None
        if len(self._parents) >= MAX_PARENTS:
            self._parents = {}
        self._parents[task_id] = parent
        return parent

    def _reload(self, now: float) -> None:
        with self._lock:
            if now < self._next:  # another thread just did
                return
            self._next = now + self._refresh
            try:
                found = self._stores.list_holds(MAX_HOLDS + 1)
            except Exception:
                log.exception("reading the task holds failed: requests are refused until it works")
                self._failed = True
                return
            if len(found) > MAX_HOLDS:
                log.error(
                    "more than %d task holds are stored: requests are refused until some are "
                    "released (zerolane approval holds; release those of ended tasks)",
                    MAX_HOLDS,
                )
                self._failed = True
                return
            self._held = {hold.task_id: hold for hold in found}
            self._failed = False

    # the responder's side
    def place(
        self, task_id: str, *, rule: str, detector: str, detection: str, actor: Actor
    ) -> TaskHold | None:
        """Hold ``task_id`` (``task.held`` event); None when it is held already.
        Refused: ``task.unknown`` (NotFound)."""
        task = self._stores.get_task(task_id)
        if task is None:
            raise NotFound("task.unknown", f"no task {task_id}")
        if task.state.ended:  # refused everything already; a hold would outlive it
            return None
        hold = TaskHold(task_id, rule, detector, detection, self._clock.now())
        placed = self._stores.write_recorded(
            PlaceHold(hold),
            lambda done: (
                [self._event("task.held", done, actor, f"response.{rule}")] if done else []
            ),
            seal,
        )
        if placed is not None:
            with self._lock:
                self._held = {**self._held, task_id: placed}
        return placed

    # the admin's side
    def list(self) -> list[TaskHold]:
        """Every hold, oldest first (as stored, not as this process last read them)."""
        return self._stores.list_holds()

    def get(self, task_id: str) -> TaskHold:
        """The hold of ``task_id``; ``hold.unknown`` (NotFound) when it has none."""
        found = self._stores.get_hold(task_id)
        if found is None:
            raise NotFound("hold.unknown", f"task {task_id} is not held")
        return found

    def clear(self, task_id: str, *, actor: Actor, reason: str = "released") -> TaskHold:
        """Clear the hold of ``task_id`` (``task.released`` event): its requests are
        decided by the policies alone again. Refused: ``hold.unknown`` (NotFound),
        ``hold.reason`` (InvalidInput)."""
        if not reason.strip() or len(reason) > MAX_REASON or not reason.isprintable():
            raise InvalidInput("hold.reason", f"the reason is 1..{MAX_REASON} printable characters")
        cleared = self._stores.write_recorded(
            ClearHold(task_id),
            lambda done: [self._event("task.released", done, actor, reason)] if done else [],
            seal,
        )
        if cleared is None:
            raise NotFound("hold.unknown", f"task {task_id} is not held")
        with self._lock:
            self._held = {k: v for k, v in self._held.items() if k != task_id}
        return cleared

    def release_ended(self, tasks: Sequence[TaskRecord]) -> None:
        """The lifecycle's end of ``tasks``: clear the holds of those that ended (their
        descendants end with them). Looked up only while some hold is known."""
        with self._lock:
            any_held = bool(self._held)
        if not any_held:
            return
        for task in tasks:
            if not task.state.ended or self._stores.get_hold(task.task_id) is None:
                continue
            try:
                self.clear(task.task_id, actor=ENDED, reason=f"task {task.state.value}")
            except NotFound:  # cleared meanwhile
                continue

    def _event(self, kind: str, hold: TaskHold, actor: Actor, reason: str) -> dict[str, object]:
        details: dict[str, object] = {
            "rule": hold.rule,
            "detector": hold.detector,
            "detection": hold.detection,
            "held_at": hold.created_at,
        }
        event = self._audit.event(kind, actor, hold.task_id, Outcome.SUCCESS, reason, details)
        return event.unsealed()
