"""Join-token attestation: a one-time secret an admin handed to one workload.

Only the SHA-256 of a join token is stored; it is consumed atomically on first use,
expires, and a second use is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from zerolane.identity.attestors.base import AttestationError, Attested
from zerolane.store.ports import JoinTokenStore
from zerolane.store.records import ConsumeStatus, JoinToken
from zerolane.types import Clock

PREFIX = "zljt_"
METHOD = "join_token"


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

    def __init__(self, store: JoinTokenStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def attest(self, evidence: object) -> Attested:
        if not isinstance(evidence, str) or not evidence.startswith(PREFIX):
            raise AttestationError("join_token.malformed", "the join token is malformed")
        result = self._store.consume_join_token(token_hash(evidence), self._clock.now())
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
