"""Request-time decisions: every request of a task is decided when it is made.

A decision checks, in order: the task token and its DPoP proof (who, bound to which
key, for this exact method and URL, once), the task's state, window and budget (in
code, so no policy edit can switch them off), then the Cedar policies over the task's
scope and the request's context. An allow spends one call atomically (compare-and-set,
so two concurrent requests can't both spend the last call or race a sensitive read
past the egress rule); every decision is an audit event, and one that cannot be
recorded is a deny.

One decision path: the core (:mod:`zerolane.tasks.decision_core`) decides step by step
with no I/O and answers each step with an explicit outcome (allow: commit this write;
deny, with its reasons; the stored task is needed; the compare-and-set lost: back off).
:class:`Decider` wraps it in two thin shells that only do the I/O an outcome names:
:meth:`Decider.decide` on a thread and :meth:`Decider.decide_async` on an event loop
(reads, the task's lock and the waits go off the loop there).

An allow is committed one way over every backend: its spend, its spent proof and its
audit event are handed to the decision log the deployment chose for its audit mode
(:mod:`zerolane.audit.decision_log`), which commits them as one write
(:meth:`~zerolane.store.ports.DecisionStore.commit_decision`): durable before the
answer, or nothing is stored. Hot path: the decider keeps the last known record of busy
tasks and serializes one task's decisions in this process
(:mod:`zerolane.tasks.task_cache`: the compare-and-set makes a stale record harmless);
the task's lock is held only until the allow's write is handed over, and the cache then
holds the task as that write will leave it, so the task's next request is decided while
the write commits and its own write is queued behind it (see :meth:`Decider._step`).

What an enforcement point asks and is answered (:class:`DecideInput`,
:class:`Decision`) is the decision contract of :mod:`zerolane.decision`, re-exported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from zerolane.audit.decision_log import DecisionEvent, DecisionLog
from zerolane.audit.events import Actor
from zerolane.decision import SHADOW
from zerolane.decision import DecideInput as DecideInput  # the contract, re-exported
from zerolane.decision import Decision as Decision
from zerolane.errors import InvalidInput, Refusal, Unauthenticated, Unavailable, ZerolaneError
from zerolane.paths import check_path
from zerolane.policy.context import RequestFacts, RiskFacts, is_internal
from zerolane.policy.engine import PolicyEngine
from zerolane.store.ports import PendingWrite, TaskStore
from zerolane.store.records import TaskHold, TaskRecord
from zerolane.tasks.approvals import Approvals
from zerolane.tasks.auth import Authenticator, TaskHolder
from zerolane.tasks.decision_core import (
    NEEDS_READ,
    Allow,
    DecisionCore,
    Deny,
    NeedsRead,
    Retry,
    refused,
)
from zerolane.tasks.revocation import RevocationWatch
from zerolane.tasks.task_cache import DEFAULT_CAPACITY, StripedLocks, TaskCache
from zerolane.types import Clock, Outcome, Sensitivity


@dataclass(frozen=True, slots=True)
class _Pending:
    """A request being decided: authenticated and mapped, not yet answered."""

    decision_id: str
    holder: TaskHolder
    facts: RequestFacts
    request: DecideInput
    #: the policy version of an approval spent for this request (see ``_approval``)
    approved: str | None = None


@dataclass(frozen=True, slots=True)
class _Queued:
    """An allow whose write is handed over: the answer, once the write is durable."""

    allowed: Decision
    write: PendingWrite[TaskRecord | None]


@dataclass(frozen=True, slots=True)
class Verified:
    """A request's credentials checked ahead of its decision (:meth:`Decider.verify`):
    the holder, or the refusal. An enforcement point that must read a body before it
    can decide checks first, so only a verified holder is waited for; the proof is not
    spent until the decision (:meth:`Decider.decide_async` given this) or
    :meth:`Decider.discard`."""

    #: the verified holder, or why its credentials were refused
    outcome: TaskHolder | ZerolaneError

    @property
    def holder(self) -> TaskHolder | None:
        return self.outcome if isinstance(self.outcome, TaskHolder) else None


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


def _bound(request: DecideInput, holder: TaskHolder) -> Deny | None:
    """The deny of a request bound to another task than its token's."""
    if request.task_id is not None and request.task_id != holder.claims.task_id:
        return Deny(("task.binding",))
    return None


