"""The storage ports: one small Protocol per kind of state.

A backend implements all of them (see ``memory`` and ``sqlite``). Every method is
atomic on its own; methods that must be atomic together (consume a join token; append
to the audit chain; commit a decision's spend, proof and event) are single methods
here, never read-then-write in the core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from zerolane.store.changes import Change, RiskScore
from zerolane.store.records import (
    AdminCredential,
    ApprovalRecord,
    ApprovalStatus,
    AuditRecord,
    BusHealth,
    ConsumeResult,
    DetectorCursor,
    EnforcementPoint,
    FederatedBundle,
    JoinToken,
    LeaseRecord,
    LeaseState,
    PlaybookRecord,
    RevocationEvent,
    Spend,
    SpentProof,
    TaskHold,
    TaskRecord,
    Workload,
)
from zerolane.types import TaskState, WorkloadStatus

T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")

#: Seals one event: given its unsealed JSON object, the sequence number it gets and the
#: previous record's hash, returns the record to store. Supplied by the audit layer.
Sealer = Callable[[dict[str, object], int, str], AuditRecord]


class WorkloadStore(Protocol):
    def add_workload(self, workload: Workload) -> None:
        """Store a new workload; raise ``Conflict`` when the SPIFFE ID exists."""

    def get_workload(self, spiffe_id: str) -> Workload | None: ...

    def list_workloads(self) -> list[Workload]:
        """All workloads, ordered by SPIFFE ID."""

    def set_workload_status(
        self, spiffe_id: str, status: WorkloadStatus, at: float
    ) -> Workload | None:
        """Change the status; return the new record, or None when unknown."""


class JoinTokenStore(Protocol):
    def add_join_token(self, token: JoinToken) -> None: ...

    def consume_join_token(self, token_hash: str, now: float) -> ConsumeResult:
        """Atomically mark the token used if it is unused and unexpired.

        Exactly one of any number of concurrent callers gets ``CONSUMED``.
        """


class BundleStore(Protocol):
    def put_bundle(self, bundle: FederatedBundle) -> None:
        """Insert or replace the bundle of ``bundle.trust_domain``."""

    def get_bundle(self, trust_domain: str) -> FederatedBundle | None: ...

    def list_bundles(self) -> list[FederatedBundle]: ...


class AdminStore(Protocol):
    def add_admin_credential(self, credential: AdminCredential) -> None: ...

    def list_admin_credentials(self) -> list[AdminCredential]: ...


class EnforcementPointStore(Protocol):
    """The enforcement points allowed to ask for decisions (``POST /v1/decide``)."""

    def add_enforcement_point(self, point: EnforcementPoint) -> None:
        """Store a new one; raise ``Conflict`` when the name exists."""

    def list_enforcement_points(self) -> list[EnforcementPoint]:
        """All of them, ordered by name."""

    def remove_enforcement_point(self, name: str) -> EnforcementPoint | None:
        """Remove it; the removed record, or None when unknown."""


class AuditStore(Protocol):
    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        """Append ``events`` at the head of the chain, all or none, durably."""

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Records with ``seq > after_seq`` in order, at most ``limit``."""

    def last_event(self) -> AuditRecord | None: ...


class DetectorCursorStore(Protocol):
    """Where each detector is in the audit log (:mod:`zerolane.detection`). Cursors move
    only with :class:`~zerolane.store.changes.AdvanceCursors` through
    :meth:`RecordedWrites.write_recorded`, together with the detections they found."""

    def get_cursor(self, detector: str) -> DetectorCursor | None:
        """The cursor of ``detector``; None when it has seen nothing yet."""

    def list_cursors(self) -> list[DetectorCursor]:
        """Every stored cursor, ordered by detector name."""


class RiskScoreStore(Protocol):
    """Risk scores (:mod:`zerolane.detection.risk`), one row per task or workload,
    written only with the responder's cursor
    (:class:`~zerolane.store.changes.AdvanceCursors` ``scores``)."""

    def risk_scores_since(self, version: int) -> list[RiskScore]:
        """The stored scores whose ``version`` is above ``version`` (-1: every score),
        ordered by version: a reader that keeps the highest version it has read reads
        only the scores written since."""
        ...


class PlaybookStore(Protocol):
    def put_playbook(self, playbook: PlaybookRecord) -> None:
        """Insert or replace the playbook of ``playbook.name``."""

    def get_playbook(self, name: str) -> PlaybookRecord | None: ...

    def list_playbooks(self) -> list[PlaybookRecord]:
        """All playbooks, ordered by name."""


class ApprovalStore(Protocol):
    """Human approvals of requests a policy asked for (:mod:`zerolane.tasks.approvals`).
    They change only through ``write_recorded`` (:class:`~zerolane.store.changes.
    RequestApproval`, ``DecideApproval``, ``UseApproval``), with their audit events."""

    def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...

    def list_approvals(
        self,
        *,
        task_id: str | None = None,
        status: ApprovalStatus | None = None,
        limit: int = 100,
    ) -> list[ApprovalRecord]:
        """Approvals, newest first, optionally of one task and/or in one stored status."""

    def find_approved(self, request: ApprovalRecord, now: float) -> ApprovalRecord | None:
        """The oldest approved approval of the same request as ``request`` (its
        :meth:`~zerolane.store.records.ApprovalRecord.same_request`) unexpired at
        ``now``; None when there is none."""


