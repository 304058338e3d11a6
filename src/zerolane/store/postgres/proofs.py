"""Spent one-time proofs in PostgreSQL (``spent_proofs``: a ``BYTEA`` digest and its
expiry), shared by every process over the database, as in SQLite
(:mod:`zerolane.store.sqlite.proofs`, whose floor and purge rules this follows: a proof
purged by a process whose clock is ahead stays refused by one whose clock is behind).

A proof is inserted with ``ON CONFLICT DO NOTHING``: of concurrent spenders of one
proof, in any process, exactly one inserts it (the others wait for its transaction and
find it), and a conflict does not abort the transaction around it.
"""

from __future__ import annotations

import threading

from zerolane.errors import ProofReplayed
from zerolane.store.postgres.connection import Conn, first_row
from zerolane.store.records import SpentProof
from zerolane.store.sqlite.proofs import FLOOR, MAX_STEP_BACK, PURGE_EVERY

_INSERT = (
    "INSERT INTO spent_proofs (digest, expires_at) VALUES (%(d)s, %(e)s) "
    "ON CONFLICT (digest) DO NOTHING RETURNING digest"
)
_PURGE = "DELETE FROM spent_proofs WHERE expires_at <= %(now)s AND digest != %(floor)s"
_RAISE_FLOOR = (
    "INSERT INTO spent_proofs (digest, expires_at) VALUES (%(floor)s, %(now)s) "
    "ON CONFLICT (digest) DO UPDATE SET "
    "expires_at = GREATEST(spent_proofs.expires_at, excluded.expires_at)"
)
_FLOOR = "SELECT expires_at FROM spent_proofs WHERE digest = %(floor)s"


class SpentProofs:
    """The statements on a write's connection; remembers when this process last purged."""

    def __init__(self) -> None:
        self._purged_at = float("-inf")
        self._lock = threading.Lock()

    def purge_due(self, now: float) -> bool:
        """True (at most once per :data:`PURGE_EVERY`) when expired proofs should go."""
        with self._lock:
            due = now - self._purged_at >= PURGE_EVERY
            if due:
                self._purged_at = now
            return due

    @staticmethod
    def purge(conn: Conn, now: float) -> None:
        """Raise the floor to ``now`` and delete the proofs expired by then (its own
        transaction, before the write that spends)."""
        with conn.transaction():
            conn.execute(_RAISE_FLOOR, {"floor": FLOOR, "now": now})
            conn.execute(_PURGE, {"now": now, "floor": FLOOR})

    @staticmethod
    def spend(conn: Conn, proof: SpentProof, now: float) -> bool:
        """Insert ``proof``; False (nothing written) when it was spent or has expired
        (by ``now``, or by the time any process purged proofs up to)."""
        if proof.expires_at <= now:
            return False
        row = first_row(conn, _FLOOR, {"floor": FLOOR})
        floor = row["expires_at"] if row is not None else None
        if floor is not None and floor - MAX_STEP_BACK < proof.expires_at <= floor:
            return False  # it may have been spent, then forgotten by a clock ahead of ours
        return first_row(conn, _INSERT, {"d": proof.digest, "e": proof.expires_at}) is not None

    @classmethod
    def spend_or_raise(cls, conn: Conn, proof: SpentProof, now: float) -> None:
        """:meth:`spend`, raising :class:`ProofReplayed` (which rolls the transaction,
        the spend with it, back) when the proof cannot be spent."""
        if not cls.spend(conn, proof, now):
            raise ProofReplayed
