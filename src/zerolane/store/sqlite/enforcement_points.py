"""SQLite enforcement-point store (migration 6), composed into
:class:`zerolane.store.sqlite.SqliteStores` (a mixin over its ``_read``/``_write``).
Adding and removing go through ``write_recorded`` with their audit events."""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from zerolane.errors import Conflict
from zerolane.store.changes import AddEnforcementPoint, RemoveEnforcementPoint
from zerolane.store.records import EnforcementPoint
from zerolane.store.sqlite.group_commit import WriteOp

T = TypeVar("T")

_COLUMNS = "name, credential_hash, urls, created_at"
_INSERT = text(f"INSERT INTO enforcement_points ({_COLUMNS}) VALUES (:n, :h, :u, :c)")  # noqa: S608
_DELETE = text(f"DELETE FROM enforcement_points WHERE name = :n RETURNING {_COLUMNS}")  # noqa: S608
_LIST = f"SELECT {_COLUMNS} FROM enforcement_points ORDER BY name"  # noqa: S608


def _point(row: Any) -> EnforcementPoint:
    return EnforcementPoint(
        name=row.name,
        credential_hash=row.credential_hash,
        urls=tuple(json.loads(row.urls)),
        created_at=row.created_at,
    )


def add_point(conn: Connection, change: AddEnforcementPoint) -> None:
    point = change.point
    params = {
        "n": point.name,
        "h": point.credential_hash,
        "u": json.dumps(list(point.urls)),
        "c": point.created_at,
    }
    try:
        conn.execute(_INSERT, params)
    except IntegrityError as err:
        raise Conflict("enforcement_point.exists", f"{point.name} exists") from err


def remove_point(conn: Connection, change: RemoveEnforcementPoint) -> EnforcementPoint | None:
    row = conn.execute(_DELETE, {"n": change.name}).first()
    return _point(row) if row is not None else None


class _Backend(Protocol):
    def _read(self, sql: str, **params: Any) -> list[Any]: ...

    def _write(self, op: WriteOp[T], *, key: str | None = None) -> T: ...


class SqliteEnforcementPoints:
    def add_enforcement_point(self: _Backend, point: EnforcementPoint) -> None:
        change = AddEnforcementPoint(point)
        self._write(lambda conn: add_point(conn, change))

    def list_enforcement_points(self: _Backend) -> list[EnforcementPoint]:
        return [_point(row) for row in self._read(_LIST)]

    def remove_enforcement_point(self: _Backend, name: str) -> EnforcementPoint | None:
        change = RemoveEnforcementPoint(name)
        return self._write(lambda conn: remove_point(conn, change))
