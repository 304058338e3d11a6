"""Request-time decisions: every request of a task is decided when it is made.

A decision checks, in order: the task token and its DPoP proof (who, bound to which
key, for this exact method and URL, once), the task's state, window and budget (in
code, so no policy edit can switch them off), then the Cedar policies over the task's
scope and the request's context. An allow spends one call atomically (compare-and-set,
so two concurrent requests can't both spend the last call or race a sensitive read
past the egress rule); every decision is an audit event, and one that cannot be
recorded is a deny.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Unauthenticated, Unavailable, ZerolaneError
from zerolane.policy.context import (
    McpFacts,
    RequestFacts,
    TaskFacts,
    is_internal,
    request_policy_request,
)
from zerolane.policy.engine import PolicyEngine
from zerolane.store.ports import TaskStore
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import Authenticator, TaskHolder
from zerolane.tasks.lifecycle import effective_state
from zerolane.tasks.scope import Scope
from zerolane.types import Clock, Outcome, Sensitivity, TaskState

#: A compare-and-set loses only when another request spent a call in between; retries
#: are bounded so a storm of concurrent requests still ends in a decision.
MAX_ATTEMPTS = 32
_BAD_PATH = ("..", "%", "//", "\\", ";")


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


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    allowed: bool
    reasons: tuple[str, ...]
    policies: tuple[str, ...]
    task_id: str | None
    #: what an enforcement point should answer on deny: 401 (credential), 403, 503
    status: int
    #: the verified task token's ``exp`` (what a credential minted for the call may last)
    expires_at: float | None = None
    #: the verified workload (SPIFFE ID) that holds the token, when it was verified
    subject: str | None = None

    def failed_closed(self, reason: str) -> Decision:
        """This decision turned into a 503 deny (an audit event could not be recorded)."""
        return dataclasses.replace(self, allowed=False, reasons=(reason,), status=503)


class _Deny(Exception):
    def __init__(self, reasons: Sequence[str], policies: Sequence[str] = ()) -> None:
        super().__init__(reasons[0])
        self.reasons = tuple(reasons)
        self.policies = tuple(policies)


def _map(request: DecideInput, default_sensitivity: Sensitivity) -> RequestFacts:
    """Turn a request into (action, resource, destination, sensitivity)."""
    parts = urlsplit(request.url)
    action = request.action or f"http:{request.method.upper()}"
    destination = request.destination or (parts.hostname or "")
    resource = request.resource
    if resource is None:
        path = parts.path
        if any(bad in path for bad in _BAD_PATH):
            raise _Deny(["request.path"])
        resource = path.strip("/")
    if not resource or not destination:
        raise _Deny(["request.unmapped"])
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
        destination_internal=False,
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
        on_behalf_of=task.on_behalf_of,
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
    ) -> None:
        self._auth = authenticator
        self._tasks = tasks
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self._internal = tuple(internal_destinations)
        self._default_sensitivity = default_sensitivity

    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        decision_id = uuid.uuid4().hex
        holder: TaskHolder | None = None
        facts: RequestFacts | None = None
        status = 403
        try:
            holder = self._auth.task_holder(
                token, proof, method=request.method, url=request.url, audience=request.audience
            )
            mapped = _map(request, self._default_sensitivity)
            facts = RequestFacts(
                action=mapped.action,
                resource=mapped.resource,
                destination=mapped.destination,
                sensitivity=mapped.sensitivity,
                method=mapped.method,
                destination_internal=is_internal(mapped.destination, self._internal),
                mcp=request.mcp,
            )
            policies = self._decide(holder, facts)
            reasons: tuple[str, ...] = ()
            allowed = True
        except _Deny as deny:
            allowed, reasons, policies = False, deny.reasons, deny.policies
        except Unauthenticated as err:
            allowed, reasons, policies, status = False, (err.reason,), (), 401
        except ZerolaneError as err:
            allowed, reasons, policies = False, (err.reason,), ()
            status = err.status if err.status >= 400 else 403
        decision = Decision(
            decision_id=decision_id,
            allowed=allowed,
            reasons=reasons,
            policies=tuple(policies),
            task_id=holder.claims.task_id if holder else None,
            status=200 if allowed else status,
            expires_at=float(holder.claims.expires_at) if holder else None,
            subject=holder.claims.subject if holder else None,
        )
        return self._record(decision, holder, facts, request)

    def _decide(self, holder: TaskHolder, facts: RequestFacts) -> tuple[str, ...]:
        claims = holder.claims
        for _ in range(MAX_ATTEMPTS):
            now = self._clock.now()
            task = self._tasks.get_task(claims.task_id)
            if task is None:
                raise _Deny(["task.unknown"])
            if task.owner != claims.subject or task.token_jti != claims.jti:
                raise _Deny(["token.task_mismatch"])
            state = effective_state(task, now)
            if state is not TaskState.ACTIVE:
                raise _Deny([f"task.{state.value}"])
            if task.calls_used >= task.max_calls:
                raise _Deny(["task.budget_exhausted"])
            request = request_policy_request(task.owner, task_facts(task, state), facts, now)
            engine = self._engine()
            try:
                result = engine.decide(request)
            except Exception:  # fail closed: an engine that raises denies, never allows
                raise _Deny(["policy.error"]) from None
            if result.errors:
                raise _Deny(["policy.error"], result.policy_ids)
            if not result.allowed:
                raise _Deny(list(result.policy_ids) or ["policy.no_permit"], result.policy_ids)
            spent = self._tasks.spend_call(
                task.task_id,
                expected_calls_used=task.calls_used,
                touched=int(facts.sensitivity),
                now=now,
            )
            if spent is not None:
                return result.policy_ids
        raise _Deny(["task.contention"])

    def _record(
        self,
        decision: Decision,
        holder: TaskHolder | None,
        facts: RequestFacts | None,
        request: DecideInput,
    ) -> Decision:
        parts = urlsplit(request.url)
        details: dict[str, object] = dict(request.details or {})
        details |= {
            "decision_id": decision.decision_id,
            "decision": "allow" if decision.allowed else "deny",
            "reasons": list(decision.reasons),
            "policies": list(decision.policies),
            "method": request.method.upper(),
            "url": f"{parts.scheme}://{parts.netloc}{parts.path}",  # query never logged
        }
        if facts is not None:
            details.update(
                action=facts.action,
                resource=facts.resource,
                destination=facts.destination,
                destination_internal=facts.destination_internal,
                sensitivity=facts.sensitivity.label,
            )
        actor = Actor("workload", holder.claims.subject if holder else "unauthenticated")
        try:
            self._audit.record(
                "decision",
                actor=actor,
                subject=decision.task_id or "unknown",
                outcome=Outcome.SUCCESS if decision.allowed else Outcome.DENIED,
                reason=decision.reasons[0] if decision.reasons else "ok",
                details=details,
            )
        except Unavailable:
            return decision.failed_closed("audit.write")
        return decision
