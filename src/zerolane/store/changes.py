"""State changes a store applies together with their audit events, in one transaction.

A change is a small frozen record naming one write of a port (insert a task, end a
tree...); :meth:`zerolane.store.ports.RecordedWrites.write_recorded` applies it, asks
the caller for the events that record what it did (built from its result, inside the
write) and appends them to the audit chain in the same transaction: the change and its
events are durable together or not at all. A crash between the two can therefore no
longer leave, say, an active task without its ``task.opened`` event.

Each change's result is the result of the port method it mirrors (its type parameter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from zerolane.store.records import (
    AdminCredential,
    ApprovalRecord,
    ApprovalStatus,
    ConsumeResult,
    DetectorCursor,
    EnforcementPoint,
    FederatedBundle,
    JoinToken,
    LeaseRecord,
    LeaseState,
    PlaybookRecord,
    TaskHold,
    TaskRecord,
    Workload,
)
from zerolane.types import TaskState, WorkloadStatus

R_co = TypeVar("R_co", covariant=True)


class Change(Generic[R_co]):
    """A write whose result is of type ``R_co`` (the base of every change)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AddTask(Change[None]):
    """:meth:`~zerolane.store.ports.TaskStore.add_task` (``Conflict`` when the id exists)."""

    task: TaskRecord


@dataclass(frozen=True, slots=True)
class AddChildTask(Change[TaskRecord | None]):
    """:meth:`~zerolane.store.ports.TaskStore.add_child_task`: the carved parent, or None
    (nothing written, and then no event either) when a condition failed."""

    child: TaskRecord
    now: float


@dataclass(frozen=True, slots=True)
class EndTree(Change[list[TaskRecord]]):
    """:meth:`~zerolane.store.ports.TaskStore.end_tree`: the tasks it ended."""

    task_id: str
    state: TaskState
    at: float
    reason: str
    descendant_reason: str


@dataclass(frozen=True, slots=True)
class ExpireTree(Change[list[TaskRecord]]):
    """Record that the window of ``task_id`` (and so of every descendant, whose window
    ends no later) is over: every live (active or suspended) task of the subtree whose
    ``expires_at <= at`` moves to ``expired`` with reason ``expired``, its
    ``ended_at`` being its ``expires_at``. A task whose window is not over at ``at`` is
    left alone. Returns the tasks expired by this write: ``task_id`` first when it was,
    then its descendants (by depth, then age)."""

    task_id: str
    at: float


@dataclass(frozen=True, slots=True)
class SuspendTree(Change[list[TaskRecord]]):
    """Suspend ``task_id`` and its live subtree: only when the task is ``active`` and its
    window is not over at ``at``, it moves to ``suspended`` with ``end_reason`` =
    ``reason``, and every descendant that is ``active`` and unexpired at ``at`` moves to
    ``suspended`` with ``descendant_reason`` (the mark :class:`ResumeTree` follows).
    ``ended_at`` and ``expires_at`` stay as they are: a suspension never ends a task nor
    moves its window. Returns the tasks suspended by this write: ``task_id`` first,
    then its descendants (by depth, then age); ``[]`` (nothing written, not even below)
    when the task is unknown, not active or past its window."""

    task_id: str
    at: float
    reason: str
    descendant_reason: str


@dataclass(frozen=True, slots=True)
class ResumeTree(Change[list[TaskRecord]]):
    """Resume ``task_id`` and what was suspended with it: only when the task is
    ``suspended``, its window is not over at ``at`` and it has no parent or an
    ``active`` one (a task whose parent is suspended waits for its parent), it moves
    back to ``active`` (``end_reason`` cleared), and so does every descendant reached
    through descendants that are ``suspended`` with ``descendant_reason`` (suspended by
    this task's suspension, not on their own) and unexpired at ``at``. A descendant
    suspended on its own, and its subtree, stays suspended. Returns the tasks resumed
    by this write: ``task_id`` first, then its descendants (by depth, then age); ``[]``
    (nothing written) when the task cannot be resumed."""

    task_id: str
    at: float
    descendant_reason: str


@dataclass(frozen=True, slots=True)
class AddWorkload(Change[None]):
    """:meth:`~zerolane.store.ports.WorkloadStore.add_workload`."""

    workload: Workload


@dataclass(frozen=True, slots=True)
class SetWorkloadStatus(Change[Workload | None]):
    """:meth:`~zerolane.store.ports.WorkloadStore.set_workload_status`."""

    spiffe_id: str
    status: WorkloadStatus
    at: float


@dataclass(frozen=True, slots=True)
class AddJoinToken(Change[None]):
    """:meth:`~zerolane.store.ports.JoinTokenStore.add_join_token`."""

    token: JoinToken


@dataclass(frozen=True, slots=True)
class ConsumeJoinToken(Change[ConsumeResult]):
    """:meth:`~zerolane.store.ports.JoinTokenStore.consume_join_token`."""

    token_hash: str
    now: float


