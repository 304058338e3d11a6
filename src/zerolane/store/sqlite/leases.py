"""SQLite lease store (migration 3), composed into :class:`zerolane.store.sqlite.SqliteStores`.

A mixin: it uses the backend's ``_read`` / ``_write`` / ``_statement``, so its writes go
through the same group-committing writer as every other write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, bindparam, text

from zerolane.store.records import LeaseRecord, LeaseState
from zerolane.store.sqlite.group_commit import WriteOp

T = TypeVar("T")

_LEASE_COLUMNS = (
    "lease_id, task_id, broker, handle, state, created_at, expires_at, updated_at, "
    "attempts, last_error, next_attempt_at, end_reason"
)
_TRANSITION = text(
    "UPDATE leases SET state = :state, updated_at = :at, "  # noqa: S608
    "attempts = attempts + :inc, last_error = COALESCE(:error, last_error), "
    "next_attempt_at = :next, end_reason = COALESCE(:reason, end_reason) "
    "WHERE lease_id = :id AND state IN :expected "
    f"RETURNING {_LEASE_COLUMNS}"
).bindparams(bindparam("expected", expanding=True))


def _lease(row: Any) -> LeaseRecord:
    return LeaseRecord(
        lease_id=row.lease_id,
        task_id=row.task_id,
        broker=row.broker,
        handle=row.handle,
        state=LeaseState(row.state),
        created_at=row.created_at,
        expires_at=row.expires_at,
        updated_at=row.updated_at,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        end_reason=row.end_reason,
    )


class _Backend(Protocol):
    """What the lease methods use of :class:`~zerolane.store.sqlite.SqliteStores`."""

    def _read(self, sql: str, **params: Any) -> list[Any]: ...

    def _write(self, op: WriteOp[T], *, key: str | None = None) -> T: ...

    def _statement(
        self, sql: str, params: dict[str, Any], conflict: tuple[str, str] | None = None
    ) -> int: ...


class SqliteLeases:
    """Implements :class:`zerolane.store.ports.LeaseStore` on the backend it is mixed into
    (its methods take that backend, a :class:`_Backend`, as ``self``)."""

    def add_lease(self: _Backend, lease: LeaseRecord) -> None:
        self._statement(
            f"INSERT INTO leases ({_LEASE_COLUMNS}) VALUES (:lease_id, :task_id, "  # noqa: S608
            ":broker, :handle, :state, :created_at, :expires_at, :updated_at, :attempts, "
            ":last_error, :next_attempt_at, :end_reason)",
            lease.as_dict(),
            ("lease.exists", f"lease {lease.lease_id} exists"),
        )

    def get_lease(self: _Backend, lease_id: str) -> LeaseRecord | None:
        rows = self._read(
            f"SELECT {_LEASE_COLUMNS} FROM leases WHERE lease_id = :i",  # noqa: S608
            i=lease_id,
        )
        return _lease(rows[0]) if rows else None

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
            f"SELECT {_LEASE_COLUMNS} FROM leases "  # noqa: S608
            "WHERE (:t IS NULL OR task_id = :t) AND (:s IS NULL OR state = :s) "
            "AND (:due IS NULL OR (next_attempt_at IS NOT NULL AND next_attempt_at <= :due)) "
            "AND (:bc IS NULL OR created_at < :bc OR (created_at = :bc AND lease_id < :bi)) "
            "ORDER BY created_at DESC, lease_id DESC LIMIT :n",
            t=task_id,
            s=state.value if state is not None else None,
            due=due_before,
            bc=before[0] if before is not None else None,
            bi=before[1] if before is not None else None,
            n=limit,
        )
        return [_lease(r) for r in rows]

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
        if not expected:
            return None
        params = {
            "state": state.value,
            "at": at,
            "inc": 1 if count_attempt else 0,
            "error": error,
            "next": next_attempt_at,
            "reason": end_reason,
            "id": lease_id,
            "expected": [s.value for s in expected],
        }

        def op(conn: Connection) -> LeaseRecord | None:
            row = conn.execute(_TRANSITION, params).first()
            return _lease(row) if row is not None else None

        return self._write(op)
