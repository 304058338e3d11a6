"""In-memory approvals, composed into :class:`zerolane.store.memory.MemoryStores`
(whose lock guards them: they change only inside ``write_recorded``)."""

from __future__ import annotations

import dataclasses
import threading

from zerolane.errors import Conflict
from zerolane.store.changes import (
    ClearHold,
    DecideApproval,
    PlaceHold,
    PruneApprovals,
    RequestApproval,
    UseApproval,
)
from zerolane.store.records import ApprovalRecord, ApprovalStatus, TaskHold


class MemoryApprovals:
    """Implements :class:`zerolane.store.ports.ApprovalStore` and ``TaskHoldStore``."""

    _lock: threading.RLock

    def __init__(self) -> None:
        self._approvals: dict[str, ApprovalRecord] = {}
        self._holds: dict[str, TaskHold] = {}

    def get_hold(self, task_id: str) -> TaskHold | None:
        with self._lock:
            return self._holds.get(task_id)

    def list_holds(self, limit: int = 10_000) -> list[TaskHold]:
        with self._lock:
            found = sorted(self._holds.values(), key=lambda h: (h.created_at, h.task_id))
        return found[:limit]

    def _place_hold(self, change: PlaceHold) -> TaskHold | None:
        """:class:`PlaceHold` (the lock is held)."""
        if change.hold.task_id in self._holds:
            return None
        self._holds[change.hold.task_id] = change.hold
        return change.hold

    def _clear_hold(self, change: ClearHold) -> TaskHold | None:
        """:class:`ClearHold` (the lock is held)."""
        return self._holds.pop(change.task_id, None)

    def _prune_approvals(self, change: PruneApprovals) -> int:
        """:class:`PruneApprovals` (the lock is held)."""
        old = sorted(
            (a for a in self._approvals.values() if a.expires_at < change.before),
            key=lambda a: a.expires_at,
        )[: change.limit]
        for approval in old:
            del self._approvals[approval.approval_id]
        return len(old)

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        with self._lock:
            return self._approvals.get(approval_id)

    def list_approvals(
        self,
        *,
        task_id: str | None = None,
        status: ApprovalStatus | None = None,
        limit: int = 100,
    ) -> list[ApprovalRecord]:
        with self._lock:
            found = [
                a
                for a in self._approvals.values()
                if (task_id is None or a.task_id == task_id)
                and (status is None or a.status is status)
            ]
        found.sort(key=lambda a: (a.created_at, a.approval_id), reverse=True)
        return found[:limit]

    def find_approved(self, request: ApprovalRecord, now: float) -> ApprovalRecord | None:
        with self._lock:
            found = [
                a
                for a in self._approvals.values()
                if a.status is ApprovalStatus.APPROVED
                and a.expires_at > now
                and a.same_request(request)
            ]
        return min(found, key=lambda a: (a.created_at, a.approval_id), default=None)

    def _request_approval(self, change: RequestApproval) -> ApprovalRecord:
        """:class:`RequestApproval` (the lock is held)."""
        asked = change.approval
        now = asked.created_at
        pending = 0
        for stored in sorted(self._approvals.values(), key=lambda a: a.created_at):
            if stored.task_id != asked.task_id or stored.expires_at <= now:
                continue
            asked_before = stored.status in (ApprovalStatus.PENDING, ApprovalStatus.DENIED)
            if asked_before and stored.same_request(asked):
                return stored
            pending += stored.status is ApprovalStatus.PENDING
        if pending >= change.max_pending:
            raise Conflict(
                "approval.too_many",
                f"task {asked.task_id} has {pending} approvals pending already",
            )
        if asked.approval_id in self._approvals:
            raise Conflict("approval.exists", f"approval {asked.approval_id} exists")
        self._approvals[asked.approval_id] = asked
        return asked

    def _decide_approval(self, change: DecideApproval) -> ApprovalRecord | None:
        """:class:`DecideApproval` (the lock is held)."""
        stored = self._approvals.get(change.approval_id)
        if stored is None or stored.status is not ApprovalStatus.PENDING:
            return None
        if stored.expires_at <= change.at:
            return None
        decided = dataclasses.replace(
            stored,
            status=change.status,
            approver=change.approver,
            reason=change.reason,
            decided_at=change.at,
        )
        self._approvals[stored.approval_id] = decided
        return decided

    def _use_approval(self, change: UseApproval) -> ApprovalRecord | None:
        """:class:`UseApproval` (the lock is held)."""
        stored = self._approvals.get(change.approval_id)
        if stored is None or stored.status is not ApprovalStatus.APPROVED:
            return None
        if stored.expires_at <= change.at:
            return None
        used = dataclasses.replace(stored, status=ApprovalStatus.USED, used_at=change.at)
        self._approvals[stored.approval_id] = used
        return used