@dataclass(frozen=True, slots=True)
class PutPlaybook(Change[None]):
    """:meth:`~zerolane.store.ports.PlaybookStore.put_playbook`."""

    playbook: PlaybookRecord


@dataclass(frozen=True, slots=True)
class PutBundle(Change[None]):
    """:meth:`~zerolane.store.ports.BundleStore.put_bundle`."""

    bundle: FederatedBundle


@dataclass(frozen=True, slots=True)
class AddAdminCredential(Change[None]):
    """:meth:`~zerolane.store.ports.AdminStore.add_admin_credential`."""

    credential: AdminCredential


@dataclass(frozen=True, slots=True)
class TransitionLease(Change[LeaseRecord | None]):
    """:meth:`~zerolane.store.ports.LeaseStore.transition_lease`: the updated lease, or
    None (nothing written, and then no event either) when it was not in ``expected``."""

    lease_id: str
    expected: tuple[LeaseState, ...]
    state: LeaseState
    at: float
    count_attempt: bool = False
    error: str | None = None
    next_attempt_at: float | None = None
    end_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AddEnforcementPoint(Change[None]):
    """:meth:`~zerolane.store.ports.EnforcementPointStore.add_enforcement_point`."""

    point: EnforcementPoint


@dataclass(frozen=True, slots=True)
class RemoveEnforcementPoint(Change[EnforcementPoint | None]):
    """:meth:`~zerolane.store.ports.EnforcementPointStore.remove_enforcement_point`."""

    name: str


@dataclass(frozen=True, slots=True)
class CursorAdvance:
    """Move the cursor of ``detector`` from ``expected_seq`` (0: it has none yet) to
    ``seq``, remembering ``state`` (JSON text)."""

    detector: str
    expected_seq: int
    seq: int
    state: str
    at: float

    def cursor(self) -> DetectorCursor:
        return DetectorCursor(self.detector, self.seq, self.state, self.at)


@dataclass(frozen=True, slots=True)
class RiskScore:
    """One stored risk score (:class:`~zerolane.store.ports.RiskScoreStore`): of a task
    or a workload (``kind``: ``task`` or ``workload``) ``key``, ``value`` as of ``at``
    (decayed on read), forgotten from ``forget_at`` (decayed below the threshold);
    ``version``: the responder's cursor seq of the write that stored it."""

    kind: str
    key: str
    value: float
    at: float
    forget_at: float
    version: int


@dataclass(frozen=True, slots=True)
class AdvanceCursors(Change[bool]):
    """Advance detectors' cursors (:class:`~zerolane.store.ports.DetectorCursorStore`),
    compare-and-set, all or none: True when every cursor was where its advance expected
    it (they are all written), False when any was not (nothing is written, and then no
    event either: another runner got there first). Recorded with the detections found
    in the events the cursors pass, a detection is stored exactly once.

    ``scores``: risk scores stored with the cursors (each replaces the stored score of
    its kind and key), and, when ``forget_before`` is set, the stored scores whose
    ``forget_at`` is before it deleted, all in the same write (none when a cursor was
    not where expected)."""

    advances: tuple[CursorAdvance, ...]
    scores: tuple[RiskScore, ...] = ()
    forget_before: float | None = None


@dataclass(frozen=True, slots=True)
class RequestApproval(Change[ApprovalRecord]):
    """Ask for ``approval`` (a new pending record) unless the same request
    (:meth:`~zerolane.store.records.ApprovalRecord.same_request`) already has an
    approval that is pending or denied and unexpired at ``approval.created_at``: then
    that one is the result and nothing is written (so a retried request never floods
    the approvers). Otherwise the task may hold at most ``max_pending`` unexpired
    pending approvals: one more raises ``Conflict`` (``approval.too_many``)."""

    approval: ApprovalRecord
    max_pending: int


@dataclass(frozen=True, slots=True)
class DecideApproval(Change[ApprovalRecord | None]):
    """Approve or deny (``status``) a pending approval unexpired at ``at``, naming its
    ``approver`` and ``reason``; None (nothing written) when it is unknown, not pending
    or expired."""

    approval_id: str
    status: ApprovalStatus
    approver: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class UseApproval(Change[ApprovalRecord | None]):
    """Spend an approved approval unexpired at ``at`` (it becomes ``used``); None
    (nothing written) when it is unknown, not approved (used already) or expired."""

    approval_id: str
    at: float


@dataclass(frozen=True, slots=True)
class PruneApprovals(Change[int]):
    """Delete at most ``limit`` approvals that expired before ``before`` (a used,
    denied or approved one expires too: every one of them is settled by then, its
    history in the audit log); the number deleted."""

    before: float
    limit: int


@dataclass(frozen=True, slots=True)
class PlaceHold(Change[TaskHold | None]):
    """Hold a task (:class:`~zerolane.store.records.TaskHold`): each of its requests
    needs a human approval; None (nothing written) when it is held already."""

    hold: TaskHold


@dataclass(frozen=True, slots=True)
class ClearHold(Change[TaskHold | None]):
    """Clear the hold of ``task_id``; the hold cleared, None when it had none."""

    task_id: str
