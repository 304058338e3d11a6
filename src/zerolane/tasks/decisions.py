"""Request-time decisions: every request of a task is decided when it is made.

A decision checks, in order: the task token and its DPoP proof (who, bound to which
key, for this exact method and URL, once), the task's state, window and budget (in
code, so no policy edit can switch them off), then the Cedar policies over the task's
scope and the request's context. An allow spends one call atomically (compare-and-set,
so two concurrent requests can't both spend the last call or race a sensitive read
past the egress rule); every decision is an audit event, and one that cannot be
recorded is a deny.

Hot path: the decider keeps the last known record of busy tasks and serializes one
task's decisions in this process (:mod:`zerolane.tasks.task_cache`: the
compare-and-set makes a stale record harmless); over a store that can
(:class:`~zerolane.store.ports.RecordedSpendStore`, SQLite), an allow's spend and its
audit event are one write and one commit, so both are durable before the answer, or
neither is; the task's next request is decided while that write commits and its own
write queued behind it (see :meth:`Decider._decide`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import urlsplit

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, ProofReplayed, Refusal, Unavailable, ZerolaneError
from zerolane.paths import check_path
from zerolane.policy.context import (
    McpFacts,
    RequestFacts,
    TaskFacts,
    is_internal,
    request_policy_request,
)
from zerolane.policy.engine import PolicyEngine
from zerolane.store.ports import PendingWrite, RecordedSpendStore, TaskStore
from zerolane.store.records import SpentProof, TaskRecord
from zerolane.tasks.auth import Authenticator, TaskHolder
from zerolane.tasks.lifecycle import effective_state, user_facts
from zerolane.tasks.revocation import RevocationWatch
from zerolane.tasks.scope import Scope
from zerolane.tasks.task_cache import DEFAULT_CAPACITY, StripedLocks, TaskCache
from zerolane.types import Clock, Outcome, Sensitivity, TaskState

#: A compare-and-set loses only when another request spent a call in between; retries
#: are bounded so a storm of concurrent requests still ends in a decision.
MAX_ATTEMPTS = 64
#: After its second lost compare-and-set in a row, a request waits a random moment
#: before deciding again, up to this base doubled per loss (capped): the processes of a
#: deployment that decide one busy task then stop losing to each other in lockstep,
#: where each one's whole queue of guesses lost at once (``task.contention`` while
#: budget remained).
BACKOFF_BASE = 0.0005
BACKOFF_CAP = 0.02
#: the kinds a refusal raised while deciding keeps; any other is a plain deny
_DENY_KINDS = frozenset(
    {Refusal.INVALID, Refusal.UNAUTHENTICATED, Refusal.FORBIDDEN, Refusal.UNAVAILABLE}
)


@dataclass(frozen=True, slots=True)
class DecideInput:
    """The request to decide: the method and URL the proof was made for, and optionally
    the action, resource, destination and sensitivity an enforcement point mapped, the
    MCP tool call it carries (``context.request.mcp``), and ``details`` the enforcement
    point wants in the decision's audit event (e.g. a tool call's bounded arguments;
    they never override the decision's own fields, and the audit log masks secrets)."""

    method: str
    url: str
    action: str | None = None
    resource: str | None = None
    destination: str | None = None
    sensitivity: str | None = None
    audience: str | None = None
    mcp: McpFacts | None = None
    details: Mapping[str, object] | None = None
    #: the verified client certificate (DER) of the request's connection, which a
    #: certificate-bound token (RFC 8705 ``cnf.x5t#S256``) is checked against
    client_cert: bytes | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    allowed: bool
    reasons: tuple[str, ...]
    policies: tuple[str, ...]
    task_id: str | None
    #: what kind of refusal a deny is (None for an allow); each enforcement point's
    #: edge renders it (:mod:`zerolane.gateway.edge`): a credential problem
    #: (``UNAUTHENTICATED``), a refusal (``FORBIDDEN``), fail closed (``UNAVAILABLE``),
    #: a request that cannot be decided as sent (``INVALID``: an unsafe path)
    refusal: Refusal | None
    #: the verified task token's ``exp`` (what a credential minted for the call may last)
    expires_at: float | None = None
    #: the verified workload (SPIFFE ID) that holds the token, when it was verified
    subject: str | None = None

    def failed_closed(self, reason: str) -> Decision:
        """This decision turned into a fail-closed deny (an audit event could not be
        recorded)."""
        return dataclasses.replace(
            self, allowed=False, reasons=(reason,), refusal=Refusal.UNAVAILABLE
        )


