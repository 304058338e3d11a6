"""How enforcement points learn that a task ended: the revocation bus, watched.

:class:`RevocationWatch` subscribes to a :class:`~zerolane.store.ports.RevocationBus`
and remembers the tasks it heard were ended, revoked or suspended (a bounded, recent
set). :meth:`RevocationWatch.check` answers for one task and **fails closed**: when
the bus has not proved reachable for longer than the grace window, it raises
``Unavailable`` (``revocation.unreachable``) whatever it remembers, because a
revocation may have been missed.

The store stays the source of truth: the watch is what lets an enforcement point
cache task state and still stop a revoked task at once. When it may have missed
events (a gap in the bus's sequence, a forgotten entry) it bumps :attr:`epoch`, and
caches built before must be dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from zerolane.errors import Unavailable
from zerolane.store.ports import RevocationBus
from zerolane.store.records import RevocationEvent, RevocationKind, TaskRecord
from zerolane.types import Clock, TaskState

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 5
DEFAULT_CAPACITY = 100_000
#: how long a revocation is remembered: no task token outlives the largest task TTL
DEFAULT_RETENTION = 7 * 86400


@dataclass(frozen=True, slots=True)
class WatchStatus:
    connected: bool
    #: seconds since the bus last proved reachable (None: never)
    silent_for: float | None
    grace_seconds: float
    reachable: bool
    tracked: int
    last_sequence: int
    gaps: int
    forgotten: int
    epoch: int


class RevocationWatch:
    """A subscriber's view of recent revocations, with a fail-closed reachability check."""

    def __init__(
        self,
        bus: RevocationBus,
        clock: Clock,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        capacity: int = DEFAULT_CAPACITY,
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        if grace_seconds < 0 or capacity <= 0 or retention <= 0:
            raise ValueError("grace_seconds >= 0, capacity > 0 and retention > 0")
        self._bus = bus
        self._clock = clock
        self.grace_seconds = float(grace_seconds)
        self._capacity = capacity
        self._retention = retention
        self._lock = threading.Lock()
        # task id -> the event that ended or suspended it, oldest first
        # (with when it arrived here: this process's clock, never the publisher's)
        self._events: OrderedDict[str, tuple[RevocationEvent, float]] = OrderedDict()
        self._last_sequence = 0
        self._gaps = 0
        self._forgotten = 0
        self._epoch = 0
        self._unsubscribe: Callable[[], None] | None = bus.subscribe(self.on_event)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def epoch(self) -> int:
        """Changes whenever the watch may have missed or forgotten a revocation."""
        with self._lock:
            return self._epoch

    def on_event(self, event: RevocationEvent) -> None:
        """Take one event from the bus (its subscription callback)."""
        now = self._clock.now()
        with self._lock:
            if self._last_sequence and event.sequence > self._last_sequence + 1:
                self._gaps += 1
                self._epoch += 1
                log.warning(
                    "revocation events %d..%d were missed",
                    self._last_sequence + 1,
                    event.sequence - 1,
                )
            self._last_sequence = max(self._last_sequence, event.sequence)
            for task_id in event.task_ids:
                self._apply(task_id, event, now)
            self._trim(now)

    def _apply(self, task_id: str, event: RevocationEvent, now: float) -> None:
        entry = self._events.get(task_id)
        if entry is not None and (entry[0].kind.terminal or entry[0].sequence > event.sequence > 0):
            return  # an ended task stays ended; an older event never wins
        if event.kind is RevocationKind.RESUMED:
            self._events.pop(task_id, None)
            return
        self._events[task_id] = (event, now)
        self._events.move_to_end(task_id)

    def _trim(self, now: float) -> None:
        while self._events:
            task_id, (_, arrived) = next(iter(self._events.items()))
            if len(self._events) > self._capacity:
                self._forgotten += 1
                self._epoch += 1
            elif arrived > now - self._retention:
                return
            del self._events[task_id]

    def status(self) -> WatchStatus:
        health = self._bus.health()
        now = self._clock.now()
        silent = None if health.last_seen is None else max(0.0, now - health.last_seen)
        with self._lock:
            return WatchStatus(
                connected=health.connected,
                silent_for=silent,
                grace_seconds=self.grace_seconds,
                reachable=silent is not None and silent <= self.grace_seconds,
                tracked=len(self._events),
                last_sequence=self._last_sequence,
                gaps=self._gaps,
                forgotten=self._forgotten,
                epoch=self._epoch,
            )

    def ensure_reachable(self) -> None:
        """Raise ``Unavailable`` (``revocation.unreachable``) when the bus has been
        silent or disconnected for longer than the grace window."""
        health = self._bus.health()
        if health.last_seen is None:
            raise Unavailable(
                "revocation.unreachable", "the revocation bus has not been reached yet"
            )
        silent = self._clock.now() - health.last_seen
        if silent > self.grace_seconds:
            state = "connected but silent" if health.connected else "disconnected"
            raise Unavailable(
                "revocation.unreachable",
                f"the revocation bus is {state} for {silent:.1f}s "
                f"(grace window {self.grace_seconds:g}s): failing closed",
            )

    def check(self, task_id: str) -> RevocationEvent | None:
        """The event that ended or suspended ``task_id``, None when none was heard.

        A known revocation is answered even while the bus is unreachable (it is a
        deny either way); otherwise an unreachable bus raises ``Unavailable``.
        """
        return self.check_all((task_id,))

    def check_all(self, task_ids: Iterable[str]) -> RevocationEvent | None:
        """:meth:`check` for a task and its ancestors: the first revocation heard."""
        with self._lock:
            for task_id in task_ids:
                entry = self._events.get(task_id)
                if entry is not None:
                    return entry[0]
        self.ensure_reachable()
        return None


_KIND_OF_STATE = {
    TaskState.COMPLETED: RevocationKind.ENDED,
    TaskState.EXPIRED: RevocationKind.ENDED,
    TaskState.REVOKED: RevocationKind.REVOKED,
    TaskState.SUSPENDED: RevocationKind.SUSPENDED,
}


def events_for(
    tasks: Sequence[TaskRecord], now: float, *, resumed: bool = False
) -> list[RevocationEvent]:
    """The events announcing ``tasks`` (one per kind and reason, in their order): by
    their state (ended, revoked, suspended), or, ``resumed``, that they are resumed."""
    grouped: dict[tuple[RevocationKind, str], list[str]] = {}
    for task in tasks:
        kind = RevocationKind.RESUMED if resumed else _KIND_OF_STATE.get(task.state)
        if kind is None:
            continue
        reason = "resumed" if resumed else (task.end_reason or task.state.value)[:256]
        grouped.setdefault((kind, reason), []).append(task.task_id)
    events: list[RevocationEvent] = []
    for (kind, reason), ids in grouped.items():
        for start in range(0, len(ids), 1000):
            events.append(RevocationEvent(tuple(ids[start : start + 1000]), kind, reason, now))
    return events


class RevocationPublisher:
    """The lifecycle's ``on_ended`` hook: announces ended (and suspended) tasks on the
    bus; :meth:`resumed` is its ``on_resumed`` hook.

    The task store already holds the end (it is the source of truth), so a bus that
    cannot take the event is logged and counted, not raised into the caller: the
    enforcement points that miss it are bounded by their task cache and fail closed
    once their own link to the bus is silent past the grace window.
    """

    def __init__(self, bus: RevocationBus, clock: Clock) -> None:
        self._bus = bus
        self._clock = clock
        self.failures = 0

    def __call__(self, tasks: Sequence[TaskRecord]) -> None:
        self._publish(events_for(tasks, self._clock.now()))

    def resumed(self, tasks: Sequence[TaskRecord]) -> None:
        """The lifecycle's ``on_resumed`` hook: announces resumed tasks on the bus (a
        watch that heard them suspended forgets it; until then it keeps denying)."""
        self._publish(events_for(tasks, self._clock.now(), resumed=True))

    def _publish(self, events: Sequence[RevocationEvent]) -> None:
        for event in events:
            try:
                self._bus.publish(event)
            except Exception:
                self.failures += 1
                log.exception(
                    "could not publish the revocation of %d task(s) (%s)",
                    len(event.task_ids),
                    event.kind.value,
                )
