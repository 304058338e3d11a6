"""The audit log: records events into an :class:`AuditStore`, fails closed."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence

from zerolane.audit.chain import Break, seal, verify
from zerolane.audit.events import Actor, Event
from zerolane.errors import Unavailable, ZerolaneError
from zerolane.store.ports import AuditStore
from zerolane.store.records import AuditRecord
from zerolane.types import Clock, Outcome


class AuditLog:
    """Append-only, hash-chained event log over a store port.

    ``record`` raises :class:`Unavailable` when the event cannot be stored; callers
    treat that as a refusal (a decision that cannot be audited is a deny).
    """

    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def record(
        self,
        kind: str,
        *,
        actor: Actor,
        subject: str,
        outcome: Outcome,
        reason: str = "ok",
        details: Mapping[str, object] | None = None,
    ) -> AuditRecord:
        return self.record_all([self.event(kind, actor, subject, outcome, reason, details)])[0]

    def event(
        self,
        kind: str,
        actor: Actor,
        subject: str,
        outcome: Outcome,
        reason: str = "ok",
        details: Mapping[str, object] | None = None,
    ) -> Event:
        """Build an event stamped with the log's clock (to pass to :meth:`record_all`)."""
        return Event(
            kind=kind,
            actor=actor,
            subject=subject,
            outcome=outcome,
            reason=reason,
            time=self._clock.now(),
            details=details or {},
        )

    def record_all(self, events: Sequence[Event]) -> list[AuditRecord]:
        """Record ``events`` in one durable write: all of them, or none and an error."""
        try:
            return self._store.append_events([e.unsealed() for e in events], seal)
        except ZerolaneError:
            raise
        except Exception as err:  # any sink failure is a refusal, never a silent pass
            raise Unavailable("audit.write", "the audit event could not be recorded") from err

    def iter_records(self, after_seq: int = 0, page: int = 1000) -> Iterator[AuditRecord]:
        while True:
            batch = self._store.read_events(after_seq, page)
            yield from batch
            if len(batch) < page:
                return
            after_seq = batch[-1].seq

    def tail(self, count: int) -> list[AuditRecord]:
        last = self._store.last_event()
        if last is None:
            return []
        return self._store.read_events(max(0, last.seq - count), count)

    def verify(self) -> tuple[int, Break | None]:
        return verify(self.iter_records())


def event_json(record: AuditRecord) -> dict[str, object]:
    """The full event as JSON (the hashed body plus its hash)."""
    body: dict[str, object] = json.loads(record.body)
    body["hash"] = record.hash
    return body