def _map(
    request: DecideInput, default_sensitivity: Sensitivity, internal: tuple[str, ...]
) -> RequestFacts | Deny:
    """Turn a request into the facts policies see (action, resource, destination, whether
    it is inside the trust boundary, sensitivity, the MCP call it carries), or the deny
    of a request that cannot be mapped."""
    parts = urlsplit(request.url)
    action = request.action or f"http:{request.method.upper()}"
    destination = request.destination or (parts.hostname or "")
    resource = request.resource
    if resource is None:
        try:  # the one path rule, the HTTP gateway's (encoded as the URL holds it)
            path = check_path((parts.path or "/").encode("utf-8"))
        except InvalidInput:
            return Deny(("request.path",), refusal=Refusal.INVALID)
        if "%" in path:
            # a resource named by its URL is the path as written: an escape in it would
            # let "secret%20report" sidestep a policy on "secret report" at an upstream
            # that decodes (an enforcement point that decodes maps the resource itself)
            return Deny(("request.path",), refusal=Refusal.INVALID)
        resource = path.strip("/")
    if not resource or not destination:
        return Deny(("request.unmapped",))
    if any(segment in (".", "..") for segment in resource.split("/")):
        # a pattern like finance/** must not match finance/../hr/x, whoever mapped it
        return Deny(("request.resource",))
    try:
        sensitivity = (
            Sensitivity.parse(request.sensitivity) if request.sensitivity else default_sensitivity
        )
    except ValueError:
        return Deny(("request.sensitivity",))
    return RequestFacts(
        action=action,
        resource=resource,
        destination=destination,
        sensitivity=sensitivity,
        method=request.method.upper(),
        destination_internal=is_internal(destination, internal),
        mcp=request.mcp,
    )


