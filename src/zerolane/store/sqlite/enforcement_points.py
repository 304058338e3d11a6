"""SQLite enforcement-point store (migration 6), composed into
:class:`zerolane.store.sqlite.SqliteStores` (a mixin over its ``_read``/``_write``).
Adding and removing go through ``write_recorded`` with their audit events."""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol, TypeVar

from zerolane.errors import Conflict
from zerolane.store.changes import AddEnforcementPoint, RemoveEnforcementPoint
from zerolane.store.records import EnforcementPoint
from zerolane.store.sqlite.connection import first_row
from zerolane.store.sqlite.group_commit import WriteOp
from zerolane.store.sqlite.tables import ENFORCEMENT_POINTS

T = TypeVar("T")

_COLUMNS = ENFORCEMENT_POINTS.columns_sql
_INSERT = ENFORCEMENT_POINTS.insert()
_DELETE = f"DELETE FROM enforcement_points WHERE name = :n RETURNING {_COLUMNS}"  # noqa: S608
_LIST = f"SELECT {_COLUMNS} FROM enforcement_points ORDER BY name"  # noqa: S608


def add_point(conn: sqlite3.Connection, change: AddEnforcementPoint) -> None:
    point = change.point
    try:
        conn.execute(_INSERT, ENFORCEMENT_POINTS.values(point))
    except sqlite3.IntegrityError as err:
        raise Conflict("enforcement_point.exists", f"{point.name} exists") from err


def remove_point(
    conn: sqlite3.Connection, change: RemoveEnforcementPoint
) -> EnforcementPoint | None:
    return ENFORCEMENT_POINTS.from_row_or_none(first_row(conn, _DELETE, {"n": change.name}))


class _Backend(Protocol):
    def _read(self, sql: str, **params: Any) -> list[sqlite3.Row]: ...

    def _write(self, op: WriteOp[T], *, key: str | None = None) -> T: ...


class SqliteEnforcementPoints:
    def add_enforcement_point(self: _Backend, point: EnforcementPoint) -> None:
        change = AddEnforcementPoint(point)
        self._write(lambda conn: add_point(conn, change))

    def list_enforcement_points(self: _Backend) -> list[EnforcementPoint]:
        return [ENFORCEMENT_POINTS.from_row(row) for row in self._read(_LIST)]

    def remove_enforcement_point(self: _Backend, name: str) -> EnforcementPoint | None:
        change = RemoveEnforcementPoint(name)
        return self._write(lambda conn: remove_point(conn, change))
