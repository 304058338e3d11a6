"""Join-token attestation: a one-time secret an admin handed to one workload.

Only the SHA-256 of a join token is stored; it is consumed atomically on first use,
expires, and a second use is refused. The consumption and its ``join_token.used``
event are one write (:meth:`~zerolane.store.ports.RecordedWrites.write_recorded`): a
token is never used without a record of its use. When that event cannot be stored the
token stays unused and the attestation fails (``audit.write``); a refused use (unknown,
used, expired) writes nothing here and is audited by the attestation that fails with it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.audit.masking import fingerprint
from zerolane.identity.attestors.base import AttestationError, Attested
from zerolane.store.changes import ConsumeJoinToken
from zerolane.store.ports import JoinTokenStore, RecordedWrites
from zerolane.store.records import ConsumeResult, ConsumeStatus, JoinToken
from zerolane.types import Clock, Outcome

PREFIX = "zljt_"
METHOD = "join_token"
#: the event recorded with a token's consumption, in the same write
USED = "join_token.used"


class RecordedJoinTokenStore(JoinTokenStore, RecordedWrites, Protocol):
    """The join token store, written to with each change's event."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedJoinToken:
    token: str
    record: JoinToken


def new_join_token(spiffe_id: str, ttl: float, clock: Clock) -> IssuedJoinToken:
    """Make a fresh token (256 bits of randomness); the caller stores ``record``."""
    token = PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    return IssuedJoinToken(token, JoinToken(token_hash(token), spiffe_id, now, now + ttl))


_REFUSALS = {
    ConsumeStatus.UNKNOWN: ("join_token.unknown", "the join token is not known"),
    ConsumeStatus.ALREADY_USED: ("join_token.used", "the join token was already used"),
    ConsumeStatus.EXPIRED: ("join_token.expired", "the join token has expired"),
}


class JoinTokenAttestor:
    method = METHOD
    evidence_field = "join_token"

    def __init__(self, store: RecordedJoinTokenStore, clock: Clock, audit: AuditLog) -> None:
        self._store = store
        self._clock = clock
        self._audit = audit

    def attest(self, evidence: object) -> Attested:
        if not isinstance(evidence, str) or not evidence.startswith(PREFIX):
            raise AttestationError("join_token.malformed", "the join token is malformed")
        token_id = fingerprint(evidence)  # as join_token.created recorded it

        def used(result: ConsumeResult) -> Sequence[dict[str, object]]:
            if result.status is not ConsumeStatus.CONSUMED or result.token is None:
                return []  # nothing was written: the failed attestation records the refusal
            spiffe_id = result.token.spiffe_id
            event = self._audit.event(
                USED,
                Actor("workload", spiffe_id),
                spiffe_id,
                Outcome.SUCCESS,
                details={"token_id": token_id, "expires_at": result.token.expires_at},
            )
            return [event.unsealed()]

        # the use and its event in one write: no token consumed without a trace of it
        result = self._store.write_recorded(
            ConsumeJoinToken(token_hash(evidence), self._clock.now()), used, seal
        )
        if result.status is not ConsumeStatus.CONSUMED or result.token is None:
            reason, message = _REFUSALS.get(
                result.status, ("join_token.unknown", "the join token is not known")
            )
            raise AttestationError(reason, message)
        return Attested(
            method=METHOD,
            selectors=(f"join_token:{result.token.token_hash[:16]}",),
            spiffe_id=result.token.spiffe_id,
        )
