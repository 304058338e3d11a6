"""In-process replay cache: remembers one-time ids (DPoP ``jti``) until they expire.

Bounded: when it holds ``capacity`` unexpired ids it refuses new ones (fail closed)
rather than forget live ones. Expired ids are evicted in expiry order.
"""

from __future__ import annotations

import heapq
import threading

DEFAULT_CAPACITY = 1_000_000


class MemoryReplayCache:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _evict(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if expiry.get(key) == when:
                del expiry[key]

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        with self._lock:
            self._evict(now)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._capacity:
                return False
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True
