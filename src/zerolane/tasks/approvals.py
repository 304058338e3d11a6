"""Human approval (step-up): a policy asks, an admin approves, the request runs once.

A ``forbid`` annotated ``@approval("required")`` (:mod:`zerolane.policy.loader`) that
alone denies a request which the other policies allow makes the decision core answer
"approval required" (:class:`~zerolane.tasks.decision_core.Deny` with the policy
version that asked). The decider then passes that deny through :meth:`Approvals.gate`:

- an approval of exactly this request (same task, action, resource, destination,
  argument digest and policy version) that an admin approved and that has not expired
  is spent compare-and-set (``approval.used`` event) and the request is decided again
  as approved: allowed once. A duplicate racing for the same approval loses the
  compare-and-set and is denied ``approval.used``;
- otherwise the request is asked for: a pending approval is stored
  (``approval.requested`` event) or, when the same request is already pending, that one
  is reused (no flood); the request is denied ``approval.required`` with the approval's
  id. A request whose approval was denied stays denied ``approval.denied`` until that
  approval expires. A task holds at most ``max_pending`` pending approvals
  (``approval.too_many``).

The arguments are bound by their SHA-256 (:func:`body_digest` of an HTTP body,
:func:`arguments_digest` of an MCP ``tools/call``'s arguments), computed by the
enforcement point (``DecideInput.digest``): changed arguments are another request and
need another approval. An enforcement point that sends no digest cannot ask for an
approval: such a request is denied ``approval.unbound`` (fail closed: an approval must
never cover arguments nobody saw).

An approver names themselves; they may not be the task's workload, the verified person
it acts for nor its ``on_behalf_of`` (``approval.self``), whichever admin credential
they use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.decision import DecideInput
from zerolane.decision import arguments_digest as arguments_digest  # the contract's
from zerolane.decision import body_digest as body_digest
from zerolane.errors import Conflict, Forbidden, InvalidInput, NotFound
from zerolane.policy.context import RequestFacts
from zerolane.store.changes import DecideApproval, RequestApproval, UseApproval
from zerolane.store.ports import ApprovalStore, RecordedWrites, TaskStore
from zerolane.store.records import ApprovalRecord, ApprovalStatus
from zerolane.tasks.auth import TaskHolder
from zerolane.tasks.decision_core import Deny
from zerolane.types import Clock, Outcome

#: how long an approval may wait and then be used, by default (``[approvals] ttl``)
DEFAULT_TTL = 900.0
#: pending approvals one task may hold at once, by default
DEFAULT_MAX_PENDING = 16
MAX_APPROVER = 200
MAX_REASON = 256


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    ttl: float = DEFAULT_TTL
    max_pending: int = DEFAULT_MAX_PENDING


class ApprovalStores(ApprovalStore, TaskStore, RecordedWrites, Protocol):
    """What approvals are kept in (every backend's ``Stores`` is one)."""


def _checked(value: str, what: str, limit: int) -> str:
    if not value.strip() or len(value) > limit or not value.isprintable():
        raise InvalidInput(f"approval.{what}", f"the {what} is 1..{limit} printable characters")
    return value


class Approvals:
    """Asks for, decides and spends approvals (see the module doc)."""

    def __init__(
        self,
        stores: ApprovalStores,
        audit: AuditLog,
        clock: Clock,
        settings: ApprovalSettings | None = None,
    ) -> None:
        self._stores = stores
        self._audit = audit
        self._clock = clock
        self._settings = settings or ApprovalSettings()

    # the decider's side
    def gate(
        self, holder: TaskHolder, facts: RequestFacts, request: DecideInput, deny: Deny
    ) -> str | Deny:
        """Pass an "approval required" deny (``deny.approval``: the policy version that
        asked) through: the policy version of the approval just spent for this request
        (decide it again as approved), or the deny to answer with."""
        if request.digest is None or deny.approval is None:
            return Deny(("approval.unbound",), deny.policies)
        now = self._clock.now()
        asked = ApprovalRecord(
            approval_id=uuid.uuid4().hex,
            task_id=holder.claims.task_id,
            action=facts.action,
            resource=facts.resource,
            destination=facts.destination,
            digest=request.digest,
            policy_version=deny.approval,
            policies=deny.policies,
            requester=holder.claims.subject,
            status=ApprovalStatus.PENDING,
            created_at=now,
            expires_at=now + self._settings.ttl,
        )
        approved = self._stores.find_approved(asked, now)
        if approved is not None:
            used = self._stores.write_recorded(
                UseApproval(approved.approval_id, now),
                lambda done: [self._event("approval.used", done)] if done else [],
                seal,
            )
            if used is None:  # a duplicate of this request spent it first
                return Deny(("approval.used",), deny.policies, approval_id=approved.approval_id)
            return used.policy_version
        try:
            record = self._stores.write_recorded(
                RequestApproval(asked, self._settings.max_pending),
                lambda done: [self._event("approval.requested", done)] if done is asked else [],
                seal,
            )
        except Conflict as err:  # approval.too_many
            return Deny((err.reason,), deny.policies)
        reason = (
            "approval.denied" if record.status is ApprovalStatus.DENIED else "approval.required"
        )
        return Deny((reason,), deny.policies, approval_id=record.approval_id)

    # the admin's side
    def get(self, approval_id: str) -> ApprovalRecord:
        """The approval; ``approval.unknown`` (NotFound) when there is none."""
        record = self._stores.get_approval(approval_id)
        if record is None:
            raise NotFound("approval.unknown", f"no approval {approval_id}")
        return record

    def list(
        self, *, task_id: str | None = None, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[ApprovalRecord]:
        """Approvals, newest first, by the status they read as now (an expired one is
        ``expired``, never ``pending``)."""
        now = self._clock.now()
        stored = None if status in (None, ApprovalStatus.EXPIRED) else status
        found = self._stores.list_approvals(task_id=task_id, status=stored, limit=limit)
        return [a for a in found if status is None or a.status_at(now) is status]

    def status(self, approval: ApprovalRecord) -> ApprovalStatus:
        """What ``approval`` reads as now."""
        return approval.status_at(self._clock.now())

    def approve(
        self, approval_id: str, *, approver: str, actor: Actor, reason: str = "approved"
    ) -> ApprovalRecord:
        """Approve a pending approval (``approval.granted`` event). Refused:
        ``approval.unknown`` (NotFound), ``approval.self`` (Forbidden: the approver is
        the task's workload or the person it acts for), ``approval.expired`` and
        ``approval.decided`` (Conflict), ``approval.approver`` / ``approval.reason``
        (InvalidInput)."""
        granted = ApprovalStatus.APPROVED
        return self._decide(approval_id, granted, "approval.granted", approver, actor, reason)

    def deny(
        self, approval_id: str, *, approver: str, actor: Actor, reason: str = "denied"
    ) -> ApprovalRecord:
        """Deny a pending approval (``approval.denied`` event); refused as
        :meth:`approve`."""
        denied = ApprovalStatus.DENIED
        return self._decide(approval_id, denied, "approval.denied", approver, actor, reason)

    def _decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        kind: str,
        approver: str,
        actor: Actor,
        reason: str,
    ) -> ApprovalRecord:
        approver = _checked(approver, "approver", MAX_APPROVER)
        reason = _checked(reason, "reason", MAX_REASON)
        record = self.get(approval_id)
        task = self._stores.get_task(record.task_id)
        parties = {record.requester}
        if task is not None:
            parties |= {p for p in (task.owner, task.on_behalf_of, task.user_subject) if p}
        if approver in parties or actor.id in parties:
            raise Forbidden(
                "approval.self", "an approver cannot approve a request of a task they own or opened"
            )
        now = self._clock.now()
        done = self._stores.write_recorded(
            DecideApproval(approval_id, status, approver, reason, now),
            lambda decided: [self._event(kind, decided, actor)] if decided else [],
            seal,
        )
        if done is None:
            raise self._not_pending(self.get(approval_id), now)
        return done

    @staticmethod
    def _not_pending(record: ApprovalRecord, now: float) -> Conflict:
        state = record.status_at(now)
        if state is ApprovalStatus.EXPIRED:
            return Conflict("approval.expired", f"approval {record.approval_id} has expired")
        return Conflict(
            "approval.decided", f"approval {record.approval_id} is {state.value}, not pending"
        )

    def _event(
        self, kind: str, record: ApprovalRecord, actor: Actor | None = None
    ) -> dict[str, object]:
        details: dict[str, object] = {
            "approval_id": record.approval_id,
            "action": record.action,
            "resource": record.resource,
            "destination": record.destination,
            "digest": record.digest,
            "policy_version": record.policy_version,
            "policies": list(record.policies),
            "status": record.status.value,
            "expires_at": record.expires_at,
        }
        if record.approver is not None:
            details["approver"] = record.approver
        who = actor or Actor("workload", record.requester)
        event = self._audit.event(
            kind,
            who,
            record.task_id,
            Outcome.SUCCESS,
            reason=record.reason or kind,
            details=details,
        )
        return event.unsealed()
