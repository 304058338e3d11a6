"""Opening, completing and revoking tasks: zero standing privilege.

A workload holds nothing until it opens a task from a playbook with a declared intent;
the task token it then gets is valid only for the task window, bound to its key, and
ends (everywhere, at the next decision) when the task is completed or revoked.

Ending a task ends its whole delegation tree in one atomic store write (every live
descendant is revoked with ``parent.completed`` / ``parent.revoked``), so a decision
made after :meth:`TaskLifecycle.complete` or :meth:`TaskLifecycle.revoke` returned is
denied for the task and every descendant: the decider's spend is a compare-and-set on
the stored state. The ``on_ended`` hook then hears of every task ended.

Every state change is stored together with its audit event, in one transaction
(:meth:`~zerolane.store.ports.RecordedWrites.write_recorded`): a task is never stored
without its ``task.opened`` event, nor ended without its ``task.completed`` /
``task.revoked`` / ``task.expired`` events, even when the process dies in between.

An admin (or an automatic response) may **suspend** a task: it and every live task
delegated from it (its whole live subtree) move to ``suspended`` in one write, each with
its ``task.suspended`` event; nothing of them is allowed, delegated, renewed or
completed until an admin **resumes** the task, which brings back, in one write with a
``task.resumed`` event each, the task and what its suspension took (a descendant
suspended on its own before stays suspended, and a task whose parent is suspended
waits for its parent). A suspension never moves a task's window: a task whose window
ends while suspended expires, and an expired, completed or revoked task is never
resumed. Suspended tasks are told to the ``on_ended`` hook (their grants are revoked,
the bus announces them), resumed ones to ``on_resumed``.

Time only moves forward for a task: once a task is seen past its window (a read, a
list, a delegation, or a decision through :meth:`TaskLifecycle.mark_expired`) its
expiry is recorded (state ``expired`` and a ``task.expired`` event), so a clock stepped
back later, in this process or another one opened on the same store, cannot bring it
back to life: the stored state refuses it.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import SYSTEM, Actor, Event
from zerolane.audit.log import AuditLog
from zerolane.errors import Conflict, Forbidden, InvalidInput, NotFound
from zerolane.identity.keyring import Keyring
from zerolane.identity.users import VerifiedUser
from zerolane.policy.context import OpenFacts, UserFacts, open_policy_request
from zerolane.policy.engine import PolicyEngine
from zerolane.store.changes import AddTask, EndTree, ExpireTree, ResumeTree, SuspendTree
from zerolane.store.ports import RecordedWrites, TaskStore
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import WorkloadCaller
from zerolane.tasks.playbook_registry import PlaybookRegistry
from zerolane.tasks.playbooks import opener_matches
from zerolane.tasks.scope import Scope, requested_scope
from zerolane.tasks.views import MAX_SWEEP as MAX_SWEEP  # re-exported: the views' rules
from zerolane.tasks.views import SWEPT, TREE_LIMIT, expiry_due, tree_of
from zerolane.tasks.views import effective_state as effective_state
from zerolane.tokens.rfc8693 import Actor as ChainActor
from zerolane.tokens.rfc8693 import act_claim
from zerolane.tokens.rfc9068 import TaskTokenClaims, issue_task_token
from zerolane.types import Clock, Outcome, TaskState

MAX_INTENT = 2000
DEFAULT_TTL = 300
#: the end reason of a single-use task (``one_shot`` playbook) after its one call
SINGLE_USE = "task.single_use"
log = logging.getLogger(__name__)
#: reason of each descendant a task's end revokes, by the state the task ended in
DESCENDANT_REASONS = {
    TaskState.COMPLETED: "parent.completed",
    TaskState.REVOKED: "parent.revoked",
}

#: the reason each descendant a suspension takes with it is stored with: the mark
#: a resume follows (an admin's own reason may therefore not start with ``parent.``)
SUSPENDED_WITH_PARENT = "parent.suspended"
RESUMED_WITH_PARENT = "parent.resumed"
#: the longest reason an admin may give a suspension or a resume
MAX_REASON = 256

#: told of every task the lifecycle ended or suspended (a task and its descendants), or
#: resumed, once stored
EndedHook = Callable[[Sequence[TaskRecord]], None]


def _nobody(_: Sequence[TaskRecord]) -> None:
    return None


def _admin_reason(reason: str) -> str:
    """An admin's reason for a suspension or a resume, checked: 1..256 printable
    characters, never ``parent.`` (the mark of a cascade)."""
    if not reason.strip() or len(reason) > MAX_REASON or not reason.isprintable():
        raise InvalidInput("task.reason", f"a reason is 1..{MAX_REASON} printable characters")
    if reason.startswith("parent."):
        raise InvalidInput("task.reason", "a reason starting with 'parent.' is reserved")
    return reason


class RecordedTaskStore(TaskStore, RecordedWrites, Protocol):
    """The task store the lifecycle writes through: each change with its events."""


def user_facts(task: TaskRecord) -> UserFacts | None:
    """The verified person ``task`` acts for, as policies see it (None: nobody)."""
    if task.user_subject is None or task.user_issuer is None:
        return None
    return UserFacts(subject=task.user_subject, issuer=task.user_issuer)


@dataclass(frozen=True, slots=True)
class OpenRequest:
    intent: str
    playbook: str
    authorization_details: Sequence[object] | None = None
    ttl: int | None = None
    max_calls: int | None = None
    on_behalf_of: str | None = None
    audience: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class OpenedTask:
    task: TaskRecord
    token: str


def live_task(tasks: TaskStore, claims: TaskTokenClaims, now: float) -> TaskRecord:
    """The task a verified token is for, when it is still active; else :class:`Forbidden`."""
    task = tasks.get_task(claims.task_id)
    if task is None:
        raise Forbidden("task.unknown", "the token's task does not exist")
    if task.owner != claims.subject or task.token_jti != claims.jti:
        raise Forbidden("token.task_mismatch", "the token was not issued for this task")
    state = effective_state(task, now)
    if state is not TaskState.ACTIVE:
        raise Forbidden(f"task.{state.value}", f"task {task.task_id} is {state.value}")
    return task


class TaskLifecycle:
    def __init__(
        self,
        *,
        trust_domain: str,
        keyring: Keyring,
        tasks: RecordedTaskStore,
        playbooks: PlaybookRegistry,
        engine: Callable[[], PolicyEngine],
        audit: AuditLog,
        clock: Clock,
        on_ended: EndedHook = _nobody,
        on_resumed: EndedHook = _nobody,
    ) -> None:
        self.issuer = f"spiffe://{trust_domain}"
        self._keyring = keyring
        self._tasks = tasks
        self._playbooks = playbooks
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self._on_ended = on_ended
        self._on_resumed = on_resumed

    def open(
        self, caller: WorkloadCaller, request: OpenRequest, *, user: VerifiedUser | None = None
    ) -> OpenedTask:
        """Grant a task when the request is within the playbook and policy permits.

        ``user``: the person the task acts for, verified from an ID token (never from
        ``request.on_behalf_of``, which is free text kept for audit only).
        """
        owner = caller.workload.spiffe_id
        try:
            return self._open(caller, request, user)
        except (InvalidInput, Forbidden, NotFound) as err:
            details: dict[str, object] = {
                "intent": request.intent[:MAX_INTENT],
                "playbook": request.playbook,
            }
            if user is not None:
                details["user"] = {"subject": user.subject, "issuer": user.issuer}
            self._audit.record(
                "task.open",
                actor=Actor("workload", owner),
                subject=request.playbook[:200],
                outcome=Outcome.DENIED,
                reason=err.reason,
                details=details,
            )
            err.audited = True
            raise

    def _open(
        self, caller: WorkloadCaller, request: OpenRequest, user: VerifiedUser | None
    ) -> OpenedTask:
        if not request.intent.strip() or len(request.intent) > MAX_INTENT:
            raise InvalidInput("task.intent", f"intent is 1..{MAX_INTENT} characters of text")
        playbook = self._playbooks.get(request.playbook)
        scope = requested_scope(request.authorization_details, playbook)
        ttl = request.ttl if request.ttl is not None else min(DEFAULT_TTL, playbook.max_ttl)
        if ttl <= 0:
            raise InvalidInput("task.ttl", "ttl must be a positive number of seconds")
        if ttl > playbook.max_ttl:
            raise Forbidden("scope.ttl", f"ttl {ttl}s exceeds the playbook's {playbook.max_ttl}s")
        max_calls = request.max_calls if request.max_calls is not None else playbook.max_calls
        if max_calls <= 0:
            raise InvalidInput("task.max_calls", "max_calls must be positive")
        if max_calls > playbook.max_calls:
            raise Forbidden(
                "scope.max_calls",
                f"max_calls {max_calls} exceeds the playbook's {playbook.max_calls}",
            )
        workload = caller.workload
        now = self._clock.now()
        facts = OpenFacts(
            trust_domain=workload.spiffe_id.split("/")[2],
            selectors=workload.selectors,
            owner=workload.owner,
            playbook=playbook.name,
            opener_matches=opener_matches(playbook, workload.spiffe_id, workload.selectors),
            delegable=playbook.delegable,
            max_depth=playbook.max_depth,
            playbook_ceiling=playbook.data_ceiling,
            max_ttl=playbook.max_ttl,
            playbook_max_calls=playbook.max_calls,
            actions=scope.actions,
            destinations=scope.destinations,
            ceiling=scope.ceiling,
            ttl=ttl,
            max_calls=max_calls,
            depth=0,
            intent=request.intent,
            on_behalf_of=request.on_behalf_of,
            user=UserFacts(user.subject, user.issuer) if user is not None else None,
        )
        engine = self._engine()
        try:
            result = engine.decide(open_policy_request(workload.spiffe_id, facts, now))
        except Exception as err:  # fail closed: an engine that raises refuses, never grants
            raise Forbidden("policy.error", "the grant policy could not be evaluated") from err
        if result.errors or not result.allowed:
            reason = result.policy_ids[0] if result.policy_ids else "grant.no_permit"
            if result.errors:
                reason = "policy.error"
            raise Forbidden(
                reason, f"policy does not let {workload.spiffe_id} open {playbook.name}"
            )
        return self._grant(caller, request, scope, ttl, max_calls, now, user)

    def _grant(
        self,
        caller: WorkloadCaller,
        request: OpenRequest,
        scope: Scope,
        ttl: int,
        calls: int,
        now: float,
        user: VerifiedUser | None = None,
    ) -> OpenedTask:
        record = self._playbooks.record(request.playbook)
        audience = tuple(dict.fromkeys([self.issuer, *(request.audience or ())]))
        if caller.bearer_ttl is not None:  # unbound: for the gateway only, never for us
            audience = tuple(dict.fromkeys(request.audience or ()))
            if not audience:
                raise InvalidInput("task.audience", "a bearer client's token names its gateway")
        task_id = "tsk_" + secrets.token_urlsafe(16)
        jti = uuid.uuid4().hex
        issued_at = int(now)
        expires_at = issued_at + ttl
        if caller.bound_until is not None:  # a certificate-bound token dies with its cert
            expires_at = min(expires_at, int(caller.bound_until))
        token_expires = expires_at
        if caller.bearer_ttl is not None:  # the task lives on; its unbound token does not
            token_expires = min(expires_at, issued_at + caller.bearer_ttl)
        claims = TaskTokenClaims(
            issuer=self.issuer,
            subject=caller.workload.spiffe_id,
            audience=audience,
            issued_at=issued_at,
            not_before=issued_at,
            expires_at=token_expires,
            jti=jti,
            jkt=caller.jkt,
            task_id=task_id,
            authorization_details=tuple(scope.authorization_details()),
            # acting for a person: the holder (current actor), then the person it acts for
            act=act_claim(
                [ChainActor(caller.workload.spiffe_id), ChainActor(user.subject, user.issuer)]
            )
            if user is not None
            else None,
            x5t=caller.x5t,  # RFC 8705: bound to the client certificate instead of a key
            bearer=caller.bearer_ttl is not None,
        )
        token = issue_task_token(self._keyring.sign, claims)
        task = TaskRecord(
            task_id=task_id,
            owner=caller.workload.spiffe_id,
            playbook=record.name,
            playbook_version=record.version,
            intent=request.intent,
            scope=scope.to_json(),
            authorization_details=scope.details_json(),
            jkt=caller.binding,
            audience=audience,
            state=TaskState.ACTIVE,
            created_at=now,
            expires_at=float(expires_at),
            max_calls=calls,
            calls_used=0,
            touched=-1,
            token_jti=jti,
            on_behalf_of=request.on_behalf_of,
            user_subject=user.subject if user is not None else None,
            user_issuer=user.issuer if user is not None else None,
        )
        opened = self._audit.event(
            "task.opened",
            Actor("workload", task.owner),
            task_id,
            Outcome.SUCCESS,
            details={
                "playbook": record.name,
                "playbook_version": record.version,
                "intent": request.intent,
                "scope": scope.to_json(),
                "expires_at": expires_at,
                "max_calls": calls,
                "jkt": task.jkt,
                "token_id": jti,
                "on_behalf_of": request.on_behalf_of,
                **(
                    {"user": {"subject": user.subject, "issuer": user.issuer}}
                    if user is not None
                    else {}
                ),
            },
        )
        # the task and its event, in one write: never a stored task without its event
        self._tasks.write_recorded(AddTask(task), lambda _: [opened.unsealed()], seal)
        return OpenedTask(task, token)

    def get(self, task_id: str) -> TaskRecord:
        """The task as stored; one seen past its window is recorded expired first."""
        task = self._tasks.get_task(task_id)
        if task is None:
            raise NotFound("task.unknown", f"no task {task_id}")
        return self.mark_expired(task)

    def live(self, claims: TaskTokenClaims, *, now: float | None = None) -> TaskRecord:
        """:func:`live_task` at ``now`` (this lifecycle's clock by default); a task it
        finds expired has its expiry recorded before the refusal (``task.expired``)."""
        now = self._clock.now() if now is None else now
        try:
            return live_task(self._tasks, claims, now)
        except Forbidden as err:
            if err.reason == "task.expired":
                task = self._tasks.get_task(claims.task_id)
                if task is not None:
                    self.mark_expired(task, now=now)
            raise

    def mark_expired(self, task: TaskRecord, *, now: float | None = None) -> TaskRecord:
        """Record the expiry of ``task`` when its window is over (at ``now``, this
        lifecycle's clock by default) and it is stored live: the task and every live
        descendant (whose windows end no later) move to ``expired`` with a
        ``task.expired`` event each, in one write, and the ``on_ended`` hook hears of
        them. Returns the task as stored after it (``task`` itself when nothing was to
        be recorded).

        A decision that finds a task expired calls this, so that the expiry outlives
        the clock: a decision at an earlier time (a clock stepped back, another process)
        is refused by the stored state. It never raises: a failure to record is logged
        and the task is still expired to whoever compares its window with the clock.
        """
        now = self._clock.now() if now is None else now
        if not expiry_due(task, now):
            return task
        try:
            expired = self._tasks.write_recorded(
                ExpireTree(task.task_id, now),
                lambda ended: self._end_events(ended, task.task_id, SYSTEM),
                seal,
            )
        except Exception:  # the window comparison still refuses it: log, never raise
            log.exception("recording the expiry of task %s failed", task.task_id)
            return task
        self._tell_ended(expired)
        if expired and expired[0].task_id == task.task_id:
            return expired[0]
        return self._tasks.get_task(task.task_id) or task

    def complete(self, task_id: str, holder_sub: str, holder_task: str) -> TaskRecord:
        """The owner ends its task; its token is refused from the next decision on."""
        if holder_task != task_id:
            raise Forbidden("task.not_yours", "this token belongs to another task")
        task = self.get(task_id)
        if task.owner != holder_sub:
            raise Forbidden("task.not_yours", "only the task's owner may complete it")
        if task.state is TaskState.SUSPENDED:  # the admin who suspended it decides
            raise Forbidden(
                "task.suspended", f"task {task_id} is suspended: only an admin may resume it"
            )
        return self._end(task, TaskState.COMPLETED, "completed", Actor("workload", holder_sub))

    def after_allowed(self, task: TaskRecord) -> TaskRecord | None:
        """Told of the record an allowed request's spend returned when it spent the
        task's last call (the decider's ``on_last_call`` hook): a single-use task (from
        a ``one_shot`` playbook) whose one call is now spent ends ``completed`` with
        reason ``task.single_use``, with its grants and any descendants, so a replay of
        its token is refused as ``task.completed``.

        The spend already made that call the only one (``max_calls`` is 1 and spending
        is a compare-and-set), so ending the task is for the record and the cleanup:
        this never raises (the allow stands, and the budget refuses any other call).
        Returns the ended record, or None when the task stays as it is.
        """
        if task.state is not TaskState.ACTIVE or task.calls_used < task.max_calls:
            return None
        try:
            if not self._playbooks.get(task.playbook).one_shot:
                return None
            return self._end(task, TaskState.COMPLETED, SINGLE_USE, Actor("system", "single-use"))
        except Conflict:
            return None  # ended meanwhile (revoked, completed by its owner)
        except Exception:  # the spend refuses every later call: log, never undo the allow
            log.exception("ending single-use task %s failed", task.task_id)
            return None

    def revoke(self, task_id: str, *, actor: Actor, reason: str = "revoked") -> TaskRecord:
        return self._end(self.get(task_id), TaskState.REVOKED, reason, actor)

    def _end(self, task: TaskRecord, state: TaskState, reason: str, actor: Actor) -> TaskRecord:
        """End ``task`` and its whole tree, with their events, in one write; then tell
        the hook."""
        now = self._clock.now()
        if state is not TaskState.EXPIRED:
            task = self.mark_expired(task, now=now)  # a task past its window has expired
        below = DESCENDANT_REASONS.get(state, "parent.revoked")
        ended = self._tasks.write_recorded(
            EndTree(task.task_id, state, now, reason, below),
            lambda done: self._end_events(done, task.task_id, actor),
            seal,
        )
        self._tell_ended(ended)
        if not ended or ended[0].task_id != task.task_id:
            current = self._tasks.get_task(task.task_id) or task
            raise Conflict(
                "task.ended", f"task {task.task_id} already ended ({current.state.value})"
            )
        return ended[0]

    def suspend(self, task_id: str, *, actor: Actor, reason: str = "suspended") -> list[TaskRecord]:
        """Suspend an active task and its live subtree (see the module doc), with a
        ``task.suspended`` event each, in one write; then tell ``on_ended`` (grants
        revoked, the bus announces them). Returns the tasks suspended, the task first.

        Refused: ``task.unknown`` (NotFound); ``task.ended`` (it completed, was revoked
        or expired), ``task.already_suspended`` (Conflict); ``task.reason`` (InvalidInput)."""
        reason = _admin_reason(reason)
        task = self.get(task_id)  # a task past its window is recorded expired first
        change = SuspendTree(task.task_id, self._clock.now(), reason, SUSPENDED_WITH_PARENT)
        suspended = self._tasks.write_recorded(
            change,
            lambda done: self._turn_events(done, task.task_id, actor, "task.suspended"),
            seal,
        )
        if not suspended:
            raise self._refusal(task, TaskState.SUSPENDED)
        self._tell_ended(suspended)
        return suspended

    def resume(self, task_id: str, *, actor: Actor, reason: str = "resumed") -> list[TaskRecord]:
        """Resume a suspended task and what its suspension took (see the module doc),
        with a ``task.resumed`` event each, in one write; then tell ``on_resumed`` (the
        bus announces them). Its window is the one it always had. Returns the tasks
        resumed, the task first.

        Refused: ``task.unknown`` (NotFound); ``task.ended`` (it completed, was revoked
        or expired, while suspended too), ``task.not_suspended``,
        ``task.parent_suspended`` (Conflict); ``task.reason`` (InvalidInput)."""
        reason = _admin_reason(reason)
        task = self.get(task_id)  # a task past its window is recorded expired first
        resumed = self._tasks.write_recorded(
            ResumeTree(task.task_id, self._clock.now(), SUSPENDED_WITH_PARENT),
            lambda done: self._turn_events(done, task.task_id, actor, "task.resumed", reason),
            seal,
        )
        if not resumed:
            raise self._refusal(task, TaskState.ACTIVE)
        try:
            self._on_resumed(resumed)
        except Exception:  # the store holds the resume: log, never undo it
            log.exception("the on_resumed hook failed for %d task(s)", len(resumed))
        return resumed

    def _refusal(self, seen: TaskRecord, wanted: TaskState) -> Conflict:
        """Why a suspension (``wanted`` suspended) or a resume (``wanted`` active) of
        the task ``seen`` wrote nothing, as the task is stored now."""
        task_id = seen.task_id
        task = self._tasks.get_task(task_id) or seen  # tasks are never deleted
        state = effective_state(task, self._clock.now())
        if state.ended:
            return Conflict("task.ended", f"task {task_id} has ended ({state.value})")
        if state is wanted:
            already = "already_suspended" if wanted is TaskState.SUSPENDED else "not_suspended"
            return Conflict(f"task.{already}", f"task {task_id} is {state.value}")
        if wanted is TaskState.ACTIVE and task.parent_id is not None:
            return Conflict(
                "task.parent_suspended",
                f"task {task_id} was suspended with its parent {task.parent_id}: resume the parent",
            )
        return Conflict("task.changed", f"task {task_id} changed meanwhile: try again")

    def _turn_events(
        self,
        changed: Sequence[TaskRecord],
        root_id: str,
        actor: Actor,
        kind: str,
        reason: str | None = None,
    ) -> list[dict[str, object]]:
        """The events of the tasks one suspension (``task.suspended``, each with the
        reason it is stored with) or resume (``task.resumed``: ``reason`` for the task,
        ``parent.resumed`` for its descendants) changed."""
        events: list[Event] = []
        for record in changed:
            details: dict[str, object] = {
                "owner": record.owner,
                "calls_used": record.calls_used,
                "expires_at": record.expires_at,
            }
            why = reason or record.end_reason or "suspended"
            if record.task_id != root_id:
                with_key = "suspended_with" if reason is None else "resumed_with"
                details |= {with_key: root_id, "parent_id": record.parent_id}
                why = RESUMED_WITH_PARENT if reason is not None else why
            events.append(
                self._audit.event(
                    kind, actor, record.task_id, Outcome.SUCCESS, reason=why, details=details
                )
            )
        return [event.unsealed() for event in events]

    def _tell_ended(self, ended: Sequence[TaskRecord]) -> None:
        """The ``on_ended`` hook, for tasks already ended (with their events) in the
        store: its failure cannot undo that, so it is logged."""
        if not ended:
            return
        try:
            self._on_ended(ended)
        except Exception:
            log.exception("the on_ended hook failed for %d task(s)", len(ended))

    def _end_events(
        self, ended: Sequence[TaskRecord], root_id: str, actor: Actor
    ) -> list[dict[str, object]]:
        """The events of the tasks one write ended (``task.<state>`` each)."""
        events: list[Event] = []
        for record in ended:
            details: dict[str, object] = {"calls_used": record.calls_used, "owner": record.owner}
            if record.task_id != root_id:
                details |= {"ended_with": root_id, "parent_id": record.parent_id}
            if record.state is TaskState.EXPIRED:
                details["expires_at"] = record.expires_at
            events.append(
                self._audit.event(
                    f"task.{record.state.value}",
                    actor,
                    record.task_id,
                    Outcome.SUCCESS,
                    reason=record.end_reason
                    if record.end_reason and record.end_reason != record.state.value
                    else "ok",
                    details=details,
                )
            )
        return [event.unsealed() for event in events]

    def tree(self, task_id: str, *, limit: int = TREE_LIMIT) -> list[TaskRecord]:
        """``task_id`` and its descendants, parents before children (depth first, oldest
        child first), at most ``limit`` tasks."""
        return tree_of(self._tasks, self.get(task_id), limit=limit, seen=self.mark_expired)

    def list(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        """Tasks, newest first, optionally of one owner and/or in one state, as
        decisions see them: an expiry not yet recorded is recorded first. Listing
        ``active``, ``suspended`` or ``expired`` tasks first records the expiry of every
        task stored in that live state (active and suspended for ``expired``; of
        ``owner``; the newest :data:`MAX_SWEEP` each) past its window, so an expired
        task is never listed as live and is listed as expired."""
        now = self._clock.now()
        sweep = SWEPT.get(state) if state is not None else None
        if sweep:
            for live in sweep:
                for task in self._tasks.list_tasks(owner=owner, state=live, limit=MAX_SWEEP):
                    self.mark_expired(task, now=now)
            return self._tasks.list_tasks(owner=owner, state=state, limit=limit)
        listed = self._tasks.list_tasks(owner=owner, state=state, limit=limit)
        return [self.mark_expired(task, now=now) for task in listed]
