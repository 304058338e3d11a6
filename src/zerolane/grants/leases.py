"""Leases: every downstream credential minted for a task, until it is revoked.

The :class:`LeaseManager` issues a grant for a live task and revokes every lease of a
task when the task ends (completed, revoked, expired, suspended). Its rules:

- The lease is stored (``active``) *before* the broker creates anything, so whatever
  a crash leaves behind is findable; after the broker returns, the task and the lease
  are read again and a task that ended meanwhile has its fresh credential revoked.
- A revocation first claims the lease (``active``/``failed`` -> ``revoking``,
  compare-and-set), so two revokers never both count it. One that fails leaves the
  lease ``failed`` with the error and the time of its next attempt (exponential
  backoff); :meth:`LeaseManager.retry_failed` and :meth:`LeaseManager.sweep` retry
  it. A failed lease stays listed until a revocation succeeds: never forgotten.
- Every issue, revocation and failed revocation is audited (``grant.issue``,
  ``grant.revoke``, ``grant.revoke_failed``) with the lease, task, broker and handle,
  never the secret. An issue that cannot be audited is revoked and refused.
- A lease becomes ``revoked`` or ``failed`` in the same write as its ``grant.revoke``
  or ``grant.revoke_failed`` event: when the event cannot be stored the lease stays
  ``revoking``, and the sweeper takes the revocation over (brokers revoke
  idempotently) once it is stale, recording both together then.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import SYSTEM, Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Conflict, NotFound, Unavailable, ZerolaneError
from zerolane.grants.broker import GrantBroker, GrantSecret, GrantTemplate
from zerolane.store.changes import TransitionLease
from zerolane.store.ports import LeaseStore, RecordedWrites, TaskStore
from zerolane.store.records import (
    LeaseRecord,
    LeaseState,
    RevocationEvent,
    RevocationKind,
    TaskRecord,
)
from zerolane.types import Clock, Outcome, TaskState

log = logging.getLogger(__name__)

BACKOFF_BASE = 5.0
BACKOFF_MAX = 300.0
#: a lease left ``revoking`` this long was abandoned (a crash mid-revocation)
STALE_REVOKING = 120.0
SWEEP_BATCH = 1000
MAX_ERROR = 500
SWEEPER = Actor("system", "grant-sweeper")


@dataclass(frozen=True, slots=True)
class IssuedGrant:
    lease: LeaseRecord
    secret: GrantSecret = field(repr=False)


@dataclass(frozen=True, slots=True)
class SweepResult:
    revoked: tuple[LeaseRecord, ...] = ()
    failed: tuple[LeaseRecord, ...] = ()

    def __add__(self, other: SweepResult) -> SweepResult:
        return SweepResult(self.revoked + other.revoked, self.failed + other.failed)


def describe(err: BaseException) -> str:
    """What is recorded of an error: a zerolane reason and message (brokers keep
    secrets out of them), or only the exception type for anything else."""
    if isinstance(err, ZerolaneError):
        return f"{err.reason}: {err.message}"[:MAX_ERROR]
    return f"unexpected {type(err).__name__}"


class RecordedLeaseStore(LeaseStore, RecordedWrites, Protocol):
    """The lease store the manager writes through: a transition with its event."""


def _live(task: TaskRecord | None, now: float) -> bool:
    return task is not None and task.state is TaskState.ACTIVE and now < task.expires_at


class LeaseManager:
    def __init__(
        self,
        *,
        leases: RecordedLeaseStore,
        tasks: TaskStore,
        brokers: Mapping[str, GrantBroker],
        audit: AuditLog,
        clock: Clock,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self._leases = leases
        self._tasks = tasks
        self.brokers = dict(brokers)
        self._audit = audit
        self._clock = clock
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max

    # issuing
    def issue(self, task: TaskRecord, template: GrantTemplate, *, actor: Actor) -> IssuedGrant:
        """Mint ``template.broker``'s credential for the live ``task``."""
        broker = self.brokers.get(template.broker)
        if broker is None:
            raise NotFound(
                "grant.broker_unknown", f"no grant broker {template.broker!r} is configured"
            )
        now = self._clock.now()
        if not _live(task, now):
            raise Conflict("task.ended", f"task {task.task_id} is not active")
        lease = LeaseRecord(
            lease_id="lse_" + secrets.token_urlsafe(12),
            task_id=task.task_id,
            broker=broker.name,
            handle=broker.new_handle(task),
            state=LeaseState.ACTIVE,
            created_at=now,
            expires_at=task.expires_at,
            updated_at=now,
        )
        self._leases.add_lease(lease)
        details = self._details(lease)
        try:
            secret = broker.issue(lease.handle, task, template, lease.expires_at)
        except Exception as err:
            # the broker's issue is all or nothing, but make sure and close the lease
            self._revoke(lease, claim_from=(LeaseState.ACTIVE,), reason="grant.issue_failed")
            self._audit.record(
                "grant.issue",
                actor=actor,
                subject=lease.lease_id,
                outcome=Outcome.FAILURE,
                reason=err.reason if isinstance(err, ZerolaneError) else "grant.issue_failed",
                details={**details, "error": describe(err)},
            )
            if isinstance(err, ZerolaneError):
                raise
            raise Unavailable("grant.issue_failed", "the grant could not be issued") from err
        # The task may have ended (and its leases been revoked) while the broker worked.
        try:
            current = self._leases.get_lease(lease.lease_id)
            live = _live(self._tasks.get_task(task.task_id), self._clock.now())
        except Exception:  # the store cannot tell: kill the credential, refuse the request
            try:
                broker.revoke(lease.handle)  # the lease stays active: the sweeper redoes it
            except Exception:
                log.exception("grant %s could not be revoked after a store error", lease.lease_id)
            raise
        if not live or current is None or current.state is not LeaseState.ACTIVE:
            self._revoke_after_race(lease)
            raise Conflict("task.ended", f"task {task.task_id} ended while its grant was issued")
        try:
            self._audit.record(
                "grant.issue",
                actor=actor,
                subject=lease.lease_id,
                outcome=Outcome.SUCCESS,
                details=details,
            )
        except ZerolaneError:
            self._revoke(lease, claim_from=(LeaseState.ACTIVE,), reason="audit.write")
            raise
        log.info("grant %s issued for task %s (%s)", lease.lease_id, task.task_id, broker.name)
        return IssuedGrant(lease, secret)

    def _revoke_after_race(self, lease: LeaseRecord) -> None:
        # Whoever else revoked may have run before the credential existed: revoke it
        # again (brokers are idempotent), whatever state the lease is in now.
        self._revoke(
            lease,
            claim_from=tuple(LeaseState),
            reason="task.ended",
            fail_from=(LeaseState.REVOKING, LeaseState.REVOKED),
        )

    # revoking
    def on_ended(self, tasks: Sequence[TaskRecord]) -> None:
        """The lifecycle's hook: revoke every lease of the tasks that ended."""
        for task in tasks:
            self.revoke_task(task.task_id, reason=f"task.{task.state.value}")

    def on_revocation(self, event: RevocationEvent) -> None:
        """A revocation bus subscriber: revoke the leases of ended or suspended tasks
        (a suspended task asks again once resumed)."""
        if event.kind is RevocationKind.RESUMED:
            return
        for task_id in event.task_ids:
            self.revoke_task(task_id, reason=f"task.{event.kind.value}")

    def revoke_task(self, task_id: str, *, reason: str, actor: Actor = SYSTEM) -> list[LeaseRecord]:
        """Revoke the task's active (and failed) leases; what became of each."""
        done: list[LeaseRecord] = []
        for lease in self._leases.list_leases(task_id=task_id, limit=SWEEP_BATCH):
            if lease.state in (LeaseState.ACTIVE, LeaseState.FAILED):
                done.append(self._revoke(lease, claim_from=(lease.state,), reason=reason))
        return done

    def revoke(self, lease_id: str, *, actor: Actor, reason: str = "revoked") -> LeaseRecord:
        """Revoke one lease now (an admin's order), whatever its backoff."""
        lease = self._leases.get_lease(lease_id)
        if lease is None:
            raise NotFound("lease.unknown", f"no lease {lease_id}")
        if lease.state is LeaseState.REVOKED:
            return lease
        return self._revoke(
            lease, claim_from=(LeaseState.ACTIVE, LeaseState.FAILED), reason=reason, actor=actor
        )

    def _revoke(
        self,
        lease: LeaseRecord,
        *,
        claim_from: Sequence[LeaseState],
        reason: str,
        actor: Actor = SYSTEM,
        fail_from: Sequence[LeaseState] = (LeaseState.REVOKING,),
    ) -> LeaseRecord:
        now = self._clock.now()
        claimed = self._leases.transition_lease(
            lease.lease_id,
            expected=claim_from,
            state=LeaseState.REVOKING,
            at=now,
            count_attempt=True,
            end_reason=reason,
        )
        if claimed is None:  # someone else is on it, or it is done
            return self._leases.get_lease(lease.lease_id) or lease
        broker = self.brokers.get(lease.broker)
        try:
            if broker is None:
                raise Unavailable(
                    "grant.broker_unknown", f"grant broker {lease.broker!r} is not configured"
                )
            broker.revoke(lease.handle)
        except Exception as err:
            return self._failed(claimed, err, actor, fail_from)
        revoked = TransitionLease(lease.lease_id, (LeaseState.REVOKING,), LeaseState.REVOKED, now)
        try:
            done = self._transition_recorded(
                revoked, "grant.revoke", actor, Outcome.SUCCESS, reason, {}
            )
        except ZerolaneError as err:  # stays revoking: the sweeper redoes it once stale
            log.error("could not record the revocation of grant %s: %s", lease.lease_id, err)
            return self._leases.get_lease(lease.lease_id) or claimed
        if done is None:  # a concurrent revoker recorded a failure: it stands
            return self._leases.get_lease(lease.lease_id) or claimed
        return done

    def _failed(
        self,
        claimed: LeaseRecord,
        err: BaseException,
        actor: Actor,
        fail_from: Sequence[LeaseState],
    ) -> LeaseRecord:
        now = self._clock.now()
        error = describe(err)
        delay = min(self._backoff_max, self._backoff_base * 2 ** max(0, claimed.attempts - 1))
        change = TransitionLease(
            claimed.lease_id,
            tuple(fail_from),
            LeaseState.FAILED,
            now,
            error=error,
            next_attempt_at=now + delay,
        )
        reason = err.reason if isinstance(err, ZerolaneError) else "grant.revoke_error"
        extra = {"error": error, "attempts": claimed.attempts, "next_attempt_at": now + delay}
        recorded = True
        try:
            failed = self._transition_recorded(
                change, "grant.revoke_failed", actor, Outcome.FAILURE, reason, extra
            )
        except ZerolaneError as problem:  # stays revoking: the sweeper retries once stale
            log.error("could not record the failure of grant %s: %s", claimed.lease_id, problem)
            failed, recorded = None, False
        result = failed or self._leases.get_lease(claimed.lease_id) or claimed
        log.warning(
            "revoking grant %s (%s %s) failed, attempt %d, retry in %.0fs: %s",
            claimed.lease_id,
            claimed.broker,
            claimed.handle,
            claimed.attempts,
            delay,
            error,
        )
        if failed is None and recorded:  # another revoker moved it: the attempt is audited
            self._record("grant.revoke_failed", actor, result, Outcome.FAILURE, reason, extra)
        return result

    def _transition_recorded(
        self,
        change: TransitionLease,
        kind: str,
        actor: Actor,
        outcome: Outcome,
        reason: str,
        extra: Mapping[str, object],
    ) -> LeaseRecord | None:
        """Apply ``change`` and, when it moved the lease, store its ``kind`` event in the
        same write. None when the lease was not in ``change.expected`` (nothing is
        written); ``Unavailable`` when the event cannot be stored (nor the change)."""

        def events(moved: LeaseRecord | None) -> list[dict[str, object]]:
            if moved is None:
                return []
            details = {**self._details(moved), **extra}
            event = self._audit.event(kind, actor, moved.lease_id, outcome, reason, details)
            return [event.unsealed()]

        return self._leases.write_recorded(change, events, seal)

    def _details(self, lease: LeaseRecord) -> dict[str, object]:
        return {
            "task_id": lease.task_id,
            "broker": lease.broker,
            "handle": lease.handle,
            "expires_at": lease.expires_at,
        }

    def _record(
        self,
        kind: str,
        actor: Actor,
        lease: LeaseRecord,
        outcome: Outcome,
        reason: str,
        extra: Mapping[str, object],
    ) -> None:
        # The revocation itself is done (or recorded as failed in the lease store);
        # an audit sink that refuses the event cannot undo that, so it is logged.
        try:
            self._audit.record(
                kind,
                actor=actor,
                subject=lease.lease_id,
                outcome=outcome,
                reason=reason,
                details={**self._details(lease), **extra},
            )
        except ZerolaneError as err:
            log.error("could not audit %s of grant %s: %s", kind, lease.lease_id, err)

    # retrying and sweeping
    def retry_failed(self, *, force: bool = False) -> SweepResult:
        """Retry the failed revocations that are due (all of them with ``force``)."""
        now = self._clock.now()
        due = self._pages(LeaseState.FAILED, due_before=None if force else now)
        return self._tally(
            self._revoke(lease, claim_from=(LeaseState.FAILED,), reason=lease.end_reason or "retry")
            for lease in due
        )

    def _pages(self, state: LeaseState, due_before: float | None = None) -> list[LeaseRecord]:
        """Every lease in ``state`` (page by page: a full page of live leases must not
        hide the older ones behind it)."""
        found: list[LeaseRecord] = []
        before: tuple[float, str] | None = None
        while True:
            page = self._leases.list_leases(
                state=state, due_before=due_before, limit=SWEEP_BATCH, before=before
            )
            found.extend(page)
            if len(page) < SWEEP_BATCH:
                return found
            before = (page[-1].created_at, page[-1].lease_id)

    def sweep(self, *, force: bool = False) -> SweepResult:
        """Revoke what should no longer be: active leases past their expiry or of a task
        that is no longer active, revocations abandoned mid-way, and due failures."""
        now = self._clock.now()
        results: list[LeaseRecord] = []
        for lease in self._pages(LeaseState.ACTIVE):
            task = self._tasks.get_task(lease.task_id)
            if now >= lease.expires_at or not _live(task, now):
                if task is None:
                    reason = "task.unknown"
                elif task.state is TaskState.ACTIVE:
                    reason = "task.expired"
                else:
                    reason = f"task.{task.state.value}"
                results.append(self._revoke(lease, claim_from=(LeaseState.ACTIVE,), reason=reason))
        for lease in self._pages(LeaseState.REVOKING):
            if now - lease.updated_at >= STALE_REVOKING:
                results.append(
                    self._revoke(
                        lease,
                        claim_from=(LeaseState.REVOKING,),
                        reason=lease.end_reason or "retry",
                    )
                )
        return self._tally(results) + self.retry_failed(force=force)

    @staticmethod
    def _tally(leases: Iterable[LeaseRecord]) -> SweepResult:
        done = list(leases)
        return SweepResult(
            revoked=tuple(x for x in done if x.state is LeaseState.REVOKED),
            failed=tuple(x for x in done if x.state is not LeaseState.REVOKED),
        )

    def list(
        self, *, task_id: str | None = None, state: LeaseState | None = None, limit: int = 100
    ) -> list[LeaseRecord]:
        return self._leases.list_leases(task_id=task_id, state=state, limit=limit)


class GrantSweeper:
    """Runs :meth:`LeaseManager.sweep` every ``interval`` seconds on a daemon thread."""

    def __init__(self, manager: LeaseManager, interval: float) -> None:
        self._manager = manager
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="grant-sweeper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                result = self._manager.sweep()
            except Exception:  # a store outage: logged, tried again next round
                log.exception("grant sweep failed")
                continue
            if result.failed:
                log.warning("%d grant revocation(s) still failing", len(result.failed))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
