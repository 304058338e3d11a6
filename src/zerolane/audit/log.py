"""The audit log: records events into an :class:`AuditStore`, fails closed.

Two modes (``[audit] mode`` in the configuration):

``sync`` (the default)
    ``record`` returns once the event is durably stored, and raises
    :class:`Unavailable` when it cannot be: a decision that cannot be audited is a deny.
``async`` (accepting a risk, for throughput)
    ``decision`` events are only queued: ``record`` returns before they are stored, so
    an allowed request may be forwarded before its event is durable. The store still
    appends them in order; one that fails later is logged and counted
    (:attr:`AuditLog.lost_events`), and nobody is refused for it. A crash loses the
    events still queued. Every other kind of event is recorded as in ``sync``. It needs
    a store that can queue appends (SQLite); over any other store the mode is ``sync``.

How a decider commits an allow with its event in each mode (the spend and the event in
one write, or the event queued after the spend) is chosen once, when the deployment is
built: :mod:`zerolane.audit.decision_log`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from zerolane.audit.chain import Break, seal, verify
from zerolane.audit.events import Actor, Event
from zerolane.errors import InvalidInput, Unavailable, ZerolaneError
from zerolane.store.ports import AuditStore, Sealer
from zerolane.store.records import AuditRecord
from zerolane.types import Clock, Outcome

AuditMode = Literal["sync", "async"]
AUDIT_MODES: tuple[AuditMode, ...] = ("sync", "async")
#: the kinds the async mode queues: the request path's own events, nothing else
ASYNC_KINDS = frozenset({"decision"})


@runtime_checkable
class QueuedAuditStore(Protocol):
    """A store that can take an append without waiting for it (the async mode)."""

    def append_events_later(self, events: Sequence[dict[str, object]], seal: Sealer) -> None:
        """Queue ``events`` to be appended in order; failures are counted, not raised."""

    @property
    def lost_audit_events(self) -> int:
        """How many queued events could not be stored."""


def parse_audit_mode(value: str) -> AuditMode:
    for mode in AUDIT_MODES:
        if value == mode:
            return mode
    raise InvalidInput("audit.mode", f"audit mode is 'sync' or 'async', not {value!r}")


class AuditLog:
    """Append-only, hash-chained event log over a store port.

    ``record`` raises :class:`Unavailable` when the event cannot be stored; callers
    treat that as a refusal (a decision that cannot be audited is a deny). In the
    ``async`` mode a ``decision`` event is queued instead and ``record`` returns None.
    """

    def __init__(self, store: AuditStore, clock: Clock, *, mode: str = "sync") -> None:
        self._store = store
        self._clock = clock
        requested = parse_audit_mode(mode)
        queued = store if isinstance(store, QueuedAuditStore) else None
        self._queue = queued if requested == "async" else None
        self._counter = queued

    @property
    def mode(self) -> AuditMode:
        """The mode in effect (``sync`` when the store cannot queue)."""
        return "async" if self._queue is not None else "sync"

    @property
    def lost_events(self) -> int:
        """Events queued in the async mode that the store failed to append."""
        return self._counter.lost_audit_events if self._counter is not None else 0

    def record(
        self,
        kind: str,
        *,
        actor: Actor,
        subject: str,
        outcome: Outcome,
        reason: str = "ok",
        details: Mapping[str, object] | None = None,
    ) -> AuditRecord | None:
        """Record one event; its stored record, or None when it was only queued."""
        event = self.event(kind, actor, subject, outcome, reason, details)
        if self._queue is not None and kind in ASYNC_KINDS:
            try:
                self._queue.append_events_later([event.unsealed()], seal)
            except ZerolaneError:
                raise
            except Exception as err:  # cannot even queue it: a refusal, as in sync mode
                raise Unavailable("audit.write", "the audit event could not be queued") from err
            return None
        return self.record_all([event])[0]

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
