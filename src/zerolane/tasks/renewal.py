"""A new token for a live task: how a standard MCP client's refresh token is honoured.

The OAuth token endpoint (``grant_type=refresh_token``) hands a client a fresh access
token for the task it consented to, never a new task and never more: the same task, the
same token id (``jti``, which the task record names, so every decision still finds the
token is the task's), the same owner, audience, scope and binding (the DPoP key the
refresh proof was signed with must be the task's, RFC 9449 section 5; a bearer client's
token stays unbound and short-lived), and a new window inside the task's. A task that
ended, or whose binding is not the caller's, gets nothing.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Forbidden
from zerolane.identity.keyring import Keyring
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import WorkloadCaller
from zerolane.tasks.lifecycle import TaskLifecycle
from zerolane.tasks.views import effective_state
from zerolane.tokens.rfc8693 import Actor as ChainActor
from zerolane.tokens.rfc8693 import act_claim
from zerolane.tokens.rfc9068 import TaskTokenClaims, issue_task_token
from zerolane.types import Clock, Outcome, TaskState


@dataclass(frozen=True, slots=True)
class RenewedToken:
    task: TaskRecord
    token: str
    expires_at: int


class TokenRenewal:
    def __init__(
        self,
        *,
        trust_domain: str,
        keyring: Keyring,
        lifecycle: TaskLifecycle,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self.issuer = f"spiffe://{trust_domain}"
        self._keyring = keyring
        self._lifecycle = lifecycle
        self._audit = audit
        self._clock = clock

    def renew(self, task_id: str, caller: WorkloadCaller) -> RenewedToken:
        """A new token for ``task_id``, for ``caller`` (its owner, by the same binding);
        :class:`Forbidden` (``task.<state>``, ``token.task_mismatch``) otherwise."""
        task = self._lifecycle.get(task_id)  # one seen past its window is recorded expired
        now = self._clock.now()
        state = effective_state(task, now)
        if state is not TaskState.ACTIVE:
            raise Forbidden(f"task.{state.value}", f"task {task.task_id} is {state.value}")
        if (
            task.owner != caller.workload.spiffe_id
            or task.parent_id is not None
            or not hmac.compare_digest(task.jkt.encode(), caller.binding.encode())
        ):
            raise Forbidden("token.task_mismatch", "the token was not issued for this task")
        issued_at = int(now)
        expires_at = int(task.expires_at)
        if caller.bearer_ttl is not None:
            expires_at = min(expires_at, issued_at + caller.bearer_ttl)
        user = (
            [ChainActor(task.user_subject, task.user_issuer)]
            if task.user_subject is not None and task.user_issuer is not None
            else []
        )
        claims = TaskTokenClaims(
            issuer=self.issuer,
            subject=task.owner,
            audience=task.audience,
            issued_at=issued_at,
            not_before=issued_at,
            expires_at=expires_at,
            jti=task.token_jti,  # the task's token, renewed: decisions match it to the task
            jkt=caller.jkt,
            task_id=task.task_id,
            authorization_details=tuple(json.loads(task.authorization_details)),
            act=act_claim([ChainActor(task.owner), *user]) if user else None,
            x5t=caller.x5t,
            bearer=caller.bearer_ttl is not None,
        )
        token = issue_task_token(self._keyring.sign, claims)
        self._audit.record(
            "task.token_renewed",
            actor=Actor("workload", task.owner),
            subject=task.task_id,
            outcome=Outcome.SUCCESS,
            reason="ok",
            details={"token_id": task.token_jti, "expires_at": expires_at, "jkt": task.jkt},
        )
        return RenewedToken(task, token, expires_at)
