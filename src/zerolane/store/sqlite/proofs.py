"""Spent one-time proofs in SQLite (the :class:`SpentProofStore` of this backend).

Every process that opens the same database shares them, and they outlive a restart:
a DPoP proof spent at one enforcement point is spent at all of them. A decision's
proof is inserted in the write that spends its call (same transaction), so the allow
costs no extra commit; a proof spent before makes that write fail as a whole.
Expired rows are deleted at most once a second, in a write that is made anyway.

A deleted proof must stay refused even by a process whose clock is behind the one
that deleted it (the clock stepped back, then a restart or a new process): the purge
records the time it purged up to in a row of its own (:data:`FLOOR`), and a proof that
expires by then cannot be spent, whatever the spender's clock says. That refuses every
proof while the clock is more than a proof's window behind the floor, as a running
process (whose clock holds its latest reading) refuses them until the clock catches
up; a floor more than :data:`MAX_STEP_BACK` ahead is not held against a proof, so a
clock that was set far ahead and corrected does not stop the deployment for as long.
"""

from __future__ import annotations

import sqlite3
import threading

from zerolane.errors import ProofReplayed
from zerolane.store.records import SpentProof

#: expired proofs are deleted at most this often (seconds)
PURGE_EVERY = 1.0
#: the digest of the row holding the time proofs were purged up to (no BLAKE2b digest
#: of a proof is 16 zero bytes but with probability 2**-128)
FLOOR = bytes(16)
#: a proof expiring more than this before the floor is not refused for it (seconds)
MAX_STEP_BACK = 3600.0

_INSERT = "INSERT INTO spent_proofs (digest, expires_at) VALUES (?, ?)"
_PURGE = "DELETE FROM spent_proofs WHERE expires_at <= ? AND digest != ?"
_RAISE_FLOOR = (
    "INSERT INTO spent_proofs (digest, expires_at) VALUES (?, ?) "
    "ON CONFLICT (digest) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"
)
_FLOOR = "SELECT expires_at FROM spent_proofs WHERE digest = ?"


class SpentProofs:
    """The statements on the writer's connection; remembers when it last purged."""

    def __init__(self) -> None:
        self._purged_at = float("-inf")
        self._lock = threading.Lock()

    def spend(self, driver: sqlite3.Connection, proof: SpentProof, now: float) -> bool:
        """Insert ``proof``; False (nothing written) when it was spent or has expired
        (by ``now``, or by the time any process purged proofs up to)."""
        self._purge(driver, now)
        if proof.expires_at <= now:
            return False
        row = driver.execute(_FLOOR, (FLOOR,)).fetchone()
        floor = row["expires_at"] if row is not None else None
        if floor is not None and floor - MAX_STEP_BACK < proof.expires_at <= floor:
            return False  # it may have been spent, then forgotten by a clock ahead of ours
        try:
            driver.execute(_INSERT, (proof.digest, proof.expires_at))
        except sqlite3.IntegrityError:  # the primary key: spent before, by anyone
            return False
        return True

    def spend_or_raise(self, driver: sqlite3.Connection, proof: SpentProof, now: float) -> None:
        """:meth:`spend`, raising :class:`ProofReplayed` (the op's savepoint then
        undoes the rest of its write) when the proof cannot be spent."""
        if not self.spend(driver, proof, now):
            raise ProofReplayed

    def _purge(self, driver: sqlite3.Connection, now: float) -> None:
        with self._lock:
            due = now - self._purged_at >= PURGE_EVERY
            if due:
                self._purged_at = now
        if due:
            driver.execute(_RAISE_FLOOR, (FLOOR, now))
            driver.execute(_PURGE, (now, FLOOR))
