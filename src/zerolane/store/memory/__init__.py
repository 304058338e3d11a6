"""In-memory backend: for tests and throwaway runs; nothing survives the process."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from zerolane.errors import Conflict, ProofReplayed, Unavailable, ZerolaneError
from zerolane.store.changes import (
    AddAdminCredential,
    AddChildTask,
    AddEnforcementPoint,
    AddJoinToken,
    AddTask,
    AddWorkload,
    AdvanceCursors,
    Change,
    ClearHold,
    ConsumeJoinToken,
    DecideApproval,
    EndTree,
    ExpireTree,
    PlaceHold,
    PruneApprovals,
    PutBundle,
    PutPlaybook,
    RemoveEnforcementPoint,
    RequestApproval,
    ResumeTree,
    RiskScore,
    SetWorkloadStatus,
    SuspendTree,
    TransitionLease,
    UseApproval,
)
from zerolane.store.memory.approvals import MemoryApprovals
from zerolane.store.memory.done import Done, Failed
from zerolane.store.memory.leases import MemoryLeases
from zerolane.store.memory.proofs import MemorySpentProofs
from zerolane.store.ports import GENESIS_HASH, EventsOf, PendingWrite, Sealer
from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeResult,
    ConsumeStatus,
    DetectorCursor,
    EnforcementPoint,
    FederatedBundle,
    JoinToken,
    LeaseRecord,
    PlaybookRecord,
    Spend,
    SpentProof,
    TaskRecord,
    Workload,
)
from zerolane.types import TaskState, WorkloadStatus

R = TypeVar("R")

SCHEMA_VERSION = 10  # the SQL schema version whose state this backend holds


class MemoryStores(MemoryLeases, MemorySpentProofs, MemoryApprovals):
    """Implements every port of :mod:`zerolane.store.ports` under one lock."""

    def __init__(self) -> None:
        MemoryLeases.__init__(self)
        MemorySpentProofs.__init__(self)
        MemoryApprovals.__init__(self)
        self._lock = threading.RLock()  # re-entrant: see write_recorded
        self._proofs_lock = self._lock  # a spend and its proof change together
        self._workloads: dict[str, Workload] = {}
        self._join_tokens: dict[str, JoinToken] = {}
        self._bundles: dict[str, FederatedBundle] = {}
        self._admins: list[AdminCredential] = []
        self._points: dict[str, EnforcementPoint] = {}
        self._cursors: dict[str, DetectorCursor] = {}
        self._risk: dict[tuple[str, str], RiskScore] = {}  # (kind, key) -> score
        self._events: list[AuditRecord] = []
        self._playbooks: dict[str, PlaybookRecord] = {}
        self._tasks: dict[str, TaskRecord] = {}
        self._children: dict[str, list[str]] = {}  # parent id -> child ids, oldest first

    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def close(self) -> None:
        return None

    # workloads
    def add_workload(self, workload: Workload) -> None:
        with self._lock:
            if workload.spiffe_id in self._workloads:
                raise Conflict("workload.exists", f"{workload.spiffe_id} is already registered")
            self._workloads[workload.spiffe_id] = workload

    def get_workload(self, spiffe_id: str) -> Workload | None:
        with self._lock:
            return self._workloads.get(spiffe_id)

    def list_workloads(self) -> list[Workload]:
        with self._lock:
            return [self._workloads[k] for k in sorted(self._workloads)]

    def set_workload_status(
        self, spiffe_id: str, status: WorkloadStatus, at: float
    ) -> Workload | None:
        with self._lock:
            current = self._workloads.get(spiffe_id)
            if current is None:
                return None
            updated = dataclasses.replace(current, status=status, updated_at=at)
            self._workloads[spiffe_id] = updated
            return updated

    # join tokens
    def add_join_token(self, token: JoinToken) -> None:
        with self._lock:
            if token.token_hash in self._join_tokens:
                raise Conflict("join_token.exists", "a join token with this hash exists")
            self._join_tokens[token.token_hash] = token

    def consume_join_token(self, token_hash: str, now: float) -> ConsumeResult:
        with self._lock:
            token = self._join_tokens.get(token_hash)
            if token is None:
                return ConsumeResult(ConsumeStatus.UNKNOWN, None)
            if token.used_at is not None:
                return ConsumeResult(ConsumeStatus.ALREADY_USED, token)
            if now >= token.expires_at:
                return ConsumeResult(ConsumeStatus.EXPIRED, token)
            used = dataclasses.replace(token, used_at=now)
            self._join_tokens[token_hash] = used
            return ConsumeResult(ConsumeStatus.CONSUMED, used)

    # federation bundles
    def put_bundle(self, bundle: FederatedBundle) -> None:
        with self._lock:
            self._bundles[bundle.trust_domain] = bundle

    def get_bundle(self, trust_domain: str) -> FederatedBundle | None:
        with self._lock:
            return self._bundles.get(trust_domain)

    def list_bundles(self) -> list[FederatedBundle]:
        with self._lock:
            return [self._bundles[k] for k in sorted(self._bundles)]

    # admin credentials
    def add_admin_credential(self, credential: AdminCredential) -> None:
        with self._lock:
            self._admins.append(credential)

    def list_admin_credentials(self) -> list[AdminCredential]:
        with self._lock:
            return list(self._admins)

    # audit
    def add_enforcement_point(self, point: EnforcementPoint) -> None:
        with self._lock:
            if point.name in self._points:
                raise Conflict("enforcement_point.exists", f"{point.name} exists")
            self._points[point.name] = point

    def list_enforcement_points(self) -> list[EnforcementPoint]:
        with self._lock:
            return [self._points[name] for name in sorted(self._points)]

    def remove_enforcement_point(self, name: str) -> EnforcementPoint | None:
        with self._lock:
            return self._points.pop(name, None)

    # detector cursors (moved only by AdvanceCursors, see write_recorded)
    def get_cursor(self, detector: str) -> DetectorCursor | None:
        with self._lock:
            return self._cursors.get(detector)

    def list_cursors(self) -> list[DetectorCursor]:
        with self._lock:
            return [self._cursors[name] for name in sorted(self._cursors)]

    def _advance_cursors(self, change: AdvanceCursors) -> bool:
        """:class:`AdvanceCursors` (the lock is held)."""
        for step in change.advances:
            stored = self._cursors.get(step.detector)
            if (stored.seq if stored is not None else 0) != step.expected_seq:
                return False
        for step in change.advances:
            self._cursors[step.detector] = step.cursor()
        for score in change.scores:
            self._risk[score.kind, score.key] = score
        if change.forget_before is not None:
            before = change.forget_before
            self._risk = {k: s for k, s in self._risk.items() if s.forget_at >= before}
        return True

    # risk scores (written only by AdvanceCursors)
    def risk_scores_since(self, version: int) -> list[RiskScore]:
        with self._lock:
            newer = [score for score in self._risk.values() if score.version > version]
        return sorted(newer, key=lambda score: score.version)

    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        with self._lock:
            sealed = self._sealed(events, seal)
            self._events.extend(sealed)
            return sealed

    def _sealed(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        """``events`` sealed onto the chain's head, not yet appended (the lock is held)."""
        prev = self._events[-1] if self._events else None
        seq = prev.seq if prev else 0
        prev_hash = prev.hash if prev else GENESIS_HASH
        sealed: list[AuditRecord] = []
        for event in events:
            seq += 1
            record = seal(event, seq, prev_hash)
            sealed.append(record)
            prev_hash = record.hash
        return sealed

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        with self._lock:
            return [r for r in self._events if r.seq > after_seq][:limit]

    def last_event(self) -> AuditRecord | None:
        with self._lock:
            return self._events[-1] if self._events else None

    # playbooks
    def put_playbook(self, playbook: PlaybookRecord) -> None:
        with self._lock:
            self._playbooks[playbook.name] = playbook

    def get_playbook(self, name: str) -> PlaybookRecord | None:
        with self._lock:
            return self._playbooks.get(name)

    def list_playbooks(self) -> list[PlaybookRecord]:
        with self._lock:
            return [self._playbooks[k] for k in sorted(self._playbooks)]

    # tasks
    def add_task(self, task: TaskRecord) -> None:
        with self._lock:
            if task.task_id in self._tasks:
                raise Conflict("task.exists", f"task {task.task_id} exists")
            self._tasks[task.task_id] = task
            if task.parent_id is not None:
                self._children.setdefault(task.parent_id, []).append(task.task_id)

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            return self._tasks.get(task_id)

    def list_tasks(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        with self._lock:
            tasks = [
                t
                for t in self._tasks.values()
                if (owner is None or t.owner == owner) and (state is None or t.state is state)
            ]
        tasks.sort(key=lambda t: (t.created_at, t.task_id), reverse=True)
        return tasks[:limit]

    def end_task(self, task_id: str, state: TaskState, at: float, reason: str) -> TaskRecord | None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.state.ended:
                return None
            ended = dataclasses.replace(task, state=state, ended_at=at, end_reason=reason)
            self._tasks[task_id] = ended
            return ended

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
        with self._lock:
            if proof is not None and self._seen(proof, now):
                raise ProofReplayed
            task = self._spendable(
                task_id, expected_calls_used, now, expected_max_calls, expected_touched
            )
            return None if task is None else self._spend(task, touched, proof, now)

    def commit_decision(
        self, spend: Spend, events: Sequence[dict[str, object]], seal: Sealer
    ) -> PendingWrite[TaskRecord | None]:
        """Done at once under the store's lock: the compare-and-set is checked, the
        events appended, and only then is the call (and its proof) spent, so a failing
        append stores nothing."""
        with self._lock:
            if spend.proof is not None and self._seen(spend.proof, spend.now):
                return Failed(ProofReplayed())
            task = self._spendable(
                spend.task_id,
                spend.expected_calls_used,
                spend.now,
                spend.expected_max_calls,
                spend.expected_touched,
            )
            if task is None:
                return Done(None)
            if events:
                try:
                    self.append_events(events, seal)
                except ZerolaneError as err:
                    return Failed(err)
                except Exception as err:  # a sink or sealer that fails: nothing stored
                    failed = Unavailable("audit.write", "the audit event could not be recorded")
                    failed.__cause__ = err
                    return Failed(failed)
            return Done(self._spend(task, spend.touched, spend.proof, spend.now))

    def _spendable(
        self,
        task_id: str,
        expected_calls_used: int,
        now: float,
        expected_max_calls: int | None,
        expected_touched: int | None,
    ) -> TaskRecord | None:
        """The task when a call of it can be spent as expected (the lock is held)."""
        task = self._tasks.get(task_id)
        if (
            task is None
            or task.state is not TaskState.ACTIVE
            or task.calls_used != expected_calls_used
            or (expected_max_calls is not None and task.max_calls != expected_max_calls)
            or (expected_touched is not None and task.touched != expected_touched)
            or task.calls_used >= task.max_calls
            or now >= task.expires_at
        ):
            return None
        return task

    def _spend(
        self, task: TaskRecord, touched: int, proof: SpentProof | None, now: float
    ) -> TaskRecord:
        """Spend a call of ``task`` (checked by :meth:`_spendable`; the lock is held)."""
        spent = dataclasses.replace(
            task, calls_used=task.calls_used + 1, touched=max(task.touched, touched)
        )
        self._tasks[task.task_id] = spent
        if proof is not None:
            self._spend_locked(proof, now)
        if spent.touched > task.touched:
            self._taint_tree(spent)
        return self._tasks[task.task_id]

    def _taint_tree(self, task: TaskRecord) -> None:
        """Raise ``touched`` across ``task``'s delegation tree (the lock is held)."""
        root = task
        while root.parent_id is not None and root.parent_id in self._tasks:
            root = self._tasks[root.parent_id]
        tree, frontier = {root.task_id}, [root.task_id]
        while frontier:
            parents = set(frontier)
            frontier = [t.task_id for t in self._tasks.values() if t.parent_id in parents]
            tree.update(frontier)
        for task_id in tree:
            member = self._tasks[task_id]
            if member.touched < task.touched:
                self._tasks[task_id] = dataclasses.replace(member, touched=task.touched)

    # the delegation tree
    def add_child_task(self, child: TaskRecord, *, now: float) -> TaskRecord | None:
        with self._lock:
            if child.task_id in self._tasks:
                raise Conflict("task.exists", f"task {child.task_id} exists")
            parent = self._tasks.get(child.parent_id) if child.parent_id else None
            if (
                parent is None
                or parent.state is not TaskState.ACTIVE
                or now >= parent.expires_at
                or child.expires_at > parent.expires_at
                or parent.max_calls - parent.calls_used < child.max_calls
            ):
                return None
            carved = dataclasses.replace(parent, max_calls=parent.max_calls - child.max_calls)
            self._tasks[parent.task_id] = carved
            # the child inherits what the parent has read, as of this write
            touched = max(child.touched, parent.touched)
            self._tasks[child.task_id] = dataclasses.replace(child, touched=touched)
            self._children.setdefault(parent.task_id, []).append(child.task_id)
            return carved

    def list_children(self, parent_id: str) -> list[TaskRecord]:
        with self._lock:
            children = [self._tasks[c] for c in self._children.get(parent_id, ())]
        children.sort(key=lambda t: (t.created_at, t.task_id))
        return children

    def end_tree(
        self, task_id: str, state: TaskState, at: float, reason: str, descendant_reason: str
    ) -> list[TaskRecord]:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return []
            ended: list[TaskRecord] = []
            if not task.state.ended:
                ended.append(dataclasses.replace(task, state=state, ended_at=at, end_reason=reason))
            pending = list(self._children.get(task_id, ()))
            while pending:
                child = self._tasks[pending.pop(0)]
                pending.extend(self._children.get(child.task_id, ()))
                if not child.state.ended:
                    ended.append(
                        dataclasses.replace(
                            child,
                            state=TaskState.REVOKED,
                            ended_at=at,
                            end_reason=descendant_reason,
                        )
                    )
            for record in ended:
                self._tasks[record.task_id] = record
            return ended

    # changes recorded with their audit events (RecordedWrites)
    def write_recorded(self, change: Change[R], events: EventsOf[R], seal: Sealer) -> R:
        with self._lock:  # re-entrant: the change's own method takes it again
            saved = self._save()
            lease = self._lease_before(change)
            result = self._apply(change)
            try:
                unsealed = list(events(result))
                if unsealed:
                    self.append_events(unsealed, seal)
            except Exception as err:
                self._restore(saved)  # neither the change nor any event is kept
                self._undo_lease(lease, result)
                if isinstance(err, ZerolaneError):
                    raise
                raise Unavailable("audit.write", "the audit event could not be recorded") from err
            return result

    def _apply(self, change: Change[R]) -> R:
        """Apply ``change`` with the method it mirrors (the lock is held)."""
        result: object
        match change:
            case AddTask(task):
                result = self.add_task(task)
            case AddChildTask(child, now):
                result = self.add_child_task(child, now=now)
            case EndTree(task_id, state, at, reason, below):
                result = self.end_tree(task_id, state, at, reason, below)
            case ExpireTree(task_id, at):
                result = self._expire_tree(task_id, at)
            case SuspendTree(task_id, at, reason, below):
                result = self._suspend_tree(task_id, at, reason, below)
            case ResumeTree(task_id, at, below):
                result = self._resume_tree(task_id, at, below)
            case AddWorkload(workload):
                result = self.add_workload(workload)
            case SetWorkloadStatus(spiffe_id, status, at):
                result = self.set_workload_status(spiffe_id, status, at)
            case AddJoinToken(token):
                result = self.add_join_token(token)
            case ConsumeJoinToken(token_hash, now):
                result = self.consume_join_token(token_hash, now)
            case PutPlaybook(playbook):
                result = self.put_playbook(playbook)
            case PutBundle(bundle):
                result = self.put_bundle(bundle)
            case AddAdminCredential(credential):
                result = self.add_admin_credential(credential)
            case AddEnforcementPoint(point):
                result = self.add_enforcement_point(point)
            case RemoveEnforcementPoint(name):
                result = self.remove_enforcement_point(name)
            case AdvanceCursors():
                result = self._advance_cursors(change)
            case RequestApproval():
                result = self._request_approval(change)
            case DecideApproval():
                result = self._decide_approval(change)
            case UseApproval():
                result = self._use_approval(change)
            case PruneApprovals():
                result = self._prune_approvals(change)
            case PlaceHold():
                result = self._place_hold(change)
            case ClearHold():
                result = self._clear_hold(change)
            case TransitionLease(lease_id, expected, state, at, count, error, due, reason):
                result = self.transition_lease(
                    lease_id,
                    expected=expected,
                    state=state,
                    at=at,
                    count_attempt=count,
                    error=error,
                    next_attempt_at=due,
                    end_reason=reason,
                )
            case _:
                raise TypeError(f"unknown change {type(change).__name__}")
        return cast("R", result)

    def _expire_tree(self, task_id: str, at: float) -> list[TaskRecord]:
        """:class:`ExpireTree` (the lock is held)."""
        if task_id not in self._tasks:
            return []
        subtree, pending = [task_id], list(self._children.get(task_id, ()))
        while pending:
            child_id = pending.pop(0)
            subtree.append(child_id)
            pending.extend(self._children.get(child_id, ()))
        expired = [
            dataclasses.replace(
                task, state=TaskState.EXPIRED, ended_at=task.expires_at, end_reason="expired"
            )
            for task in (self._tasks[i] for i in subtree)
            if not task.state.ended and task.expires_at <= at
        ]
        for record in expired:
            self._tasks[record.task_id] = record
        root = [t for t in expired if t.task_id == task_id]
        rest = [t for t in expired if t.task_id != task_id]
        return root + sorted(rest, key=lambda t: (t.depth, t.created_at, t.task_id))

    def _subtree(self, task_id: str, follow: Callable[[TaskRecord], bool]) -> list[TaskRecord]:
        """The descendants of ``task_id`` reached through those ``follow`` accepts, each
        accepted one included (the lock is held)."""
        found: list[TaskRecord] = []
        pending = list(self._children.get(task_id, ()))
        while pending:
            child = self._tasks[pending.pop(0)]
            if follow(child):
                found.append(child)
                pending.extend(self._children.get(child.task_id, ()))
        return found

    def _suspend_tree(self, task_id: str, at: float, reason: str, below: str) -> list[TaskRecord]:
        """:class:`SuspendTree` (the lock is held)."""
        task = self._tasks.get(task_id)
        if task is None or task.state is not TaskState.ACTIVE or task.expires_at <= at:
            return []
        suspended = [dataclasses.replace(task, state=TaskState.SUSPENDED, end_reason=reason)]
        for child in self._subtree(task_id, lambda _: True):
            if child.state is TaskState.ACTIVE and child.expires_at > at:
                suspended.append(
                    dataclasses.replace(child, state=TaskState.SUSPENDED, end_reason=below)
                )
        return self._written(suspended)

    def _resume_tree(self, task_id: str, at: float, below: str) -> list[TaskRecord]:
        """:class:`ResumeTree` (the lock is held)."""
        task = self._tasks.get(task_id)
        if task is None or task.state is not TaskState.SUSPENDED or task.expires_at <= at:
            return []
        parent = self._tasks.get(task.parent_id) if task.parent_id is not None else None
        if task.parent_id is not None and (parent is None or parent.state is not TaskState.ACTIVE):
            return []
        with_it = self._subtree(
            task_id, lambda t: t.state is TaskState.SUSPENDED and t.end_reason == below
        )
        resumed = [
            dataclasses.replace(t, state=TaskState.ACTIVE, end_reason=None)
            for t in [task, *with_it]
            if t.expires_at > at
        ]
        return self._written(resumed)

    def _written(self, records: list[TaskRecord]) -> list[TaskRecord]:
        """Store ``records`` (the first one a subtree's root); them, the root first and
        its descendants by depth, then age (the lock is held)."""
        for record in records:
            self._tasks[record.task_id] = record
        return records[:1] + sorted(records[1:], key=lambda t: (t.depth, t.created_at, t.task_id))

    def _lease_before(self, change: Change[Any]) -> LeaseRecord | None:
        """The lease a :class:`TransitionLease` changes, as it was (leases have a lock
        of their own: they are put back one by one, not restored wholesale)."""
        return self.get_lease(change.lease_id) if isinstance(change, TransitionLease) else None

    def _undo_lease(self, before: LeaseRecord | None, written: object) -> None:
        """Put back ``before`` unless another write replaced ``written`` since."""
        if before is None or not isinstance(written, LeaseRecord):
            return
        with self._lease_lock:
            if self._leases.get(before.lease_id) is written:
                self._leases[before.lease_id] = before

    def _save(self) -> tuple[object, ...]:
        """What a recorded change may alter, to put back when its events fail."""
        return (
            dict(self._tasks),
            {k: list(v) for k, v in self._children.items()},
            dict(self._workloads),
            dict(self._join_tokens),
            dict(self._bundles),
            list(self._admins),
            dict(self._playbooks),
            dict(self._points),
            dict(self._cursors),
            dict(self._risk),
            dict(self._approvals),
            len(self._events),  # events are only ever appended
        )

    def _restore(self, saved: tuple[object, ...]) -> None:
        (
            self._tasks,
            self._children,
            self._workloads,
            self._join_tokens,
            self._bundles,
            self._admins,
            self._playbooks,
            self._points,
            self._cursors,
            self._risk,
            self._approvals,
            events,
        ) = cast("tuple[Any, ...]", saved)
        del self._events[events:]
