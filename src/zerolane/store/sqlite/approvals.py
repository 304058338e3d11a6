"""SQLite approvals (migrations 8 and 9) and task holds (migration 9), composed into
:class:`zerolane.store.sqlite.SqliteStores` (a mixin over its ``_read``). They change
only through ``write_recorded`` (:class:`~zerolane.store.changes.RequestApproval`,
``DecideApproval``, ``UseApproval``, ``PruneApprovals``, ``PlaceHold``, ``ClearHold``),
in the transaction that appends their audit events; the writer's one transaction at a
time makes each read-then-write below atomic."""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from zerolane.errors import Conflict
from zerolane.store.changes import (
    ClearHold,
    DecideApproval,
    PlaceHold,
    PruneApprovals,
    RequestApproval,
    UseApproval,
)
from zerolane.store.records import ApprovalRecord, ApprovalStatus, TaskHold
from zerolane.store.sqlite.connection import first_row
from zerolane.store.sqlite.tables import APPROVALS, TASK_HOLDS

_COLUMNS = APPROVALS.columns_sql
_SAME = (
    "task_id = :t AND action = :a AND resource = :r AND destination = :d "
    "AND digest = :g AND policy_version = :v AND policies = :p"
)
_GET = f"SELECT {_COLUMNS} FROM approvals WHERE approval_id = :id"  # noqa: S608
_FIND_APPROVED = (
    f"SELECT {_COLUMNS} FROM approvals WHERE {_SAME} "  # noqa: S608
    "AND status = 'approved' AND expires_at > :now ORDER BY created_at, approval_id LIMIT 1"
)
_FIND_ASKED = (
    f"SELECT {_COLUMNS} FROM approvals WHERE {_SAME} "  # noqa: S608
    "AND status IN ('pending', 'denied') AND expires_at > :now "
    "ORDER BY created_at, approval_id LIMIT 1"
)
_COUNT_PENDING = (
    "SELECT count(*) FROM approvals WHERE task_id = :t AND status = 'pending' AND expires_at > :now"
)
_DECIDE = (
    "UPDATE approvals SET status = :s, approver = :who, reason = :why, decided_at = :at "  # noqa: S608
    "WHERE approval_id = :id AND status = 'pending' AND expires_at > :at "
    f"RETURNING {_COLUMNS}"
)
_USE = (
    "UPDATE approvals SET status = 'used', used_at = :at "  # noqa: S608
    "WHERE approval_id = :id AND status = 'approved' AND expires_at > :at "
    f"RETURNING {_COLUMNS}"
)

_PRUNE = (
    "DELETE FROM approvals WHERE approval_id IN (SELECT approval_id FROM approvals "
    "WHERE expires_at < :before ORDER BY expires_at LIMIT :n)"
)
_HOLDS = TASK_HOLDS.columns_sql
_GET_HOLD = f"SELECT {_HOLDS} FROM task_holds WHERE task_id = :t"  # noqa: S608
_LIST_HOLDS = f"SELECT {_HOLDS} FROM task_holds ORDER BY created_at, task_id LIMIT :n"  # noqa: S608
_PLACE_HOLD = TASK_HOLDS.insert(f" ON CONFLICT (task_id) DO NOTHING RETURNING {_HOLDS}")
_CLEAR_HOLD = f"DELETE FROM task_holds WHERE task_id = :t RETURNING {_HOLDS}"  # noqa: S608


def _same(approval: ApprovalRecord, now: float) -> dict[str, Any]:
    return {
        "t": approval.task_id,
        "a": approval.action,
        "r": approval.resource,
        "d": approval.destination,
        "g": approval.digest,
        "v": approval.policy_version,
        "p": APPROVALS.values(approval)["policies"],  # as stored (JSON text)
        "now": now,
    }


def request_approval(conn: sqlite3.Connection, change: RequestApproval) -> ApprovalRecord:
    asked = change.approval
    now = asked.created_at
    found = first_row(conn, _FIND_ASKED, _same(asked, now))
    if found is not None:
        return APPROVALS.from_row(found)
    pending = int(conn.execute(_COUNT_PENDING, {"t": asked.task_id, "now": now}).fetchone()[0])
    if pending >= change.max_pending:
        raise Conflict(
            "approval.too_many", f"task {asked.task_id} has {pending} approvals pending already"
        )
    try:
        conn.execute(APPROVALS.insert(), APPROVALS.values(asked))
    except sqlite3.IntegrityError as err:
        raise Conflict("approval.exists", f"approval {asked.approval_id} exists") from err
    return asked


def decide_approval(conn: sqlite3.Connection, change: DecideApproval) -> ApprovalRecord | None:
    params = {
        "s": change.status.value,
        "who": change.approver,
        "why": change.reason,
        "at": change.at,
        "id": change.approval_id,
    }
    return APPROVALS.from_row_or_none(first_row(conn, _DECIDE, params))


def use_approval(conn: sqlite3.Connection, change: UseApproval) -> ApprovalRecord | None:
    params = {"at": change.at, "id": change.approval_id}
    return APPROVALS.from_row_or_none(first_row(conn, _USE, params))


def prune_approvals(conn: sqlite3.Connection, change: PruneApprovals) -> int:
    return conn.execute(_PRUNE, {"before": change.before, "n": change.limit}).rowcount


def place_hold(conn: sqlite3.Connection, change: PlaceHold) -> TaskHold | None:
    return TASK_HOLDS.from_row_or_none(first_row(conn, _PLACE_HOLD, TASK_HOLDS.values(change.hold)))


def clear_hold(conn: sqlite3.Connection, change: ClearHold) -> TaskHold | None:
    return TASK_HOLDS.from_row_or_none(first_row(conn, _CLEAR_HOLD, {"t": change.task_id}))


class _Backend(Protocol):
    def _read(self, sql: str, **params: Any) -> list[sqlite3.Row]: ...


class SqliteApprovals:
    def get_approval(self: _Backend, approval_id: str) -> ApprovalRecord | None:
        rows = self._read(_GET, id=approval_id)
        return APPROVALS.from_row(rows[0]) if rows else None

    def list_approvals(
        self: _Backend,
        *,
        task_id: str | None = None,
        status: ApprovalStatus | None = None,
        limit: int = 100,
    ) -> list[ApprovalRecord]:
        where = ["1 = 1"]
        if task_id is not None:
            where.append("task_id = :t")
        if status is not None:
            where.append("status = :s")
        sql = (
            f"SELECT {_COLUMNS} FROM approvals WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY created_at DESC, approval_id DESC LIMIT :n"
        )
        rows = self._read(sql, t=task_id, s=status.value if status else None, n=limit)
        return [APPROVALS.from_row(row) for row in rows]

    def find_approved(self: _Backend, request: ApprovalRecord, now: float) -> ApprovalRecord | None:
        rows = self._read(_FIND_APPROVED, **_same(request, now))
        return APPROVALS.from_row(rows[0]) if rows else None

    def get_hold(self: _Backend, task_id: str) -> TaskHold | None:
        rows = self._read(_GET_HOLD, t=task_id)
        return TASK_HOLDS.from_row(rows[0]) if rows else None

    def list_holds(self: _Backend, limit: int = 10_000) -> list[TaskHold]:
        return [TASK_HOLDS.from_row(row) for row in self._read(_LIST_HOLDS, n=limit)]
