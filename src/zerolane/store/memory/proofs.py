"""Spent one-time proofs, in memory (the :class:`SpentProofStore` of the memory backend).

Nothing survives the process, like every other state of this backend: its tasks are
gone after a restart too, so no token of it can be replayed there.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

from zerolane.store.records import SpentProof

#: expired proofs are forgotten at most this often (seconds), in one sweep
PURGE_EVERY = 1.0


class MemorySpentProofs:
    def __init__(self) -> None:
        self._spent: dict[bytes, float] = {}
        self._purged_at = float("-inf")
        #: the memory store shares its own lock: a spend and its proof change together
        self._proofs_lock: AbstractContextManager[Any] = threading.Lock()

    def spend_proof(self, proof: SpentProof, now: float) -> bool:
        with self._proofs_lock:
            return self._spend_locked(proof, now)

    def _spend_locked(self, proof: SpentProof, now: float) -> bool:
        """Spend ``proof`` (the caller holds the store's lock or ``_proofs_lock``)."""
        self._purge(now)
        if proof.expires_at <= now:
            return False  # too old to be accepted anywhere: nothing to remember
        if proof.digest in self._spent:
            return False
        self._spent[proof.digest] = proof.expires_at
        return True

    def _seen(self, proof: SpentProof, now: float) -> bool:
        """Whether ``proof`` cannot be spent now (spent before, or expired)."""
        self._purge(now)
        return proof.expires_at <= now or proof.digest in self._spent

    def _purge(self, now: float) -> None:
        if now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        for digest in [d for d, expires in self._spent.items() if expires <= now]:
            del self._spent[digest]
