"""The decision core: what a request's decision is, step by step, with no I/O.

Each step answers with an explicit outcome, and the decider's shells
(:class:`~zerolane.tasks.decisions.Decider`: ``decide`` on a thread, ``decide_async``
on an event loop) do the I/O it names and nothing else:

- :meth:`DecisionCore.decide`, under the task's lock: :class:`Allow` (commit this spend
  with its event), :class:`Deny` (with its reasons, policies and kind), or
  :data:`NEEDS_READ` (the decision needs the task as stored: read it and decide again);
- :meth:`DecisionCore.handed_over`, once the allow's write is handed to the store
  (still under the lock): the task's next request is decided on the task as that
  write will leave it, its compare-and-set queued behind;
- :meth:`DecisionCore.spent`, once the allow's write is known: :class:`Spent` (it is
  durable, and whether it was the task's last call), :class:`Retry` (the
  compare-and-set lost: back off, then decide again on what is stored) or
  :class:`Deny` (``task.contention`` after :data:`MAX_ATTEMPTS` losses);
- :meth:`DecisionCore.failed`: the :class:`Deny` an allow's write that raised becomes.

The core keeps what the decider knows between requests: the last known record of busy
tasks (:mod:`zerolane.tasks.task_cache`) and the revocation watch's epoch. Deciding
runs the checks in code (owner and token, state, window, budget: no policy edit can
switch them off), then the Cedar policies. What the policies alone deny (no permit, a
forbid, an approval they ask for) is let through as a shadow allow when the policy set,
the task's playbook or the enforcement point's route is in shadow mode
(:class:`~zerolane.decision.Shadow`), unless a policy annotated ``@shadow("never")`` (a
safety rule: no egress after a sensitive read, a risky task kept off sensitive data)
matched; nothing else ever is. A revocation watch past its grace window
raises :class:`~zerolane.errors.Unavailable`: a typed refusal the shells turn into a
deny, like every error of the authenticator or the store.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final, Literal

from zerolane.decision import Shadow
from zerolane.errors import ProofReplayed, Refusal, ZerolaneError
from zerolane.policy.context import (
    NO_RISK,
    RequestFacts,
    RiskFacts,
    TaskFacts,
    request_policy_request,
)
from zerolane.policy.engine import PolicyEngine
from zerolane.store.records import RevocationEvent, RevocationKind, Spend, TaskHold, TaskRecord
from zerolane.tasks.auth import TaskHolder
from zerolane.tasks.lifecycle import effective_state, user_facts
from zerolane.tasks.revocation import RevocationWatch
from zerolane.tasks.scope import Scope
from zerolane.tasks.task_cache import TaskCache
from zerolane.types import Clock, TaskState

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
class Allow:
    """Decided: allow. Commit :attr:`spend` (its compare-and-set expects :attr:`task`)
    with the allow's audit event; the answer is given once that write is durable."""

    task: TaskRecord
    policies: tuple[str, ...]
    spend: Spend
    #: a shadow allow: what enforcement would have denied (``policies`` are the
    #: policies that would have denied it); None for an allow
    shadow: Shadow | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Decided: deny, with its reasons, the determining policies and its kind."""

    reasons: tuple[str, ...]
    policies: tuple[str, ...] = ()
    refusal: Refusal = Refusal.FORBIDDEN
    #: a task stored live that this decision found past its window, and when (the
    #: shell tells ``on_expired``, which records the expiry)
    expired: tuple[TaskRecord, float] | None = None
    #: approval required: the version of the policy set that asked (the shell passes
    #: the deny through :meth:`zerolane.tasks.approvals.Approvals.gate`)
    approval: str | None = None
    #: the approval the deny is about (``approval.required``, ``.denied``, ``.used``)
    approval_id: str | None = None
    #: the policies alone decided it (no permit, a forbid, an approval they ask for,
    #: with no hold on the task, and none of them ``@shadow("never")``): the only deny
    #: shadow mode may let through
    by_policies: bool = field(default=False, compare=False)


class _Read(enum.Enum):
    NEEDS_READ = "needs_read"


#: The decision needs the task as stored: read it (off an event loop: the read may wait
#: for the task's queued writes), then decide again on it.
NEEDS_READ: Final = _Read.NEEDS_READ
NeedsRead = Literal[_Read.NEEDS_READ]


@dataclass(frozen=True, slots=True)
class Spent:
    """The allow's write is durable: the task as it left it."""

    task: TaskRecord
    #: it spent the task's last call and ``on_last_call`` must hear of it
    last_call: bool


@dataclass(frozen=True, slots=True)
class Retry:
    """The compare-and-set lost (another request spent first, or the guess it expected
    was wrong): wait :attr:`delay` seconds, then decide again on what is stored."""

    delay: float


def backoff(losses: int) -> float:
    """Seconds to wait after ``losses`` lost compare-and-sets in a row: none after the
    first (usually a guess of this process's own that proved wrong), then a random
    moment up to :data:`BACKOFF_BASE` doubled per loss, at most :data:`BACKOFF_CAP`."""
    if losses < 2:
        return 0.0
    return random.uniform(0.0, min(BACKOFF_BASE * 2 ** (losses - 2), BACKOFF_CAP))  # noqa: S311


