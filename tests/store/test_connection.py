"""The one way SQLite is spoken to: every connection's settings, and the read pool."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from zerolane.store.sqlite.connection import BUSY_TIMEOUT, ReadPool, connect, first_row


def pragma(conn: sqlite3.Connection, name: str) -> object:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return row[0]


def test_every_connection_has_the_backends_settings(tmp_path: Path) -> None:
    conn = connect(tmp_path / "z.db")
    try:
        assert pragma(conn, "journal_mode") == "wal"
        assert pragma(conn, "synchronous") == 2  # FULL: a commit waits for its fsync
        assert pragma(conn, "busy_timeout") == int(BUSY_TIMEOUT * 1000)
        assert pragma(conn, "foreign_keys") == 1
        assert conn.isolation_level is None  # the writer begins and commits itself
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        conn.execute("INSERT INTO t (b, a) VALUES (:b, :a)", {"a": 1, "b": "x"})
        row = first_row(conn, "SELECT a, b FROM t")
        assert row is not None
        assert (row["a"], row["b"]) == (1, "x")  # rows are read by column name
        assert not conn.in_transaction  # autocommit: nothing was left open
    finally:
        conn.close()


def test_the_pool_reuses_a_connection_and_drops_one_that_failed(tmp_path: Path) -> None:
    pool = ReadPool(tmp_path / "z.db", keep=1)
    with pool.connection() as first:
        pass
    with pool.connection() as again:
        assert again is first  # reused
    with pytest.raises(sqlite3.OperationalError), pool.connection() as failing:
        failing.execute("SELECT * FROM missing")
    with pool.connection() as fresh:
        assert fresh is not failing  # a connection whose read failed is not reused
        assert fresh.execute("SELECT 1").fetchone()[0] == 1
    pool.close()


def test_a_closed_pool_still_reads_on_connections_it_then_closes(tmp_path: Path) -> None:
    pool = ReadPool(tmp_path / "z.db")
    with pool.connection() as kept:
        pass
    pool.close()
    with pytest.raises(sqlite3.ProgrammingError):
        kept.execute("SELECT 1")  # the idle one was closed
    with pool.connection() as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")  # given back after close: closed, not kept