class _Deny(ZerolaneError):
    """A deny decided here: its reasons, the determining policies, its kind."""

    def __init__(
        self,
        reasons: Sequence[str],
        policies: Sequence[str] = (),
        *,
        refusal: Refusal = Refusal.FORBIDDEN,
        expired: tuple[TaskRecord, float] | None = None,
    ) -> None:
        super().__init__(reasons[0], reasons[0])
        self.reasons = tuple(reasons)
        self.policies = tuple(policies)
        self.refusal = refusal
        #: a task stored live that this decision found past its window, and when
        self.expired = expired


class _NeedsRead(Exception):
    """The decision needs the task as stored, and must not read it here (the loop)."""


class _LockBusy(Exception):
    """Another thread holds the task's lock: the loop must not wait for it."""


#: the task as just read from the store (None: no such task)
_Read = tuple[TaskRecord | None]


class _EventFields(TypedDict):
    kind: str
    actor: Actor
    subject: str
    outcome: Outcome
    reason: str
    details: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class _Pending:
    """A request being decided: authenticated and mapped, not yet answered."""

    decision_id: str
    holder: TaskHolder
    facts: RequestFacts
    request: DecideInput


def _decision(
    decision_id: str,
    holder: TaskHolder | None,
    reasons: Sequence[str],
    policies: Sequence[str],
    refusal: Refusal | None,
) -> Decision:
    """A decision: an allow when ``refusal`` is None (and there are no reasons)."""
    claims = holder.claims if holder else None
    return Decision(
        decision_id=decision_id,
        allowed=refusal is None,
        reasons=tuple(reasons),
        policies=tuple(policies),
        task_id=claims.task_id if claims else None,
        refusal=refusal,
        expires_at=float(claims.expires_at) if claims else None,
        subject=claims.subject if claims else None,
    )


def _refusal(decision_id: str, holder: TaskHolder | None, err: ZerolaneError) -> Decision:
    """The deny a refusal raised while deciding becomes: of the error's kind, except
    that a request that cannot be decided is refused, never "not found" or "conflict"."""
    if isinstance(err, _Deny):
        return _decision(decision_id, holder, err.reasons, err.policies, err.refusal)
    kind = err.kind if err.kind in _DENY_KINDS else Refusal.FORBIDDEN
    return _decision(decision_id, holder, (err.reason,), (), kind)


def _map(
    request: DecideInput, default_sensitivity: Sensitivity, internal: tuple[str, ...]
) -> RequestFacts:
    """Turn a request into the facts policies see (action, resource, destination, whether
    it is inside the trust boundary, sensitivity, the MCP call it carries)."""
    parts = urlsplit(request.url)
    action = request.action or f"http:{request.method.upper()}"
    destination = request.destination or (parts.hostname or "")
    resource = request.resource
    if resource is None:
        try:  # the one path rule, the HTTP gateway's (encoded as the URL holds it)
            path = check_path((parts.path or "/").encode("utf-8"))
        except InvalidInput:
            raise _Deny(["request.path"], refusal=Refusal.INVALID) from None
        resource = path.strip("/")
    if not resource or not destination:
        raise _Deny(["request.unmapped"])
    if any(segment in (".", "..") for segment in resource.split("/")):
        # a pattern like finance/** must not match finance/../hr/x, whoever mapped it
        raise _Deny(["request.resource"])
    try:
        sensitivity = (
            Sensitivity.parse(request.sensitivity) if request.sensitivity else default_sensitivity
        )
    except ValueError:
        raise _Deny(["request.sensitivity"]) from None
    return RequestFacts(
        action=action,
        resource=resource,
        destination=destination,
        sensitivity=sensitivity,
        method=request.method.upper(),
        destination_internal=is_internal(destination, internal),
        mcp=request.mcp,
    )


def task_facts(task: TaskRecord, state: TaskState) -> TaskFacts:
    """The policy facts of a stored task, in ``state`` (its effective state)."""
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
        on_behalf_of=task.on_behalf_of,  # free text: policies must not decide on it
        user=user_facts(task),  # the verified person, from an ID token
    )


