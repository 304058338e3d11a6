"""In-process replay cache: remembers one-time ids (DPoP ``jti``) until they expire.

Bounded: when it holds ``capacity`` unexpired ids it refuses new ones (fail closed)
rather than forget live ones.

Compact: an id is kept as a 128-bit BLAKE2b digest in one set, and filed under the
whole second it expires in (rounded up, so an id is remembered up to a second longer
than asked, never shorter); a second's ids are forgotten together once it has passed.
Two different ids would have to collide in 128 bits to be confused, and the only
effect would be refusing the newer one. About 100 bytes per id (``bench/replay_cache.py``).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import threading

DEFAULT_CAPACITY = 1_000_000
DIGEST_BYTES = 16


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


class MemoryReplayCache:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._seen: set[bytes] = set()
        self._by_second: dict[int, list[bytes]] = {}
        self._seconds: list[int] = []  # a heap of the keys of _by_second
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def _evict(self, now: float) -> None:
        seconds, by_second, seen = self._seconds, self._by_second, self._seen
        while seconds and seconds[0] <= now:
            for digest in by_second.pop(heapq.heappop(seconds)):
                seen.discard(digest)

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        digest = _digest(key)
        second = math.ceil(expires_at)
        with self._lock:
            self._evict(now)
            if digest in self._seen:
                return False
            if second <= now:  # already expired: nothing to remember, and not new either
                return False
            if len(self._seen) >= self._capacity:
                return False
            self._seen.add(digest)
            bucket = self._by_second.get(second)
            if bucket is None:
                self._by_second[second] = bucket = []
                heapq.heappush(self._seconds, second)
            bucket.append(digest)
            return True
