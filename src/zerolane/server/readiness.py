"""``/readyz``'s write check: can the store take a write, and is the audit sink accepting?

Reading the store proves little on a full disk: reads keep working while every write
(and so every audited decision) fails. So readiness also:

- checks the free space of the filesystem that holds the SQLite file
  (``store.disk_full`` below :data:`MIN_FREE_BYTES`);
- takes SQLite's write lock and makes the database grow by a page, then rolls back
  (``BEGIN IMMEDIATE``, a table and a page-sized row that are never committed): a
  database that cannot grow (``store.full``), is read-only (``store.read_only``) or
  whose write lock cannot be had within :data:`LOCK_WAIT` (``store.busy``) is not ready;
- compares the store's counters with the previous check: a commit that failed
  (``store.write``) or an audit event lost by the asynchronous audit queue
  (``audit.lost``) since then makes this check fail.

The answer is kept for :data:`EVERY` seconds, so a load balancer polling ``/readyz``
takes the write lock at most once a second. A store other than SQLite (``memory://``)
has nothing to check.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from zerolane.errors import Unavailable
from zerolane.store.ports import Stores
from zerolane.store.sqlite import SqliteStores

EVERY = 1.0  # seconds an answer is reused
LOCK_WAIT = 1.0  # seconds to wait for SQLite's write lock
MIN_FREE_BYTES = 16 * 1024 * 1024  # below this, the next checkpoint or WAL growth fails
# a table created and filled with one page, then rolled back: never committed
_GROW = (
    "CREATE TABLE zerolane_readiness_probe (filler BLOB)",
    "INSERT INTO zerolane_readiness_probe VALUES (zeroblob(?))",
)

Connect = Callable[[Path], sqlite3.Connection]
_REASONS = {
    "SQLITE_FULL": ("store.full", "the database is full: writes fail"),
    "SQLITE_READONLY": ("store.read_only", "the database is read-only: writes fail"),
    "SQLITE_BUSY": ("store.busy", "the database's write lock could not be taken"),
    "SQLITE_LOCKED": ("store.busy", "the database's write lock could not be taken"),
    "SQLITE_IOERR": ("store.write", "the database could not be written (I/O error)"),
}


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=LOCK_WAIT, isolation_level=None)


def _free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


class WriteReadiness:
    """Whether ``stores`` can write now; :meth:`check` raises
    :class:`~zerolane.errors.Unavailable` (with the reason) when it cannot."""

    def __init__(
        self,
        stores: Stores,
        *,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
        connect: Connect = _connect,
        free_bytes: Callable[[Path], int] = _free_bytes,
        min_free: int = MIN_FREE_BYTES,
    ) -> None:
        self._stores = stores if isinstance(stores, SqliteStores) else None
        self._every = every
        self._clock = clock
        self._connect = connect
        self._free_bytes = free_bytes
        self._min_free = min_free
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._answer: Unavailable | None = None
        self._counters = self._read_counters()

    def check(self) -> None:
        """Raise the last answer's :class:`Unavailable`, checking again when it is stale."""
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._every:
                self._answer = self._probe()
                self._checked_at = self._clock()
            answer = self._answer
        if answer is not None:
            raise answer

    def _read_counters(self) -> tuple[int, int]:
        if self._stores is None:
            return (0, 0)
        return (self._stores.writer_stats().failed_commits, self._stores.lost_audit_events)

    def _probe(self) -> Unavailable | None:
        stores = self._stores
        if stores is None:
            return None
        before, self._counters = self._counters, self._read_counters()
        failed, lost = (now - then for now, then in zip(self._counters, before, strict=True))
        try:
            free = self._free_bytes(stores.path.parent)
        except OSError as err:
            return Unavailable("store.write", f"the database's folder cannot be read: {err}")
        if free < self._min_free:
            return Unavailable(
                "store.disk_full",
                f"{free} bytes free where the database lives (at least {self._min_free} "
                "needed): writes fail",
            )
        refused = self._try_to_grow(stores.path)
        if refused is not None:
            return refused
        if failed:
            return Unavailable("store.write", f"{failed} commit(s) failed since the last check")
        if lost:
            return Unavailable("audit.lost", f"{lost} audit event(s) lost since the last check")
        return None

    def _try_to_grow(self, path: Path) -> Unavailable | None:
        """Take the write lock and allocate a page, then roll back; the refusal if any."""
        try:
            conn = self._connect(path)
        except sqlite3.Error as err:
            return Unavailable("store.write", f"the database cannot be opened: {err}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                page = int(conn.execute("PRAGMA page_size").fetchone()[0])
                conn.execute(_GROW[0])
                conn.execute(_GROW[1], (page,))
            finally:
                if conn.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL)
                    conn.execute("ROLLBACK")
        except sqlite3.Error as err:
            name = getattr(err, "sqlite_errorname", "") or ""
            base = name.split("_", 2)
            reason, message = _REASONS.get(
                "_".join(base[:2]), ("store.write", "the database could not be written")
            )
            return Unavailable(reason, f"{message} ({name or type(err).__name__})")
        finally:
            conn.close()
        return None