class Decider:
    """Decides requests of tasks: the decision core (:class:`DecisionCore`) in a shell
    for threads (:meth:`decide`) and one for event loops (:meth:`decide_async`); what it
    is given at construction decides how a decision is stored (``decisions``)."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        tasks: TaskStore,
        decisions: DecisionLog,
        engine: Callable[[], PolicyEngine],
        clock: Clock,
        internal_destinations: Sequence[str],
        default_sensitivity: Sensitivity = Sensitivity.INTERNAL,
        cache_capacity: int = DEFAULT_CAPACITY,
        revocations: RevocationWatch | None = None,
        approvals: Approvals | None = None,
        on_last_call: Callable[[TaskRecord], object] | None = None,
        on_expired: Callable[[TaskRecord, float], object] | None = None,
        risk: Callable[[str, str], RiskFacts] | None = None,
        held: Callable[[str, str | None], TaskHold | None] | None = None,
        shadow_policies: bool = False,
    ) -> None:
        """``tasks``: where the stored task is read. ``decisions``: where an allow's
        write is committed and a refusal's event recorded (the deployment's audit mode
        chose it: :func:`~zerolane.audit.decision_log.decision_log`).
        ``on_last_call``: told of an allow that spent its task's last call (a one-shot
        task ends there). ``on_expired``: told of a task stored live that a decision
        found past its window, with the decision's time, to record the expiry (so a
        clock stepped back, or another process, cannot revive it); called off the event
        loop, never raising into the decision. ``risk``: the risk scores of a task and
        its workload (``context.risk``; none: 0). ``held``: the hold on a task or its
        parent (:mod:`zerolane.tasks.holds`; none: no task is held).
        ``shadow_policies``: the policy set runs in shadow mode (what it denies is let
        through, audited as a would-deny: :class:`~zerolane.decision.Shadow`)."""
        self._auth = authenticator
        self._tasks = tasks
        self._decisions = decisions
        self._internal = tuple(internal_destinations)
        self._default_sensitivity = default_sensitivity
        self._locks = StripedLocks()
        self._on_last_call = on_last_call
        self._on_expired = on_expired
        #: asks for and spends human approvals (none: approval required stays a deny)
        self._approvals = approvals
        self._core = DecisionCore(
            engine=engine,
            clock=clock,
            cache=TaskCache(cache_capacity),
            revocations=revocations,
            last_call_heard=on_last_call is not None,
            risk=risk,
            held=held,
            shadow_policies=shadow_policies,
        )

    def decide(
        self,
        token: str,
        proof: str | None,
        request: DecideInput,
        *,
        checked: Verified | None = None,
    ) -> Decision:
        """Decide ``request`` (``checked``: its credentials as :meth:`verify` checked
        them for the same method, URL, audience and certificate; not again)."""
        decision_id = uuid.uuid4().hex
        holder: TaskHolder | None = None
        facts: RequestFacts | None = None
        verified: Mapping[str, str] | None = None
        outcome: Decision | Deny
        try:
            holder = self._holder(token, proof, request, checked)
            mapped = _bound(request, holder) or _map(
                request, self._default_sensitivity, self._internal
            )
            if isinstance(mapped, Deny):
                outcome = mapped
            else:
                facts = mapped
                outcome = self._decide(_Pending(decision_id, holder, facts, request))
        except ZerolaneError as err:  # the authenticator's, the store's, the bus's
            outcome, verified = refused(err), _verified(err)
        if isinstance(outcome, Decision):
            return outcome
        self._record_expiry(outcome)
        denied = self._denied(decision_id, holder, outcome)
        return self._record(denied, holder, facts, request, verified)

    async def decide_async(
        self,
        token: str,
        proof: str | None,
        request: DecideInput,
        *,
        checked: Verified | None = None,
    ) -> Decision:
        """:meth:`decide` for an event loop: the same decision, made on the loop's thread
        with no hand-off to a worker thread and back (which cost an enforcement point
        more CPU than the decision's own write). Only the allow's write is waited for
        apart: the store commits it (with whatever else is queued) while the loop serves
        other requests.

        The loop never waits on the store or on another thread: reading the task (when
        the decider does not know it, or must decide a deny again on what is stored, a
        read that may wait for the task's queued writes), a task whose lock a worker
        thread holds, a refusal's audit event and the hooks (a one-shot task ends, an
        expiry is recorded: writes) go to a worker thread. So a flood of refused
        requests, or a slow disk, delays those requests, never the loop. Nothing is
        awaited while the task's lock is held."""
        loop = asyncio.get_running_loop()
        decision_id = uuid.uuid4().hex
        holder: TaskHolder | None = None
        facts: RequestFacts | None = None
        verified: Mapping[str, str] | None = None
        outcome: Decision | Deny
        try:
            holder = self._holder(token, proof, request, checked)
            mapped = _bound(request, holder) or _map(
                request, self._default_sensitivity, self._internal
            )
            if isinstance(mapped, Deny):
                outcome = mapped
            else:
                facts = mapped
                pending = _Pending(decision_id, holder, facts, request)
                outcome = await self._decide_async(pending, loop)
        except ZerolaneError as err:  # the authenticator's, the store's, the bus's
            outcome, verified = refused(err), _verified(err)
        if isinstance(outcome, Decision):
            return outcome
        if outcome.expired is not None and self._on_expired is not None:  # writes
            await loop.run_in_executor(None, self._record_expiry, outcome)
        denied = self._denied(decision_id, holder, outcome)
        return await loop.run_in_executor(
            None, self._record, denied, holder, facts, request, verified
        )

    def verify(self, token: str, proof: str | None, request: DecideInput) -> Verified:
        """Check the token and its proof (or certificate) for ``request`` now, without
        spending the proof anywhere but in this process's replay cache, and without
        deciding (nothing is written); never raises a refusal, the :class:`Verified`
        holds it."""
        try:
            return Verified(self._holder(token, proof, request))
        except ZerolaneError as err:
            return Verified(err)

    def discard(self, verified: Verified) -> None:
        """Spend the proof of a request :meth:`verify` let through that will never be
        decided (its body never came): no proof is usable twice. A write: call it off
        the event loop."""
        holder = verified.holder
        if holder is not None and holder.proof is not None:
            self._auth.spend_proof(holder.proof.spent())

    def _holder(
        self,
        token: str,
        proof: str | None,
        request: DecideInput,
        checked: Verified | None = None,
    ) -> TaskHolder:
        if checked is not None:
            if isinstance(checked.outcome, ZerolaneError):
                raise checked.outcome
            return checked.outcome
        return self._auth.task_holder(
            token,
            proof,
            method=request.method,
            url=request.url,
            audience=request.audience,
            client_cert=request.client_cert,
            spend_later=True,  # with the allow's write, or with the deny (_record)
        )

    def _decide(self, pending: _Pending) -> Decision | Deny:
        """The thread's shell: attempt (waiting for the task's lock, reading under it),
        wait for the allow's write, back off and attempt again when it lost."""
        task_id = pending.holder.claims.task_id
        losses = 0
        while True:
            step = self._attempt(pending)
            if isinstance(step, Deny) and self._asks_approval(pending, step):
                gated = self._approval(pending, step)
                if isinstance(gated, Deny):
                    return gated
                pending = gated  # an approval was spent: decide again as approved
                continue
            if isinstance(step, Deny):
                return step
            try:
                spent = step.write.result()
            except Exception as err:  # nothing of it was stored (undone as a whole)
                return self._core.failed(task_id, err)
            losses += spent is None
            after = self._core.spent(task_id, spent, losses)
            if isinstance(after, Retry):
                time.sleep(after.delay)  # not holding the task's lock
                continue
            if isinstance(after, Deny):
                return after
            if after.last_call:
                self._last_call(after.task)
            return step.allowed

    async def _decide_async(
        self, pending: _Pending, loop: asyncio.AbstractEventLoop
    ) -> Decision | Deny:
        """The event loop's shell: :meth:`_decide` with every wait off the loop."""
        task_id = pending.holder.claims.task_id
        read: tuple[TaskRecord | None] | None = None
        losses = 0
        while True:
            lock = self._locks.of(task_id)
            step: _Queued | Deny
            if lock.acquire(blocking=False):
                try:
                    stepped = self._step(pending, read)
                finally:
                    lock.release()
                if stepped is NEEDS_READ:  # the task as stored, read off the loop (the
                    # read may wait for the task's queued writes)
                    read = (await loop.run_in_executor(None, self._tasks.get_task, task_id),)
                    continue
                step = stepped
            else:  # a worker thread decides this task: wait for its lock there
                step = await loop.run_in_executor(None, self._attempt, pending, read)
            read = None
            if isinstance(step, Deny) and self._asks_approval(pending, step):
                gated = await loop.run_in_executor(None, self._approval, pending, step)
                if isinstance(gated, Deny):
                    return gated
                pending = gated  # an approval was spent: decide again as approved
                continue
            if isinstance(step, Deny):
                return step
            try:
                spent = await step.write.result_async()
            except Exception as err:  # nothing of it was stored (undone as a whole)
                return self._core.failed(task_id, err)
            losses += spent is None
            after = self._core.spent(task_id, spent, losses)
            if isinstance(after, Retry):
                if after.delay:
                    await asyncio.sleep(after.delay)
                continue
            if isinstance(after, Deny):
                return after
            if after.last_call:  # e.g. a one-shot task ends: writes
                await loop.run_in_executor(None, self._last_call, after.task)
            return step.allowed

    def _attempt(
        self, pending: _Pending, read: tuple[TaskRecord | None] | None = None
    ) -> _Queued | Deny:
        """One attempt on a thread: wait for the task's lock, then decide, reading the
        stored task under the lock whenever the core needs it."""
        task_id = pending.holder.claims.task_id
        with self._locks.of(task_id):
            while True:
                step = self._step(pending, read)
                if step is not NEEDS_READ:
                    return step
                read = (self._tasks.get_task(task_id),)

    def _step(
        self, pending: _Pending, read: tuple[TaskRecord | None] | None
    ) -> _Queued | Deny | NeedsRead:
        """Under the task's lock: decide, and hand an allow's write over.

        The lock is held only until the write is handed over, and the core's cache then
        holds the task as the write will leave it: the task's next request is decided
        on that record and its compare-and-set queued behind this one, so requests of
        one busy task share commits instead of waiting for each other's. A write that
        loses (or fails) empties the task's cache entry, so a request decided on a
        guess that proved wrong loses its compare-and-set too and is decided again on
        what is stored."""
        request = pending.request
        step = self._core.decide(
            pending.holder, pending.facts, read, pending.approved, request.shadow
        )
        if not isinstance(step, Allow):
            return step
        allowed = _decision(pending.decision_id, pending.holder, (), step.policies, None)
        playbook = None
        if step.shadow is not None:
            allowed = dataclasses.replace(allowed, shadow=step.shadow)
            playbook = step.task.playbook  # what a shadow report groups by
        event = _event(allowed, pending.holder, pending.facts, request, playbook=playbook)
        try:
            write = self._decisions.commit(step.spend, event)
        except Exception:  # not even handed over (the store is closed): nothing stored
            return Deny(("audit.write",), refusal=Refusal.UNAVAILABLE)
        self._core.handed_over(step)
        return _Queued(allowed, write)

    @staticmethod
    def _denied(decision_id: str, holder: TaskHolder | None, deny: Deny) -> Decision:
        denied = _decision(decision_id, holder, deny.reasons, deny.policies, deny.refusal)
        if deny.approval_id is None:
            return denied
        return dataclasses.replace(denied, approval_id=deny.approval_id)

    def _asks_approval(self, pending: _Pending, deny: Deny) -> bool:
        """The deny is "approval required" and the request has not spent one yet."""
        return deny.approval is not None and pending.approved is None

    def _approval(self, pending: _Pending, deny: Deny) -> _Pending | Deny:
        """Pass an "approval required" deny through the approvals (writes: off the
        event loop): the request to decide again as approved, or the deny."""
        if self._approvals is None:
            return deny
        gated = self._approvals.gate(pending.holder, pending.facts, pending.request, deny)
        if isinstance(gated, Deny):
            return gated
        return dataclasses.replace(pending, approved=gated)

    def _record_expiry(self, deny: Deny) -> None:
        """Tell ``on_expired`` of a task this refusal found expired (see __init__)."""
        if self._on_expired is None or deny.expired is None:
            return
        task, now = deny.expired
        self._core.expired(task)
        self._on_expired(task, now)

    def _last_call(self, spent: TaskRecord) -> None:
        hook = self._on_last_call
        if hook is not None:
            hook(spent)  # e.g. a one-shot task ends here

    def _record(
        self,
        decision: Decision,
        holder: TaskHolder | None,
        facts: RequestFacts | None,
        request: DecideInput,
        verified: Mapping[str, str] | None = None,
    ) -> Decision:
        """Record a refusal. A proof it verified is spent everywhere first (a refused
        proof is no more usable than an allowed one), unless the refusal is that it
        was spent: a deny stands whether or not that write succeeds. ``verified``: what
        the authenticator had verified of a holder it then refused (the task, the
        token's id, the keys), which the event records."""
        proof = holder.proof.spent() if holder is not None and holder.proof is not None else None
        if proof is not None and decision.reasons != ("dpop.replayed",):
            self._auth.spend_proof(proof)
        try:
            self._decisions.record(_event(decision, holder, facts, request, verified))
        except Unavailable:
            return decision.failed_closed("audit.write")
        return decision


def _verified(err: ZerolaneError) -> Mapping[str, str] | None:
    """What the authenticator verified before refusing (see ``Unauthenticated``)."""
    return err.verified if isinstance(err, Unauthenticated) else None


def _event(
    decision: Decision,
    holder: TaskHolder | None,
    facts: RequestFacts | None,
    request: DecideInput,
    verified: Mapping[str, str] | None = None,
    *,
    playbook: str | None = None,
) -> DecisionEvent:
    """The fields of a decision's audit event (the decision log builds and seals it):
    the holder's task, workload, token id and proof (its ``jti`` and key), or what was
    verified of a holder refused (``verified``); never a token or a proof. A shadow
    allow names what enforcement would have said, and its task's ``playbook``."""
    parts = urlsplit(request.url)
    details: dict[str, object] = dict(request.details or {})
    details |= {
        "decision_id": decision.decision_id,
        "decision": decision.outcome,
        "reasons": list(decision.reasons),
        "policies": list(decision.policies),
        "method": request.method.upper(),
        # neither the query nor a userinfo (user:password@) is ever recorded
        "url": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}",
    }
    if decision.approval_id is not None:
        details["approval_id"] = decision.approval_id
    reason = decision.reasons[0] if decision.reasons else "ok"
    if decision.shadow is not None:  # let through; what enforcement would have said
        details["would_deny"] = list(decision.shadow.reasons)
        details["shadow"] = list(decision.shadow.modes)
        details["playbook"] = playbook
        reason = SHADOW
    actor, subject = "unauthenticated", decision.task_id or "unknown"
    if holder is not None:
        claims, proof = holder.claims, holder.proof
        actor, details["token_id"] = claims.subject, claims.jti
        if proof is not None:
            details |= {"proof_jti": proof.jti, "jkt": proof.jkt}
    elif verified:
        actor, subject = verified["workload"], verified["task_id"]
        details |= verified
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
        "actor": Actor("workload", actor),
        "subject": subject,
        "outcome": Outcome.SUCCESS if decision.allowed else Outcome.DENIED,
        "reason": reason,
        "details": details,
    }