class TaskHoldStore(Protocol):
    """Tasks held for human approval (:mod:`zerolane.tasks.holds`). They change only
    through ``write_recorded`` (:class:`~zerolane.store.changes.PlaceHold`,
    ``ClearHold``), with their audit events."""

    def get_hold(self, task_id: str) -> TaskHold | None: ...

    def list_holds(self, limit: int = 10_000) -> list[TaskHold]:
        """Holds, oldest first."""


class PendingWrite(Protocol[T_co]):
    """A write handed to the store and not yet known to be durable."""

    def result(self) -> T_co:
        """Wait until it committed and return its result, or raise its error;
        ``Unavailable`` (``store.timeout``) when the store does not answer in time.
        The waiting thread may commit the write itself."""
        ...

    async def result_async(self) -> T_co:
        """:meth:`result` for an event loop: the store commits the write on a thread of
        its own while the loop goes on."""
        ...


class DecisionStore(Protocol):
    """Commits an allowed decision as a unit: the call's spend with its compare-and-set,
    the request's spent proof and the decision's audit events are stored together in
    one durable write, or nothing is. Every backend implements it; it is all a backend
    implements for decisions (their reads are :meth:`TaskStore.get_task`).

    The write is handed over without waiting for it (the caller waits on the pending
    write apart), so a decider can decide the next request of the same task while this
    one commits: that request's compare-and-set then expects this spend to have
    happened, and the writes of one task are applied in the order they were handed
    over."""

    def commit_decision(
        self, spend: Spend, events: Sequence[dict[str, object]], seal: Sealer
    ) -> PendingWrite[TaskRecord | None]:
        """Hand over the write of ``spend`` (:meth:`TaskStore.spend_call`, with its
        proof) and, when it spends, of ``events`` sealed onto the audit chain by
        ``seal``. Never waits for the store. Its ``result()``: the task as the spend
        left it; None when the compare-and-set lost (nothing is stored); raises
        ``ProofReplayed`` when the proof was spent before (nothing is stored) and
        ``Unavailable`` (``audit.write``, ``store.write``...) when the events or the
        write fail (the spend is undone with them)."""
        ...


