"""Opening, completing and revoking tasks: zero standing privilege.

A workload holds nothing until it opens a task from a playbook with a declared intent;
the task token it then gets is valid only for the task window, bound to its key, and
ends (everywhere, at the next decision) when the task is completed or revoked.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from zerolane.identity.keyring import Keyring
from zerolane.policy.context import OpenFacts, open_policy_request
from zerolane.policy.engine import PolicyEngine
from zerolane.store.ports import TaskStore
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import WorkloadCaller
from zerolane.tasks.playbook_registry import PlaybookRegistry
from zerolane.tasks.playbooks import opener_matches
from zerolane.tasks.scope import Scope, requested_scope
from zerolane.tokens.rfc9068 import TaskTokenClaims, issue_task_token
from zerolane.types import Clock, Outcome, TaskState

MAX_INTENT = 2000
DEFAULT_TTL = 300


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


def effective_state(task: TaskRecord, now: float) -> TaskState:
    """The state a decision sees: an active task past its window is expired."""
    if task.state is TaskState.ACTIVE and now >= task.expires_at:
        return TaskState.EXPIRED
    return task.state


class TaskLifecycle:
    def __init__(
        self,
        *,
        trust_domain: str,
        keyring: Keyring,
        tasks: TaskStore,
        playbooks: PlaybookRegistry,
        engine: Callable[[], PolicyEngine],
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self.issuer = f"spiffe://{trust_domain}"
        self._keyring = keyring
        self._tasks = tasks
        self._playbooks = playbooks
        self._engine = engine
        self._audit = audit
        self._clock = clock

    def open(self, caller: WorkloadCaller, request: OpenRequest) -> OpenedTask:
        """Grant a task when the request is within the playbook and policy permits."""
        owner = caller.workload.spiffe_id
        try:
            return self._open(caller, request)
        except (InvalidInput, Forbidden, NotFound) as err:
            self._audit.record(
                "task.open",
                actor=Actor("workload", owner),
                subject=request.playbook[:200],
                outcome=Outcome.DENIED,
                reason=err.reason,
                details={"intent": request.intent[:MAX_INTENT], "playbook": request.playbook},
            )
            raise

    def _open(self, caller: WorkloadCaller, request: OpenRequest) -> OpenedTask:
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
        return self._grant(caller, request, scope, ttl, max_calls, now)

    def _grant(
        self,
        caller: WorkloadCaller,
        request: OpenRequest,
        scope: Scope,
        ttl: int,
        calls: int,
        now: float,
    ) -> OpenedTask:
        record = self._playbooks.record(request.playbook)
        audience = tuple(dict.fromkeys([self.issuer, *(request.audience or ())]))
        task_id = "tsk_" + secrets.token_urlsafe(16)
        jti = uuid.uuid4().hex
        issued_at = int(now)
        expires_at = issued_at + ttl
        claims = TaskTokenClaims(
            issuer=self.issuer,
            subject=caller.workload.spiffe_id,
            audience=audience,
            issued_at=issued_at,
            not_before=issued_at,
            expires_at=expires_at,
            jti=jti,
            jkt=caller.proof.jkt,
            task_id=task_id,
            authorization_details=tuple(scope.authorization_details()),
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
            jkt=caller.proof.jkt,
            audience=audience,
            state=TaskState.ACTIVE,
            created_at=now,
            expires_at=float(expires_at),
            max_calls=calls,
            calls_used=0,
            touched=-1,
            token_jti=jti,
            on_behalf_of=request.on_behalf_of,
        )
        self._tasks.add_task(task)
        try:
            self._audit.record(
                "task.opened",
                actor=Actor("workload", task.owner),
                subject=task_id,
                outcome=Outcome.SUCCESS,
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
                },
            )
        except Unavailable:
            self._tasks.end_task(task_id, TaskState.REVOKED, now, "audit.write")
            raise
        return OpenedTask(task, token)

    def get(self, task_id: str) -> TaskRecord:
        task = self._tasks.get_task(task_id)
        if task is None:
            raise NotFound("task.unknown", f"no task {task_id}")
        return task

    def complete(self, task_id: str, holder_sub: str, holder_task: str) -> TaskRecord:
        """The owner ends its task; its token is refused from the next decision on."""
        if holder_task != task_id:
            raise Forbidden("task.not_yours", "this token belongs to another task")
        task = self.get(task_id)
        if task.owner != holder_sub:
            raise Forbidden("task.not_yours", "only the task's owner may complete it")
        return self._end(task, TaskState.COMPLETED, "completed", Actor("workload", holder_sub))

    def revoke(self, task_id: str, *, actor: Actor, reason: str = "revoked") -> TaskRecord:
        return self._end(self.get(task_id), TaskState.REVOKED, reason, actor)

    def _end(self, task: TaskRecord, state: TaskState, reason: str, actor: Actor) -> TaskRecord:
        now = self._clock.now()
        ended = self._tasks.end_task(task.task_id, state, now, reason)
        if ended is None:
            current = self.get(task.task_id)
            raise Conflict(
                "task.ended", f"task {task.task_id} already ended ({current.state.value})"
            )
        self._audit.record(
            f"task.{state.value}",
            actor=actor,
            subject=task.task_id,
            outcome=Outcome.SUCCESS,
            reason=reason if reason != state.value else "ok",
            details={"calls_used": ended.calls_used, "owner": ended.owner},
        )
        return ended

    def list(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        return self._tasks.list_tasks(owner=owner, state=state, limit=limit)