def _spent(holder: TaskHolder) -> SpentProof | None:
    """The holder's proof as the store spends it (None: a certificate-bound token)."""
    return holder.proof.spent() if holder.proof is not None else None


def backoff(losses: int) -> float:
    """Seconds to wait after ``losses`` lost compare-and-sets in a row: none after the
    first (usually a guess of this process's own that proved wrong), then a random
    moment up to :data:`BACKOFF_BASE` doubled per loss, at most :data:`BACKOFF_CAP`."""
    if losses < 2:
        return 0.0
    return random.uniform(0.0, min(BACKOFF_BASE * 2 ** (losses - 2), BACKOFF_CAP))  # noqa: S311


def _after_spend(task: TaskRecord, sensitivity: Sensitivity) -> TaskRecord:
    """``task`` as the store will hold it once a call of ``sensitivity`` is spent."""
    return dataclasses.replace(
        task, calls_used=task.calls_used + 1, touched=max(task.touched, int(sensitivity))
    )


class Decider:
    def __init__(
        self,
        *,
        authenticator: Authenticator,
        tasks: TaskStore,
        engine: Callable[[], PolicyEngine],
        audit: AuditLog,
        clock: Clock,
        internal_destinations: Sequence[str],
        default_sensitivity: Sensitivity = Sensitivity.INTERNAL,
        cache_capacity: int = DEFAULT_CAPACITY,
        revocations: RevocationWatch | None = None,
        on_last_call: Callable[[TaskRecord], object] | None = None,
        on_expired: Callable[[TaskRecord, float], object] | None = None,
    ) -> None:
        """``on_last_call``: told of an allow that spent its task's last call (a
        one-shot task ends there). ``on_expired``: told of a task stored live that a
        decision found past its window, with the decision's time, to record the expiry
        (so a clock stepped back, or another process, cannot revive it); called off the
        event loop, never raising into the decision."""
        self._auth = authenticator
        self._tasks = tasks
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self._internal = tuple(internal_destinations)
        self._default_sensitivity = default_sensitivity
        self._cache = TaskCache(cache_capacity)
        self._locks = StripedLocks()
        self._revocations = revocations
        self._on_last_call = on_last_call
        self._on_expired = on_expired
        self._epoch = revocations.epoch if revocations is not None else 0
        # one write for a spend and its event, unless the audit log queues decision events
        recorded = tasks if isinstance(tasks, RecordedSpendStore) else None
        self._recorded = recorded if audit.mode == "sync" else None

    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        decision_id = uuid.uuid4().hex
        holder: TaskHolder | None = None
        facts: RequestFacts | None = None
        try:
            holder = self._holder(token, proof, request)
            facts = _map(request, self._default_sensitivity, self._internal)
            return self._decide(_Pending(decision_id, holder, facts, request))
        except ZerolaneError as err:  # _Deny included
            decision = _refusal(decision_id, holder, err)
            self._record_expiry(err)
        return self._record(decision, holder, facts, request)

    async def decide_async(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        """:meth:`decide` for an event loop: the same decision, made on the loop's thread
        with no hand-off to a worker thread and back (which cost an enforcement point
        more CPU than the decision's own write). Only the allow's write is waited for
        apart: the store's thread commits it (with whatever else is queued) while the
        loop serves other requests.

        The loop never waits on the store or on another thread: reading the task (when
        the decider does not know it, or must decide a deny again on what is stored, a
        read that may wait for the task's queued writes), a task whose lock a worker
        thread holds, a refusal's audit event, the hook told of a task's last call (a
        one-shot task ends: writes), and every decision over a store that cannot queue
        the spend, go to a worker thread. So a flood of refused requests, or a slow
        disk, delays those requests, never the loop. Nothing is awaited while the
        task's lock is held."""
        loop = asyncio.get_running_loop()
        if self._recorded is None:
            return await loop.run_in_executor(None, self.decide, token, proof, request)
        decision_id = uuid.uuid4().hex
        holder: TaskHolder | None = None
        facts: RequestFacts | None = None
        try:
            holder = self._holder(token, proof, request)
            facts = _map(request, self._default_sensitivity, self._internal)
            pending = _Pending(decision_id, holder, facts, request)
            task_id = holder.claims.task_id
            read: _Read | None = None
            losses = 0
            while losses < MAX_ATTEMPTS:
                try:
                    allowed, write = self._queued(pending, read, on_loop=True)
                except _NeedsRead:  # the task as stored, read off the loop
                    read = (await loop.run_in_executor(None, self._tasks.get_task, task_id),)
                    continue
                except _LockBusy:  # a worker thread decides this task: wait there
                    queue = functools.partial(self._queued, pending, read, on_loop=False)
                    allowed, write = await loop.run_in_executor(None, queue)
                read = None
                try:
                    spent = await write.result_async()
                except ProofReplayed:  # spent before, elsewhere: nothing was stored
                    self._cache.discard(task_id)
                    raise
                except Exception:  # nothing of it was stored (undone as a whole)
                    self._cache.discard(task_id)
                    raise _Deny(["audit.write"], refusal=Refusal.UNAVAILABLE) from None
                if spent is not None:
                    if self._last_call(spent):  # e.g. a one-shot task ends: writes
                        await loop.run_in_executor(None, self._allowed, spent)
                    return allowed
                self._cache.discard(task_id)
                losses += 1
                if delay := backoff(losses):
                    await asyncio.sleep(delay)
            self._cache.discard(task_id)
            raise _Deny(["task.contention"])
        except ZerolaneError as err:  # _Deny included
            decision = _refusal(decision_id, holder, err)
            if isinstance(err, _Deny) and err.expired is not None:  # writes: off the loop
                await loop.run_in_executor(None, self._record_expiry, err)
        return await loop.run_in_executor(None, self._record, decision, holder, facts, request)

    def _holder(self, token: str, proof: str | None, request: DecideInput) -> TaskHolder:
        return self._auth.task_holder(
            token,
            proof,
            method=request.method,
            url=request.url,
            audience=request.audience,
            client_cert=request.client_cert,
            spend_later=True,  # with the allow's write, or with the deny (_record)
        )

    def _decide(self, pending: _Pending) -> Decision:
        """Decide on the task as last known, spend with a compare-and-set; re-read when
        the spend loses or the answer is a deny (see :mod:`zerolane.tasks.task_cache`).
        An allow is returned once its spend and its audit event are stored.

        Over a store that queues the spend apart (:class:`RecordedSpendStore`), the
        task's lock is held only until the spend is queued, and the cache then holds
        the record as it will be once the spend commits: the task's next request is
        decided on that record and its compare-and-set queued behind this one, so
        requests of one busy task share commits instead of waiting for each other's.
        A spend that loses (or fails) empties the task's cache entry, so a request
        decided on a guess that proved wrong loses its compare-and-set too and is
        decided again on what is stored."""
        task_id = pending.holder.claims.task_id
        for losses in range(1, MAX_ATTEMPTS + 1):
            if self._recorded is None:
                with self._locks.of(task_id):
                    task, allowed, now = self._decided(pending)
                    spent = self._spend(task, pending, allowed, now)
                    if spent is not None:
                        self._cache.put(spent)
                    else:  # another request spent first (or the task ended)
                        self._cache.discard(task_id)
                if spent is None:
                    time.sleep(backoff(losses))  # not holding the task's lock
                    continue
                self._allowed(spent)
                return allowed
            allowed, write = self._queued(pending)
            try:
                spent = write.result()
            except ProofReplayed:  # spent before, elsewhere: nothing was stored
                self._cache.discard(task_id)
                raise
            except Exception:  # nothing of it was stored (the write is undone as a whole)
                self._cache.discard(task_id)
                raise _Deny(["audit.write"], refusal=Refusal.UNAVAILABLE) from None
            if spent is not None:
                self._allowed(spent)
                return allowed
            self._cache.discard(task_id)  # the guess was wrong: the next one reads
            time.sleep(backoff(losses))
        self._cache.discard(task_id)
        raise _Deny(["task.contention"])

    def _queued(
        self, pending: _Pending, read: _Read | None = None, *, on_loop: bool = False
    ) -> tuple[Decision, PendingWrite[TaskRecord | None]]:
        """Decide, and queue the allow's spend and event (``_recorded`` is set); the cache
        then holds the task as the spend will leave it. Raises :class:`_Deny`.

        ``read``: the task as just read from the store (decide on it). ``on_loop``: never
        block: raise :class:`_LockBusy` when another thread holds the task's lock and
        :class:`_NeedsRead` when the decision needs the stored task (a read may wait for
        the task's queued writes to commit)."""
        lock = self._locks.of(pending.holder.claims.task_id)
        if not lock.acquire(blocking=not on_loop):
            raise _LockBusy
        try:
            task, allowed, now = self._decided(pending, read, may_read=not on_loop)
            write = self._submit(task, pending, allowed, now)
            self._cache.put(_after_spend(task, pending.facts.sensitivity))
        finally:
            lock.release()
        return allowed, write

    def _decided(
        self, pending: _Pending, read: _Read | None = None, *, may_read: bool = True
    ) -> tuple[TaskRecord, Decision, float]:
        """An allow decided on the task as last known, or on a fresh read when there is
        none or the known record says deny; raises :class:`_Deny` (or :class:`_NeedsRead`
        when a read is needed and ``may_read`` is False). Under the task's lock.

        A record read before the lock was taken counts as fresh: a task's stored state
        only moves toward refusal (calls spent, data touched, ended, budget carved), so a
        deny decided on it stands, and an allow is still checked by the compare-and-set."""
        task_id = pending.holder.claims.task_id
        if read is not None:
            task, fresh = read[0], True
        else:
            task = self._cache.get(task_id) if self._revocations_allow_cache() else None
            fresh = False
        while True:
            if task is None and fresh:
                self._cache.discard(task_id)
                raise _Deny(["task.unknown"])
            if task is None:
                if not may_read:
                    raise _NeedsRead
                task, fresh = self._tasks.get_task(task_id), True
                if task is None:
                    self._cache.discard(task_id)
                    raise _Deny(["task.unknown"])
            if self._revoked(task):
                if not fresh:
                    task = None  # the bus heard it end: decide on what is stored
                    continue
                if task.state is TaskState.ACTIVE:  # heard, not yet in the store
                    self._cache.discard(task_id)
                    raise _Deny(["task.revoked"])
            now = self._clock.now()
            try:
                policies = self._evaluate(pending.holder, task, pending.facts, now)
            except _Deny:
                if fresh:
                    self._cache.put(task)
                    raise
                task = None  # decided on a guess: decide again on what is stored
                continue
            return task, _decision(pending.decision_id, pending.holder, (), policies, None), now

    def _record_expiry(self, err: ZerolaneError) -> None:
        """Tell ``on_expired`` of a task this refusal found expired (see __init__)."""
        if self._on_expired is None or not isinstance(err, _Deny) or err.expired is None:
            return
        task, now = err.expired
        self._cache.discard(task.task_id)
        self._on_expired(task, now)

    def _last_call(self, spent: TaskRecord) -> bool:
        """Whether an allow spent its task's last call and the hook must hear of it."""
        return self._on_last_call is not None and spent.calls_used >= spent.max_calls

    def _allowed(self, spent: TaskRecord) -> None:
        hook = self._on_last_call
        if hook is not None and spent.calls_used >= spent.max_calls:
            hook(spent)  # e.g. a one-shot task ends here

    def _revocations_allow_cache(self) -> bool:
        """False (and the cache emptied) when the watch may have missed a revocation."""
        if self._revocations is None:
            return True
        epoch = self._revocations.epoch
        if epoch != self._epoch:
            self._cache.clear()
            self._epoch = epoch
            return False
        return True

    def _revoked(self, task: TaskRecord) -> bool:
        """Whether the revocation bus announced the end of ``task`` or its parent.

        Raises :class:`Unavailable` (``revocation.unreachable``) when the bus has been
        out of reach for longer than its grace window: enforcement fails closed.
        """
        if self._revocations is None:
            return False
        ids = (task.task_id,) if task.parent_id is None else (task.task_id, task.parent_id)
        return self._revocations.check_all(ids) is not None

    def _spend(
        self, task: TaskRecord, pending: _Pending, allowed: Decision, now: float
    ) -> TaskRecord | None:
        """Spend one call, then record the allow's event (a store that cannot do both
        in one write, or an audit log that queues decision events). A spend that lost
        its compare-and-set records nothing and returns None."""
        spent = self._tasks.spend_call(
            task.task_id,
            expected_calls_used=task.calls_used,
            expected_max_calls=task.max_calls,
            expected_touched=task.touched,
            touched=int(pending.facts.sensitivity),
            now=now,
            proof=_spent(pending.holder),
        )
        if spent is not None:
            try:
                self._audit.record(
                    **self._event(allowed, pending.holder, pending.facts, pending.request)
                )
            except Unavailable:
                raise _Deny(["audit.write"], refusal=Refusal.UNAVAILABLE) from None
        return spent

    def _submit(
        self, task: TaskRecord, pending: _Pending, allowed: Decision, now: float
    ) -> PendingWrite[TaskRecord | None]:
        """Queue the spend and the allow's event as one write (``_recorded`` is set)."""
        assert self._recorded is not None
        event = self._audit.event(
            **self._event(allowed, pending.holder, pending.facts, pending.request)
        )
        try:
            return self._recorded.submit_spend_call_recorded(
                task.task_id,
                expected_calls_used=task.calls_used,
                expected_max_calls=task.max_calls,
                expected_touched=task.touched,
                touched=int(pending.facts.sensitivity),
                now=now,
                events=[event.unsealed()],
                seal=seal,
                proof=_spent(pending.holder),
            )
        except Exception:  # not even queued (the store is closed): nothing was stored
            raise _Deny(["audit.write"], refusal=Refusal.UNAVAILABLE) from None

    def _evaluate(
        self, holder: TaskHolder, task: TaskRecord, facts: RequestFacts, now: float
    ) -> tuple[str, ...]:
        """The checks in code, then the policies; the determining policies of an allow."""
        claims = holder.claims
        if task.owner != claims.subject or task.token_jti != claims.jti:
            raise _Deny(["token.task_mismatch"])
        state = effective_state(task, now)
        if state is TaskState.EXPIRED and not task.state.ended:  # stored live: record it
            raise _Deny(["task.expired"], expired=(task, now))
        if state is not TaskState.ACTIVE:
            raise _Deny([f"task.{state.value}"])
        if task.calls_used >= task.max_calls:
            raise _Deny(["task.budget_exhausted"])
        request = request_policy_request(task.owner, task_facts(task, state), facts, now)
        try:
            result = self._engine().decide(request)
        except Exception:  # fail closed: an engine that raises denies, never allows
            raise _Deny(["policy.error"]) from None
        if result.errors:
            raise _Deny(["policy.error"], result.policy_ids)
        if not result.allowed:
            raise _Deny(list(result.policy_ids) or ["policy.no_permit"], result.policy_ids)
        return result.policy_ids

    def _record(
        self,
        decision: Decision,
        holder: TaskHolder | None,
        facts: RequestFacts | None,
        request: DecideInput,
    ) -> Decision:
        """Record a refusal. A proof it verified is spent everywhere first (a refused
        proof is no more usable than an allowed one), unless the refusal is that it
        was spent: a deny stands whether or not that write succeeds."""
        proof = _spent(holder) if holder is not None else None
        if proof is not None and decision.reasons != ("dpop.replayed",):
            self._auth.spend_proof(proof)
        try:
            self._audit.record(**self._event(decision, holder, facts, request))
        except Unavailable:
            return decision.failed_closed("audit.write")
        return decision

    @staticmethod
    def _event(
        decision: Decision,
        holder: TaskHolder | None,
        facts: RequestFacts | None,
        request: DecideInput,
    ) -> _EventFields:
        """The fields of a decision's audit event (for ``AuditLog.record``/``event``)."""
        parts = urlsplit(request.url)
        details: dict[str, object] = dict(request.details or {})
        details |= {
            "decision_id": decision.decision_id,
            "decision": "allow" if decision.allowed else "deny",
            "reasons": list(decision.reasons),
            "policies": list(decision.policies),
            "method": request.method.upper(),
            # neither the query nor a userinfo (user:password@) is ever recorded
            "url": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}",
        }
        if facts is not None:
            details.update(
                action=facts.action,
                resource=facts.resource,
                destination=facts.destination,
                destination_internal=facts.destination_internal,
                sensitivity=facts.sensitivity.label,
            )
        return {
            "kind": "decision",
            "actor": Actor("workload", holder.claims.subject if holder else "unauthenticated"),
            "subject": decision.task_id or "unknown",
            "outcome": Outcome.SUCCESS if decision.allowed else Outcome.DENIED,
            "reason": decision.reasons[0] if decision.reasons else "ok",
            "details": details,
        }
