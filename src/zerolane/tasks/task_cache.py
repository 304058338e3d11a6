"""What a decider keeps between requests: the last known record of each busy task, and
one lock per stripe of task ids.

A cached record is only ever a guess. The decider decides on it and then spends the
call with a compare-and-set that re-checks, in the store, everything a decision read
from the row and that can change (state, window, budget, and ``calls_used``, which
every spend bumps together with ``touched``); the scope, owner and token id never
change. So a stale record can never let a request through: its spend fails and the
decider re-reads. A deny decided on a cached record is re-decided on a fresh read
before it is final, so a stale record cannot refuse a request either.

The locks serialize one task's decisions within this process (requests of one agent
racing for the same budget would otherwise mostly lose their compare-and-sets); they
are re-entrant, and striped so memory stays bounded whatever the number of tasks.
A decider may hold a lock only until its spend is queued and cache the record as the
spend will leave it: the next request's compare-and-set is then queued behind, and
fails (and is decided again) if that spend does not happen. Other processes' races
are still settled by the compare-and-set.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict

from zerolane.store.records import TaskRecord

DEFAULT_CAPACITY = 10_000
DEFAULT_STRIPES = 256


class TaskCache:
    """A bounded map of task id -> last known record (least recently used goes first)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._records: OrderedDict[str, TaskRecord] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            record = self._records.get(task_id)
            if record is not None:
                self._records.move_to_end(task_id)
            return record

    def put(self, record: TaskRecord) -> None:
        with self._lock:
            self._records[record.task_id] = record
            self._records.move_to_end(record.task_id)
            while len(self._records) > self._capacity:
                self._records.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def discard(self, task_id: str) -> None:
        with self._lock:
            self._records.pop(task_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


class StripedLocks:
    """``stripes`` re-entrant locks; a task id always maps to the same one."""

    def __init__(self, stripes: int = DEFAULT_STRIPES) -> None:
        if stripes < 1:
            raise ValueError("stripes must be at least 1")
        self._locks = tuple(threading.RLock() for _ in range(stripes))

    def of(self, task_id: str) -> threading.RLock:
        return self._locks[zlib.crc32(task_id.encode()) % len(self._locks)]
