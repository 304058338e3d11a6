"""The schema: the SQLite backend's versioned migrations (:mod:`zerolane.store.sqlite.
migrations`, portable DDL), so both backends hold the same tables at the same version.
The one dialect difference: a ``BLOB`` column is ``BYTEA`` here.

:func:`migrate` runs when a store opens, in one transaction under an advisory lock of
the schema: processes starting together apply each migration once, the others wait and
find it applied; a migration that fails leaves nothing behind (PostgreSQL's DDL is
transactional).
"""

from __future__ import annotations

import re

from zerolane.errors import InvalidInput
from zerolane.store.postgres import locks
from zerolane.store.postgres.connection import Conn
from zerolane.store.sqlite.migrations import LATEST, MIGRATIONS

__all__ = ["LATEST", "migrate", "statements"]

_BLOB = re.compile(r"\bBLOB\b")
_CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
    "applied_at DOUBLE PRECISION NOT NULL)"
)
_RECORD = (
    "INSERT INTO schema_migrations (version, description, applied_at) "
    "VALUES (%(v)s, %(d)s, extract(epoch from clock_timestamp()))"
)


def statements(version: int) -> list[str]:
    """The PostgreSQL statements of migration ``version``."""
    for number, _, sql in MIGRATIONS:
        if number == version:
            return [_BLOB.sub("BYTEA", statement) for statement in sql]
    raise KeyError(version)


def migrate(conn: Conn) -> list[int]:
    """Apply every migration the schema lacks, in version order; the versions applied.
    Raises ``InvalidInput`` (``store.schema_too_new``) for a schema newer than this code."""
    with conn.transaction():
        locks.lock(conn, locks.MIGRATIONS)
        conn.execute(_CREATE)
        rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        applied = {int(row["version"]) for row in rows}
        current = max(applied, default=0)
        if current > LATEST:
            raise InvalidInput(
                "store.schema_too_new",
                f"the database schema is version {current}; this zerolane knows {LATEST}",
            )
        done: list[int] = []
        for version, description, _ in sorted(MIGRATIONS, key=lambda m: m[0]):
            if version in applied:
                continue
            for statement in statements(version):
                conn.execute(statement)
            conn.execute(_RECORD, {"v": version, "d": description})
            done.append(version)
        return done
