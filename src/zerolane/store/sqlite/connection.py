"""The one way zerolane speaks to SQLite: the standard library's ``sqlite3`` driver.

Every connection of the backend is made by :func:`connect`, with the same settings:

- autocommit mode (``isolation_level=None``): the driver begins no transaction of its
  own. The writer (:mod:`.group_commit`) issues ``BEGIN IMMEDIATE`` / ``COMMIT`` itself,
  and a read is one statement, which SQLite runs on a snapshot without any lock;
- ``journal_mode=WAL``, ``synchronous=FULL`` (a commit is acknowledged only once its
  log record is ``fsync``ed), ``foreign_keys=ON``;
- a busy timeout of :data:`BUSY_TIMEOUT` seconds for another process's write lock;
- rows as :class:`sqlite3.Row`, read by column name (:mod:`.tables`).

Statements are plain SQL strings with named parameters (``:name``) and explicit column
lists: no query builder, no ORM. The write connection belongs to the writer thread that
commits a batch; reads take a connection from a :class:`ReadPool`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: seconds a statement waits for another connection's write lock before failing
BUSY_TIMEOUT = 10.0
#: idle read connections kept open (more are opened when needed, closed when returned)
KEEP_IDLE = 8

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}",
    "PRAGMA foreign_keys=ON",
)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the database at ``path`` with the backend's settings (above).
    It may be used by any thread, by one at a time (the pool and the writer see to it)."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        conn.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


def all_rows(
    conn: sqlite3.Connection, sql: str, params: Mapping[str, Any] | None = None
) -> list[sqlite3.Row]:
    """Every row of ``sql``. Reading them all also finishes the statement, so an
    ``UPDATE ... RETURNING`` never stays pending under a savepoint or a commit."""
    return conn.execute(sql, params or {}).fetchall()


def first_row(
    conn: sqlite3.Connection, sql: str, params: Mapping[str, Any] | None = None
) -> sqlite3.Row | None:
    """The first row of ``sql`` (None when there is none); the statement is finished."""
    rows = all_rows(conn, sql, params)
    return rows[0] if rows else None


class ReadPool:
    """Connections for reads, reused: one is taken per read and given back after it.

    Reads never wait for each other or for the writer (WAL): the pool opens another
    connection when none is idle, keeps at most :data:`KEEP_IDLE` idle ones, and
    closes a connection whose read failed rather than reusing it. After :meth:`close`
    a read still works, on a connection closed once it is given back.
    """

    def __init__(self, path: Path, *, keep: int = KEEP_IDLE) -> None:
        self._path = path
        self._keep = keep
        self._lock = threading.Lock()  # guards _idle and _closed (a leaf lock)
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self._path)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if not self._closed and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections; those in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