class TaskStore(Protocol):
    def add_task(self, task: TaskRecord) -> None:
        """Store a new task; raise ``Conflict`` when the id exists."""

    def get_task(self, task_id: str) -> TaskRecord | None: ...

    def list_tasks(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        """Tasks, newest first, optionally of one owner and/or in one stored state."""

    def end_task(self, task_id: str, state: TaskState, at: float, reason: str) -> TaskRecord | None:
        """Move a live (active or suspended) task to ``state``, atomically.

        Returns the updated task, or None when it is unknown or had already ended.
        """

    def spend_call(
        self,
        task_id: str,
        *,
        expected_calls_used: int,
        touched: int,
        now: float,
        expected_max_calls: int | None = None,
        expected_touched: int | None = None,
        proof: SpentProof | None = None,
    ) -> TaskRecord | None:
        """Spend one call, compare-and-set: only when the task is still active, unexpired
        at ``now``, has calls left, ``calls_used == expected_calls_used`` and (when
        given) ``max_calls == expected_max_calls`` (a delegation carves the budget by
        lowering it) and ``touched == expected_touched`` (another task of its tree may
        have raised it). Raises ``touched`` to at least the given rank, and with it,
        in the same write, the ``touched`` of every task of its delegation tree (the
        root and all its descendants): what one task of a tree has read, the whole
        tree has. Returns the updated task, or None when any condition failed (the
        caller re-reads and decides again). With ``proof``, the request's one-time
        proof is spent in the same write (:meth:`SpentProofStore.spend_proof`): when it
        was spent before, nothing is written and ``ProofReplayed`` is raised."""

    # the delegation tree (parent_id / depth)
    def add_child_task(self, child: TaskRecord, *, now: float) -> TaskRecord | None:
        """Store ``child`` under ``child.parent_id``, carving its budget, atomically.

        Only when the parent is active, unexpired at ``now``, ends no earlier than the
        child (``child.expires_at <= parent.expires_at``) and has at least
        ``child.max_calls`` calls left (``max_calls - calls_used``): then the parent's
        ``max_calls`` drops by ``child.max_calls`` and the child is inserted, together.
        The child is stored with ``touched`` at least the parent's (as of this write),
        so a sensitive read by the parent stops the child's egress too.
        Returns the updated parent, or None (nothing written) when a condition failed.
        Raises ``Conflict`` when the child's id exists. A child can therefore never
        be added under a task that has ended: ending a tree and adding to it are
        ordered, one before the other."""

    def list_children(self, parent_id: str) -> list[TaskRecord]:
        """The tasks whose ``parent_id`` is ``parent_id``, oldest first."""

    def end_tree(
        self, task_id: str, state: TaskState, at: float, reason: str, descendant_reason: str
    ) -> list[TaskRecord]:
        """End a task and every descendant, atomically (all or none is written).

        The task moves to ``state`` with ``reason`` if it is live (active or
        suspended); every live descendant (children, their children...) is revoked
        with ``descendant_reason``, whether or not the task itself was still live.
        Returns the tasks ended by this call: the task first when it was ended, then
        its descendants. An unknown task gives ``[]``."""


class SpentProofStore(Protocol):
    """One-time proofs spent by any process of the deployment, durably: a proof spent
    before a restart, or at another enforcement point over the same store, is still
    spent. Decisions spend their proof in the same write as the call they spend
    (``proof=`` of :meth:`TaskStore.spend_call`, ``Spend.proof`` of
    :meth:`DecisionStore.commit_decision`)."""

    def spend_proof(self, proof: SpentProof, now: float) -> bool:
        """Remember ``proof`` until its ``expires_at``; True only the first time it is
        spent (by anyone), False when it was spent before or has already expired.
        Raises ``Unavailable`` when it cannot be stored: the caller refuses."""


class ReplayCache(Protocol):
    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        """Remember ``key`` until ``expires_at``; True only the first time it is seen.

        A cache that cannot remember (full, unreachable) returns False: fail closed.
        """


class LeaseStore(Protocol):
    """Leases of downstream credentials (grants); state changes are compare-and-set."""

    def add_lease(self, lease: LeaseRecord) -> None:
        """Store a new lease; raise ``Conflict`` when the id exists."""

    def get_lease(self, lease_id: str) -> LeaseRecord | None: ...

    def list_leases(
        self,
        *,
        task_id: str | None = None,
        state: LeaseState | None = None,
        due_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[LeaseRecord]:
        """Leases, newest first, optionally of one task and/or in one state. With
        ``due_before``: only leases whose ``next_attempt_at`` is set and <= it. With
        ``before`` (the ``(created_at, lease_id)`` of the last lease of a page): the
        next page, the leases older than it."""

    def transition_lease(
        self,
        lease_id: str,
        *,
        expected: Sequence[LeaseState],
        state: LeaseState,
        at: float,
        count_attempt: bool = False,
        error: str | None = None,
        next_attempt_at: float | None = None,
        end_reason: str | None = None,
    ) -> LeaseRecord | None:
        """Move the lease to ``state`` only if it is in one of ``expected`` (atomic).

        Sets ``updated_at = at`` and ``next_attempt_at`` (None clears it); adds one to
        ``attempts`` when ``count_attempt``; replaces ``last_error`` and ``end_reason``
        when given. Returns the updated lease, or None when unknown or not in
        ``expected`` (someone else moved it first)."""


#: The events that record a change, given its result (unsealed JSON objects, in order;
#: none: nothing is appended). Called inside the change's write: quick and pure.
EventsOf = Callable[[R], Sequence[dict[str, object]]]


class RecordedWrites(Protocol):
    """Apply a state change and append the audit events that record it in one durable
    write (see :mod:`zerolane.store.changes`): both are stored or neither is."""

    def write_recorded(self, change: Change[R], events: EventsOf[R], seal: Sealer) -> R:
        """Apply ``change``, then append ``events(result)`` sealed by ``seal``, in one
        transaction; return the change's result once durable. When the change raises
        (``Conflict``...) nothing is written and its error is raised; when building,
        sealing or appending the events fails the change is undone too and
        ``Unavailable`` (``audit.write``, or ``store.write``) is raised."""
        ...


class Stores(
    WorkloadStore,
    JoinTokenStore,
    BundleStore,
    AdminStore,
    AuditStore,
    DetectorCursorStore,
    RiskScoreStore,
    PlaybookStore,
    TaskStore,
    DecisionStore,
    LeaseStore,
    SpentProofStore,
    EnforcementPointStore,
    ApprovalStore,
    TaskHoldStore,
    RecordedWrites,
    Protocol,
):
    """Everything one backend provides."""

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


#: The hash that the first event of a chain links to.
GENESIS_HASH = "0" * 64


RevocationCallback = Callable[[RevocationEvent], None]


class RevocationBus(Protocol):
    """Pub/sub of revocation events between the processes of a deployment.

    In-process now (:mod:`zerolane.store.memory.bus`); a network bus (Redis) later,
    so events are small serializable records and delivery is at most once: a
    subscriber learns it may have missed events from a gap in ``sequence`` or from
    :meth:`health`, and enforcement fails closed past its grace window.
    """

    def publish(self, event: RevocationEvent) -> RevocationEvent:
        """Send ``event`` to every subscriber; returns it with its ``sequence``.
        Raises ``Unavailable`` when the bus cannot take it."""

    def subscribe(self, callback: RevocationCallback) -> Callable[[], None]:
        """Call ``callback`` with every event published from now on (in sequence
        order, on a thread of the bus); returns the function that unsubscribes."""

    def health(self) -> BusHealth:
        """Whether this process is connected, and when the bus last proved reachable."""