def refused(err: ZerolaneError) -> Deny:
    """The deny an error raised while deciding becomes: of the error's kind, except that
    a request that cannot be decided is refused, never "not found" or "conflict"."""
    kind = err.kind if err.kind in _DENY_KINDS else Refusal.FORBIDDEN
    return Deny((err.reason,), refusal=kind)


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


#: a task record's values in field order, and where the two a spend changes sit: the
#: hot path rebuilds the record from them (half the cost of ``dataclasses.replace``)
_TASK_VALUES = attrgetter(*(f.name for f in dataclasses.fields(TaskRecord)))
_CALLS_USED, _TOUCHED = (
    [f.name for f in dataclasses.fields(TaskRecord)].index(name)
    for name in ("calls_used", "touched")
)


def _after_spend(task: TaskRecord, sensitivity: int) -> TaskRecord:
    """``task`` as the store will hold it once a call of ``sensitivity`` is spent."""
    values = list(_TASK_VALUES(task))
    values[_CALLS_USED] = task.calls_used + 1
    values[_TOUCHED] = max(task.touched, sensitivity)
    return TaskRecord(*values)


class DecisionCore:
    """Decides one step at a time over the task as last known (see the module doc).

    Not thread-safe per task on its own: a shell calls :meth:`decide` and
    :meth:`handed_over` under the task's lock."""

    def __init__(
        self,
        *,
        engine: Callable[[], PolicyEngine],
        clock: Clock,
        cache: TaskCache,
        revocations: RevocationWatch | None = None,
        last_call_heard: bool = False,
        risk: Callable[[str, str], RiskFacts] | None = None,
        held: Callable[[str, str | None], TaskHold | None] | None = None,
        shadow_policies: bool = False,
    ) -> None:
        """``last_call_heard``: whether an allow that spends its task's last call must
        be told apart (:attr:`Spent.last_call`). ``risk``: the risk of a task and its
        workload (``context.risk``), read from memory (no I/O per decision). ``held``:
        the hold on a task or its parent (:mod:`zerolane.tasks.holds`: each request the
        policies allow then needs a human approval), read from memory.
        ``shadow_policies``: the policy set is in shadow mode (what it denies is let
        through as a shadow allow)."""
        self._engine = engine
        self._clock = clock
        self._cache = cache
        self._revocations = revocations
        self._epoch = revocations.epoch if revocations is not None else 0
        self._last_call_heard = last_call_heard
        self._risk = risk
        self._held = held
        self._shadow_policies = shadow_policies

    def decide(
        self,
        holder: TaskHolder,
        facts: RequestFacts,
        read: tuple[TaskRecord | None] | None,
        approved: str | None = None,
        shadow: str | None = None,
    ) -> Allow | Deny | NeedsRead:
        """Decide on ``read`` (the task as just read from the store) when given, else on
        the task as last known; :data:`NEEDS_READ` when there is none, or when the known
        record says deny (a guess is never final for a deny).

        A record read before the task's lock was taken counts as fresh: a task's stored
        state only moves toward refusal (calls spent, data touched, ended, budget
        carved), so a deny decided on it stands, and an allow is still checked by the
        compare-and-set. Raises :class:`~zerolane.errors.Unavailable` when the
        revocation watch is past its grace window. ``approved``: the policy version of
        an approval just spent for this request (what it asked is then allowed, under
        that version only). ``shadow``: the enforcement point's mode that puts this
        request in shadow (:attr:`~zerolane.decision.DecideInput.shadow`)."""
        task_id = holder.claims.task_id
        if read is not None:
            task, fresh = read[0], True
        else:
            task = self._cache.get(task_id) if self._revocations_allow_cache() else None
            fresh = False
        if task is None:
            if not fresh:
                return NEEDS_READ
            self._cache.discard(task_id)
            return Deny(("task.unknown",))
        heard = self._revoked(task)
        if heard is not None:
            if not fresh:
                return NEEDS_READ  # the bus heard it end: decide on what is stored
            if task.state is TaskState.ACTIVE:  # heard, not yet in the store (or its
                # resume is stored and not yet heard): deny as heard
                self._cache.discard(task_id)
                suspended = heard.kind is RevocationKind.SUSPENDED
                return Deny(("task.suspended" if suspended else "task.revoked",))
        now = self._clock.now()
        verdict = self._evaluate(holder, task, facts, now, approved)
        shadowed: Shadow | None = None
        if isinstance(verdict, Deny) and verdict.by_policies:
            shadowed = self._shadowed(task, verdict, shadow)
            if shadowed is not None:  # let through: the policies that would have denied
                verdict = verdict.policies
        if isinstance(verdict, Deny):
            if not fresh:
                return NEEDS_READ  # decided on a guess: decide again on what is stored
            self._cache.put(task)
            return verdict
        spend = Spend(
            task_id=task_id,
            expected_calls_used=task.calls_used,
            expected_max_calls=task.max_calls,
            expected_touched=task.touched,
            touched=int(facts.sensitivity),
            now=now,
            proof=holder.proof.spent() if holder.proof is not None else None,
        )
        return Allow(task, verdict, spend, shadowed)

    def handed_over(self, allow: Allow) -> None:
        """The allow's write is handed to the store (under the task's lock): the task's
        next request is decided on the task as that write will leave it, and its own
        compare-and-set queued behind (it loses if this one does)."""
        self._cache.put(_after_spend(allow.task, allow.spend.touched))

    def spent(self, task_id: str, spent: TaskRecord | None, losses: int) -> Spent | Retry | Deny:
        """What the allow's write that committed means: ``spent`` is its result,
        ``losses`` the lost compare-and-sets of this request so far, this one included
        when ``spent`` is None."""
        if spent is not None:
            last = self._last_call_heard and spent.calls_used >= spent.max_calls
            return Spent(spent, last)
        self._cache.discard(task_id)  # the guess was wrong: the next attempt reads
        if losses >= MAX_ATTEMPTS:
            return Deny(("task.contention",))
        return Retry(backoff(losses))

    def failed(self, task_id: str, err: Exception) -> Deny:
        """The deny an allow's write that raised becomes: nothing of it was stored (the
        write is undone as a whole). A proof spent before, elsewhere, keeps its reason;
        any other failure is fail closed (``audit.write``)."""
        self._cache.discard(task_id)
        if isinstance(err, ProofReplayed):
            return refused(err)
        return Deny(("audit.write",), refusal=Refusal.UNAVAILABLE)

    def expired(self, task: TaskRecord) -> None:
        """A task this decider found past its window is being recorded as expired."""
        self._cache.discard(task.task_id)

    def _shadowed(self, task: TaskRecord, deny: Deny, route: str | None) -> Shadow | None:
        """The shadow allow a deny of the policies becomes when the policy set, the
        task's playbook (its mode, kept in the task's scope when it was opened) or the
        enforcement point (``route``) is in shadow mode; None: enforced. Only a deny
        reaches here, so an allow pays nothing for it."""
        modes: list[str] = []
        if self._shadow_policies:
            modes.append("policies")
        if Scope.from_json(task.scope).shadow:
            modes.append(f"playbook:{task.playbook}")
        if route is not None:
            modes.append(route)
        return Shadow(deny.reasons, tuple(modes)) if modes else None

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

    def _revoked(self, task: TaskRecord) -> RevocationEvent | None:
        """What the revocation bus announced of ``task`` or its parent (its end or its
        suspension, not lifted since), None when nothing."""
        if self._revocations is None:
            return None
        ids = (task.task_id,) if task.parent_id is None else (task.task_id, task.parent_id)
        return self._revocations.check_all(ids)

    def _evaluate(
        self,
        holder: TaskHolder,
        task: TaskRecord,
        facts: RequestFacts,
        now: float,
        approved: str | None = None,
    ) -> tuple[str, ...] | Deny:
        """The checks in code, then the policies: the determining policies of an allow,
        or the deny."""
        claims = holder.claims
        if task.owner != claims.subject or task.token_jti != claims.jti:
            return Deny(("token.task_mismatch",))
        state = effective_state(task, now)
        if state is TaskState.EXPIRED and not task.state.ended:  # stored live: record it
            return Deny(("task.expired",), expired=(task, now))
        if state is not TaskState.ACTIVE:
            return Deny((f"task.{state.value}",))
        if task.calls_used >= task.max_calls:
            return Deny(("task.budget_exhausted",))
        risk = self._risk(task.task_id, task.owner) if self._risk is not None else NO_RISK
        request = request_policy_request(task.owner, task_facts(task, state), facts, now, risk)
        try:
            engine = self._engine()
            result = engine.decide(request)
        except Exception:  # fail closed: an engine that raises denies, never allows
            return Deny(("policy.error",))
        if result.errors:  # with why, when the engine knows (an outdated schema)
            return Deny(("policy.error", *result.reasons), result.policy_ids)
        hold = self._held(task.task_id, task.parent_id) if self._held is not None else None
        if result.approval or (hold is not None and result.allowed):
            # denied by approval policies alone, or allowed while a response holds the task
            if approved is not None and approved == engine.version:
                return result.policy_ids
            asked = tuple(result.policy_ids) if result.approval else ()
            if hold is not None:  # a detection's hold is never relaxed (not by_policies)
                asked += (f"response:{hold.rule}",)
            relaxable = hold is None and not result.shadow_never
            return Deny(
                ("approval.required",), asked, approval=engine.version, by_policies=relaxable
            )
        if not result.allowed:
            # under a hold, shadow mode never lets a request through: a held task's
            # requests need a human approval, whatever mode the policies run in; nor
            # does it relax a safety rule (a forbid annotated @shadow("never") matched)
            reasons = tuple(result.policy_ids) or ("policy.no_permit",)
            relaxable = hold is None and not result.shadow_never
            return Deny(reasons, result.policy_ids, by_policies=relaxable)
        return result.policy_ids
