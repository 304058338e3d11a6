"""The audit event schema, version 2.

An event is a JSON object with these members (OCSF-shaped where it fits):

``schema_version``  int, 2 (see below)
``event_id``        unique id (UUID4 hex)
``seq``             position in the chain (1, 2, ...), assigned when sealed
``time``            RFC 3339 UTC with milliseconds
``kind``            what happened: ``workload.registered``, ``attestation``,
                    ``svid.issued``, ``keys.rotated`` ...
``actor``           who did it: ``{"type": "admin"|"workload"|"system", "id": ...}``
``subject``         what it was done to (a SPIFFE ID, a key id ...)
``outcome``         ``success`` | ``failure`` | ``denied``; always given, never defaulted
``reason``          stable reason id; ``ok`` on success
``details``         kind-specific members, declared per kind with their secret ones
                    in :mod:`zerolane.audit.schema`; secrets masked
``prev_hash``       hash of the previous event (64 zeros for the first)
``hash``            SHA-256 over the canonical JSON of every member above but ``hash``

Versions differ in what masking stores, never in the members or the hash, so a chain
holding both verifies as one:

1. ``details`` masked by key names: any member named like a secret (``token``,
   ``authorization``, ``password``, ``dpop`` ...) was masked, which also hid
   ``authorization_details``, ``subject_token_type``, ``dpop_jkt`` and the like.
2. ``details`` masked by the declared secret fields of the event's kind (as OPA masks
   by path), with the JWT/PEM backstop on every string; key names count only in
   free-form members and for kinds that are not declared.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from zerolane.audit.masking import mask, mask_details
from zerolane.types import Outcome

SCHEMA_VERSION = 2
#: the version (4) and variant (RFC 4122) bits of a random UUID
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    id: str

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}


SYSTEM = Actor("system", "zerolane")


def rfc3339(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def uuid4_hex() -> str:
    """``uuid.uuid4().hex``, without building a ``UUID`` object (one per event)."""
    return f"{int.from_bytes(os.urandom(16), 'big') & _UUID4_CLEAR | _UUID4_SET:032x}"


@dataclass(frozen=True, slots=True)
class Event:
    """An event before sealing. ``outcome`` has no default, on purpose."""

    kind: str
    actor: Actor
    subject: str
    outcome: Outcome
    reason: str
    time: float
    details: Mapping[str, object] = field(default_factory=dict)
    event_id: str = field(default_factory=uuid4_hex)

    def unsealed(self) -> dict[str, object]:
        if not isinstance(self.outcome, Outcome):
            raise TypeError("an audit event needs an explicit Outcome")
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "time": rfc3339(self.time),
            "kind": self.kind,
            "actor": self.actor.as_json(),
            "subject": mask(self.subject),  # may echo untrusted input, e.g. a token
            "outcome": self.outcome.value,
            "reason": self.reason,
            "details": mask_details(self.kind, self.details),  # the one copy made
        }
