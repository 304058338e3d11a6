"""Migrations that landed out of order: the loader applies every version a database
lacks, in version order, even one numbered below a version already applied."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.migrations import LATEST, MIGRATIONS


def raw(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return list(conn.execute(sql))


def versions(db: Path) -> list[int]:
    return [int(str(v[0])) for v in raw(db, "SELECT version FROM schema_migrations ORDER BY 1")]


def test_latest_is_the_highest_version_whatever_the_list_order() -> None:
    assert max(v for v, _, _ in MIGRATIONS) == LATEST
    assert len({v for v, _, _ in MIGRATIONS}) == len(MIGRATIONS)


def test_a_lower_version_missing_from_a_database_is_applied(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    SqliteStores(db).close()
    assert versions(db) == sorted(v for v, _, _ in MIGRATIONS)
    # a database migrated by a build that had version 4 but not yet version 3
    raw(db, "DROP TABLE leases")
    raw(db, "DELETE FROM schema_migrations WHERE version = 3")
    assert 4 in versions(db)
    reopened = SqliteStores(db)
    try:
        assert reopened.schema_version() == LATEST
        assert versions(db) == sorted(v for v, _, _ in MIGRATIONS)
        assert raw(db, "SELECT COUNT(*) FROM leases") == [(0,)]
    finally:
        reopened.close()


def test_the_user_columns_exist_after_migrating(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    SqliteStores(db).close()
    columns = {str(row[1]) for row in raw(db, "PRAGMA table_info(tasks)")}
    assert {"user_subject", "user_issuer", "parent_id", "depth"} <= columns
