"""Where a decider stores its decisions: an allow's spend with its audit event, and a
refusal's event. The decider hands over the event's fields; the audit layer builds,
stamps and seals the event (:class:`~zerolane.audit.log.AuditLog`), and the store
commits it (:class:`~zerolane.store.ports.DecisionStore`).

Which implementation a decider gets is decided once, when the deployment is built, by
the audit mode (:func:`decision_log`):

:class:`DurableDecisions` (``sync``, the default)
    An allow's spend (its compare-and-set), its spent proof and its event are one write
    (:meth:`~zerolane.store.ports.DecisionStore.commit_decision`): the answer waits for
    it, and an event that cannot be stored undoes the spend (a deny).
:class:`QueuedDecisionEvents` (``async``, accepting a risk, for throughput)
    An allow's spend and its proof are one write the answer waits for; its event is
    queued once the spend is durable (the log's async mode: never waited for, a failure
    counted and logged). A refusal's event is queued too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypedDict

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.store.ports import DecisionStore, PendingWrite
from zerolane.store.records import Spend, TaskRecord
from zerolane.types import Outcome


class DecisionEvent(TypedDict):
    """The fields of a decision's audit event (those of :meth:`AuditLog.record`)."""

    kind: str
    actor: Actor
    subject: str
    outcome: Outcome
    reason: str
    details: Mapping[str, object]


class DecisionLog(Protocol):
    """How a decider stores its decisions (see the module doc)."""

    def commit(self, spend: Spend, event: DecisionEvent) -> PendingWrite[TaskRecord | None]:
        """Hand over an allow's write: ``spend`` and, when it spends, ``event``. Never
        waits for the store; the pending write's result is the store's
        (:meth:`~zerolane.store.ports.DecisionStore.commit_decision`)."""
        ...

    def record(self, event: DecisionEvent) -> None:
        """Record a refusal's event; raises :class:`~zerolane.errors.Unavailable` when
        it cannot be (the decision fails closed)."""
        ...


class DurableDecisions:
    """The ``sync`` audit mode: an allow's spend and its event are one durable write."""

    def __init__(self, store: DecisionStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    def commit(self, spend: Spend, event: DecisionEvent) -> PendingWrite[TaskRecord | None]:
        unsealed = self._audit.event(**event).unsealed()
        return self._store.commit_decision(spend, (unsealed,), seal)

    def record(self, event: DecisionEvent) -> None:
        self._audit.record(**event)


class QueuedDecisionEvents:
    """The ``async`` audit mode: an allow's spend is durable before the answer, its event
    is queued once it is (``audit`` is a log in the ``async`` mode)."""

    def __init__(self, store: DecisionStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    def commit(self, spend: Spend, event: DecisionEvent) -> PendingWrite[TaskRecord | None]:
        return _ThenQueued(self._store.commit_decision(spend, (), seal), self._audit, event)

    def record(self, event: DecisionEvent) -> None:
        self._audit.record(**event)  # queued: the log is in the async mode


class _ThenQueued:
    """A spend's pending write that, once it spent, queues the allow's event."""

    __slots__ = ("_audit", "_event", "_write")

    def __init__(
        self, write: PendingWrite[TaskRecord | None], audit: AuditLog, event: DecisionEvent
    ) -> None:
        self._write = write
        self._audit = audit
        self._event = event

    def result(self) -> TaskRecord | None:
        return self._queued(self._write.result())

    async def result_async(self) -> TaskRecord | None:
        return self._queued(await self._write.result_async())

    def _queued(self, spent: TaskRecord | None) -> TaskRecord | None:
        if spent is not None:
            self._audit.record(**self._event)  # raises only when nothing can be queued
        return spent


def decision_log(audit: AuditLog, store: DecisionStore) -> DecisionLog:
    """The decision log of ``audit``'s mode over ``store`` (chosen once, at build)."""
    if audit.mode == "async":
        return QueuedDecisionEvents(store, audit)
    return DurableDecisions(store, audit)
