"""The one way zerolane speaks to PostgreSQL: psycopg 3, over a small pool of its own.

Every connection is made by :func:`connect` with the same settings: autocommit mode
(a read is one statement, its own transaction; a write opens an explicit transaction
with ``conn.transaction()``), rows as dicts read by column name (:mod:`.rows`), a
connect timeout. Statements are plain SQL with named parameters (``%(name)s``), always
parameterised: no query builder, no ORM.

A store URL may carry a password: messages name only its host, port and database
(:func:`describe`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from zerolane.errors import InvalidInput

Conn = psycopg.Connection[DictRow]

#: seconds to wait for the server when opening a connection
CONNECT_TIMEOUT = 5
#: idle connections kept open (more are opened when needed, closed when returned)
KEEP_IDLE = 8


def describe(conninfo: str) -> str:
    """``host:port/dbname`` of ``conninfo``, for messages (never its password).
    Raises ``InvalidInput`` (``store.url``) when it cannot be parsed, without echoing it."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as err:
        raise InvalidInput(
            "store.url", "the PostgreSQL store URL cannot be parsed (libpq URI or key=value)"
        ) from err
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def connect(conninfo: str) -> Conn:
    """A connection with the backend's settings (above); raises ``psycopg.Error``."""
    return psycopg.connect(
        conninfo, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT
    )


def all_rows(conn: Conn, sql: str, params: dict[str, Any] | None = None) -> list[DictRow]:
    return conn.execute(sql, params or {}).fetchall()


def first_row(conn: Conn, sql: str, params: dict[str, Any] | None = None) -> DictRow | None:
    rows = all_rows(conn, sql, params)
    return rows[0] if rows else None


class Pool:
    """Connections reused by any thread, one at a time: one is taken per read or write
    and given back after it. Opens another when none is idle, keeps at most ``keep``
    idle ones, and closes one that failed or was left inside a transaction rather
    than reusing it. After :meth:`close` a connection still in use is closed when
    given back."""

    def __init__(self, conninfo: str, *, keep: int = KEEP_IDLE) -> None:
        self._conninfo = conninfo
        self._keep = keep
        self._lock = threading.Lock()  # guards _idle and _closed (a leaf lock)
        self._idle: list[Conn] = []
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self._conninfo)
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn: Conn) -> None:
        healthy = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        with self._lock:
            if healthy and not self._closed and len(self._idle) < self._keep:
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
