"""Issuing join tokens to registered workloads (admins only)."""

from __future__ import annotations

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.audit.masking import fingerprint
from zerolane.errors import Forbidden, InvalidInput
from zerolane.identity.attestors.join_token import (
    IssuedJoinToken,
    RecordedJoinTokenStore,
    new_join_token,
)
from zerolane.identity.registry import WorkloadRegistry
from zerolane.store.changes import AddJoinToken
from zerolane.types import Clock, Outcome, WorkloadStatus

MAX_JOIN_TOKEN_TTL = 7 * 86400


class JoinTokens:
    def __init__(
        self,
        store: RecordedJoinTokenStore,
        registry: WorkloadRegistry,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._store = store
        self._registry = registry
        self._audit = audit
        self._clock = clock

    def create(self, spiffe_id: str, *, ttl: int, actor: Actor) -> IssuedJoinToken:
        """Mint a one-time token for a registered, enabled workload."""
        if not 0 < ttl <= MAX_JOIN_TOKEN_TTL:
            raise InvalidInput(
                "join_token.ttl",
                f"ttl must be between 1 second and {MAX_JOIN_TOKEN_TTL // 86400} days",
            )
        workload = self._registry.get(spiffe_id)
        if workload.status is not WorkloadStatus.ENABLED:
            raise Forbidden("workload.disabled", f"{spiffe_id} is disabled")
        issued = new_join_token(workload.spiffe_id, ttl, self._clock)
        created = self._audit.event(
            "join_token.created",
            actor,
            workload.spiffe_id,
            Outcome.SUCCESS,
            details={"token_id": fingerprint(issued.token), "expires_at": issued.record.expires_at},
        )
        # the token and its event in one write: no usable token nobody can account for
        self._store.write_recorded(
            AddJoinToken(issued.record), lambda _: [created.unsealed()], seal
        )
        return issued
