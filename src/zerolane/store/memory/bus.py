"""In-process revocation bus: subscribers are called synchronously, in sequence order.

One process, one bus: it is always reachable (its health is "seen now"), and an event
has reached every subscriber when :meth:`MemoryRevocationBus.publish` returns.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from zerolane.store.ports import RevocationCallback
from zerolane.store.records import BusHealth, RevocationEvent
from zerolane.types import Clock, SystemClock

log = logging.getLogger(__name__)


class MemoryRevocationBus:
    """Implements :class:`zerolane.store.ports.RevocationBus` inside one process."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        # Re-entrant: a subscriber may publish (a cascade) from its callback.
        self._lock = threading.RLock()
        self._sequence = 0
        self._subscribers: dict[int, RevocationCallback] = {}
        self._next_id = 0
        self.delivery_errors = 0

    def publish(self, event: RevocationEvent) -> RevocationEvent:
        with self._lock:
            self._sequence += 1
            published = dataclasses.replace(event, sequence=self._sequence)
            for callback in list(self._subscribers.values()):
                try:
                    callback(published)
                except Exception:  # one broken subscriber must not starve the others
                    self.delivery_errors += 1
                    log.exception("a revocation subscriber failed on event %d", published.sequence)
            return published

    def subscribe(self, callback: RevocationCallback) -> Callable[[], None]:
        with self._lock:
            key = self._next_id
            self._next_id += 1
            self._subscribers[key] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def health(self) -> BusHealth:
        return BusHealth(connected=True, last_seen=self._clock.now())

    @property
    def sequence(self) -> int:
        """The sequence number of the last event published."""
        with self._lock:
            return self._sequence
