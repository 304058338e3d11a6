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

Each approval keeps a masked preview of its request for the approver
(:mod:`zerolane.tasks.approval_preview`), built when it is asked for. Approvals are
deleted ``retention`` seconds after they expire (every one is settled by then; the
audit log keeps their history): on a write at most every :data:`PRUNE_EVERY` seconds,
with an ``approval.pruned`` event.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
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
from zerolane.store.changes import DecideApproval, PruneApprovals, RequestApproval, UseApproval
from zerolane.store.ports import ApprovalStore, RecordedWrites, TaskStore
from zerolane.store.records import ApprovalRecord, ApprovalStatus
from zerolane.tasks.approval_preview import call_preview, stored_preview, url_preview
from zerolane.tasks.auth import TaskHolder
from zerolane.tasks.decision_core import Deny
from zerolane.types import Clock, Outcome

#: how long an approval may wait and then be used, by default (``[approvals] ttl``)
DEFAULT_TTL = 900.0
#: pending approvals one task may hold at once, by default
DEFAULT_MAX_PENDING = 16
#: how long an approval is kept after it expired, by default (``[approvals] retention``)
DEFAULT_RETENTION = 7 * 86400.0
#: seconds between two prunes of one process (each on a write)
PRUNE_EVERY = 60.0
#: approvals deleted by one prune at most (the next write prunes the rest)
PRUNE_BATCH = 1000
MAX_APPROVER = 200
MAX_REASON = 256

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    ttl: float = DEFAULT_TTL
    max_pending: int = DEFAULT_MAX_PENDING
    retention: float = DEFAULT_RETENTION


class ApprovalStores(ApprovalStore, TaskStore, RecordedWrites, Protocol):
    """What approvals are kept in (every backend's ``Stores`` is one)."""


def _person(name: str) -> str:
    """A name as compared for ``approval.self``: case and outer spaces do not count."""
    return name.strip().casefold()


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
        self._prune_lock = threading.Lock()
        self._next_prune = 0.0

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
        asked = dataclasses.replace(asked, preview=_preview(request, facts))
        self.prune_due()
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
        # compared as people write them: "Alice@Example.org " is alice@example.org
        named = {_person(p) for p in parties}
        if _person(approver) in named or _person(actor.id) in named:
            raise Forbidden(
                "approval.self", "an approver cannot approve a request of a task they own or opened"
            )
        now = self._clock.now()
        self.prune_due()
        done = self._stores.write_recorded(
            DecideApproval(approval_id, status, approver, reason, now),
            lambda decided: [self._event(kind, decided, actor)] if decided else [],
            seal,
        )
        if done is None:
            raise self._not_pending(self.get(approval_id), now)
        return done

    # retention
    def prune_due(self) -> int:
        """:meth:`prune` when this process has not pruned for :data:`PRUNE_EVERY`
        seconds; never raises (a failed prune is logged and tried again later)."""
        now = self._clock.now()
        with self._prune_lock:
            if now < self._next_prune:
                return 0
            self._next_prune = now + PRUNE_EVERY
        try:
            return self.prune()
        except Exception:
            log.exception("pruning old approvals failed; trying again later")
            return 0

    def prune(self) -> int:
        """Delete up to :data:`PRUNE_BATCH` approvals that expired more than
        ``retention`` seconds ago (an ``approval.pruned`` event says how many);
        the number deleted."""
        now = self._clock.now()
        before = now - self._settings.retention

        def pruned(count: int) -> list[dict[str, object]]:
            if not count:
                return []
            details: dict[str, object] = {
                "count": count,
                "expired_before": before,
                "retention": self._settings.retention,
            }
            event = self._audit.event(
                "approval.pruned",
                Actor("system", "approvals"),
                "approvals",
                Outcome.SUCCESS,
                reason="approval.retention",
                details=details,
            )
            return [event.unsealed()]

        return self._stores.write_recorded(PruneApprovals(before, PRUNE_BATCH), pruned, seal)

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


def _preview(request: DecideInput, facts: RequestFacts) -> str | None:
    """The masked preview an approval keeps of ``request`` (see
    :mod:`zerolane.tasks.approval_preview`); None when it could not be built (logged:
    the approval is still asked for, bound by its digest)."""
    try:
        if request.preview is not None:
            shown = dict(request.preview())
        elif facts.mcp is not None:
            details = request.details or {}
            shown = call_preview("tool", facts.mcp.tool, details.get("arguments"))
            shown |= {"mcp_method": facts.mcp.method, "server": facts.mcp.server}
            if facts.mcp.uri:
                shown["uri"] = facts.mcp.uri[:1024]
        else:
            shown = url_preview(request.method, request.url)
        return stored_preview(shown)
    except Exception as err:  # its type only: a message could quote the request's data
        log.warning("the preview of an approval could not be built: %s", type(err).__name__)
        return None
