"""A SQLite database whose tables have their columns in another order, plus one more.

What a later migration may do (add a column; a rebuilt table puts columns in a new
order): the backend reads and writes every row by column name, so nothing may shift.
The conformance suite runs against such a database too (``sqlite-reordered``).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from zerolane.store.sqlite import SqliteStores

#: the column every rebuilt table gains, after the others (as ``ALTER TABLE ADD``)
EXTRA = "added_later"


def tables(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY name"
        )
        return [str(row[0]) for row in rows]


def columns(db: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]


def reorder(db: Path) -> None:
    """Rebuild every table of ``db`` with its columns reversed and an :data:`EXTRA`
    column (a default, so inserts that do not name it work), keeping its rows."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        for table in tables(db):
            info = list(conn.execute(f"PRAGMA table_info({table})"))
            keys = [str(row[1]) for row in sorted(info, key=lambda row: row[5]) if row[5]]
            single = len(keys) == 1  # else a table constraint (a key of several columns)
            defined = [
                f"{name} {kind}"
                + (" NOT NULL" if notnull else "")
                + (" PRIMARY KEY" if pk and single else "")
                for _, name, kind, notnull, _, pk in reversed(info)
            ]
            defined.append(f"{EXTRA} TEXT NOT NULL DEFAULT 'x'")
            if not single and keys:
                defined.append(f"PRIMARY KEY ({', '.join(keys)})")
            names = ", ".join(str(row[1]) for row in info)
            conn.execute(f"CREATE TABLE rebuilt ({', '.join(defined)})")
            conn.execute(f"INSERT INTO rebuilt ({names}) SELECT {names} FROM {table}")  # noqa: S608
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE rebuilt RENAME TO {table}")
        conn.execute("COMMIT")


def reordered_store(db: Path) -> SqliteStores:
    """A fresh store at ``db`` (migrated to the latest schema), its tables reordered."""
    SqliteStores(db).close()
    reorder(db)
    return SqliteStores(db)
