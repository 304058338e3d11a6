"""SQLite lease store (migration 3), composed into :class:`zerolane.store.sqlite.SqliteStores`.

A mixin: it uses the backend's ``_read`` / ``_write`` / ``_statement``, so its writes go
through the same group-committing writer as every other write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from zerolane.store.changes import TransitionLease
from zerolane.store.records import LeaseRecord, LeaseState
from zerolane.store.sqlite.connection import first_row
from zerolane.store.sqlite.group_commit import WriteOp
from zerolane.store.sqlite.tables import LEASES

T = TypeVar("T")

_COLUMNS = LEASES.columns_sql
_GET = f"SELECT {_COLUMNS} FROM leases WHERE lease_id = :i"  # noqa: S608
_LIST = (
    f"SELECT {_COLUMNS} FROM leases "  # noqa: S608
    "WHERE (:t IS NULL OR task_id = :t) AND (:s IS NULL OR state = :s) "
    "AND (:due IS NULL OR (next_attempt_at IS NOT NULL AND next_attempt_at <= :due)) "
    "AND (:bc IS NULL OR created_at < :bc OR (created_at = :bc AND lease_id < :bi)) "
    "ORDER BY created_at DESC, lease_id DESC LIMIT :n"
)


def transition(conn: sqlite3.Connection, change: TransitionLease) -> LeaseRecord | None:
    """Move a lease to ``change.state`` if it is in one of ``change.expected``; the
    lease as stored after it, or None (nothing written)."""
    if not change.expected:
        return None
    expected = {f"e{i}": s.value for i, s in enumerate(change.expected)}
    sql = (
        "UPDATE leases SET state = :state, updated_at = :at, "  # noqa: S608
        "attempts = attempts + :inc, last_error = COALESCE(:error, last_error), "
        "next_attempt_at = :next, end_reason = COALESCE(:reason, end_reason) "
        f"WHERE lease_id = :id AND state IN ({', '.join(':' + k for k in expected)}) "
        f"RETURNING {_COLUMNS}"
    )
    params = {
        "state": change.state.value,
        "at": change.at,
        "inc": 1 if change.count_attempt else 0,
        "error": change.error,
        "next": change.next_attempt_at,
        "reason": change.end_reason,
        "id": change.lease_id,
    }
    return LEASES.from_row_or_none(first_row(conn, sql, params | expected))


class _Backend(Protocol):
    """What the lease methods use of :class:`~zerolane.store.sqlite.SqliteStores`."""

    def _read(self, sql: str, **params: Any) -> list[sqlite3.Row]: ...

    def _write(self, op: WriteOp[T], *, key: str | None = None) -> T: ...

    def _statement(
        self, sql: str, params: dict[str, Any], conflict: tuple[str, str] | None = None
    ) -> int: ...


class SqliteLeases:
    """Implements :class:`zerolane.store.ports.LeaseStore` on the backend it is mixed into
    (its methods take that backend, a :class:`_Backend`, as ``self``)."""

    def add_lease(self: _Backend, lease: LeaseRecord) -> None:
        self._statement(
            LEASES.insert(),
            LEASES.values(lease),
            ("lease.exists", f"lease {lease.lease_id} exists"),
        )

    def get_lease(self: _Backend, lease_id: str) -> LeaseRecord | None:
        rows = self._read(_GET, i=lease_id)
        return LEASES.from_row(rows[0]) if rows else None

    def list_leases(
        self: _Backend,
        *,
        task_id: str | None = None,
        state: LeaseState | None = None,
        due_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[LeaseRecord]:
        rows = self._read(
            _LIST,
            t=task_id,
            s=state.value if state is not None else None,
            due=due_before,
            bc=before[0] if before is not None else None,
            bi=before[1] if before is not None else None,
            n=limit,
        )
        return [LEASES.from_row(r) for r in rows]

    def transition_lease(
        self: _Backend,
        lease_id: str,
        *,
        expected: Sequence[LeaseState],
        state: LeaseState,
        at: float,
        count_attempt: bool = False,
        error: str | None = None,
        next_attempt_at: float | None = None,
        end_reason: str | None = None,
    ) -> LeaseRecord | None:
        change = TransitionLease(
            lease_id,
            tuple(expected),
            state,
            at,
            count_attempt=count_attempt,
            error=error,
            next_attempt_at=next_attempt_at,
            end_reason=end_reason,
        )
        return self._write(lambda conn: transition(conn, change))
