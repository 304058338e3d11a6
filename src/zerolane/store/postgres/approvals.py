"""Approvals and task holds in PostgreSQL: the writes (run by ``write_recorded`` in the
transaction that appends their audit events) and the reads, a mixin over
:class:`zerolane.store.postgres.PostgresStores`'s ``_read``.

Asking for an approval reads (an open one of the same request? how many pending?) then
inserts: it takes the lock of the task's approvals first (:data:`.locks.APPROVALS`), so
concurrent askers of one task, in any process, are answered one after the other.
Deciding and using one are compare-and-set ``UPDATE``s.
"""

from __future__ import annotations

from typing import Any, Protocol

from psycopg import errors
from psycopg.rows import DictRow

from zerolane.errors import Conflict
from zerolane.store.changes import (
    ClearHold,
    DecideApproval,
    PlaceHold,
    PruneApprovals,
    RequestApproval,
    UseApproval,
)
from zerolane.store.postgres import locks
from zerolane.store.postgres.connection import Conn, first_row
from zerolane.store.postgres.rows import insert, record, record_or_none
from zerolane.store.records import ApprovalRecord, ApprovalStatus, TaskHold
from zerolane.store.sqlite.tables import APPROVALS, TASK_HOLDS

_COLUMNS = APPROVALS.columns_sql
_SAME = (
    "task_id = %(t)s AND action = %(a)s AND resource = %(r)s AND destination = %(d)s "
    "AND digest = %(g)s AND policy_version = %(v)s AND policies = %(p)s"
)
_GET = f"SELECT {_COLUMNS} FROM approvals WHERE approval_id = %(id)s"  # noqa: S608
_FIND_APPROVED = (
    f"SELECT {_COLUMNS} FROM approvals WHERE {_SAME} "  # noqa: S608
    "AND status = 'approved' AND expires_at > %(now)s ORDER BY created_at, approval_id LIMIT 1"
)
_FIND_ASKED = (
    f"SELECT {_COLUMNS} FROM approvals WHERE {_SAME} "  # noqa: S608
    "AND status IN ('pending', 'denied') AND expires_at > %(now)s "
    "ORDER BY created_at, approval_id LIMIT 1"
)
_COUNT_PENDING = (
    "SELECT count(*) AS n FROM approvals "
    "WHERE task_id = %(t)s AND status = 'pending' AND expires_at > %(now)s"
)
_DECIDE = (
    "UPDATE approvals SET status = %(s)s, approver = %(who)s, reason = %(why)s, "  # noqa: S608
    "decided_at = %(at)s WHERE approval_id = %(id)s AND status = 'pending' "
    f"AND expires_at > %(at)s RETURNING {_COLUMNS}"
)
_USE = (
    "UPDATE approvals SET status = 'used', used_at = %(at)s "  # noqa: S608
    "WHERE approval_id = %(id)s AND status = 'approved' AND expires_at > %(at)s "
    f"RETURNING {_COLUMNS}"
)
_PRUNE = (
    "DELETE FROM approvals WHERE approval_id IN (SELECT approval_id FROM approvals "
    "WHERE expires_at < %(before)s ORDER BY expires_at LIMIT %(n)s)"
)
_HOLDS = TASK_HOLDS.columns_sql
_GET_HOLD = f"SELECT {_HOLDS} FROM task_holds WHERE task_id = %(t)s"  # noqa: S608
_LIST_HOLDS = f"SELECT {_HOLDS} FROM task_holds ORDER BY created_at, task_id LIMIT %(n)s"  # noqa: S608
_PLACE_HOLD = insert(TASK_HOLDS, f" ON CONFLICT (task_id) DO NOTHING RETURNING {_HOLDS}")
_CLEAR_HOLD = f"DELETE FROM task_holds WHERE task_id = %(t)s RETURNING {_HOLDS}"  # noqa: S608


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


def request_approval(conn: Conn, change: RequestApproval) -> ApprovalRecord:
    asked = change.approval
    now = asked.created_at
    locks.lock(conn, locks.APPROVALS, asked.task_id)
    found = first_row(conn, _FIND_ASKED, _same(asked, now))
    if found is not None:
        return record(APPROVALS, found)
    counted = first_row(conn, _COUNT_PENDING, {"t": asked.task_id, "now": now})
    pending = int(counted["n"]) if counted is not None else 0
    if pending >= change.max_pending:
        raise Conflict(
            "approval.too_many", f"task {asked.task_id} has {pending} approvals pending already"
        )
    try:
        conn.execute(insert(APPROVALS), APPROVALS.values(asked))
    except errors.UniqueViolation as err:
        raise Conflict("approval.exists", f"approval {asked.approval_id} exists") from err
    return asked


def decide_approval(conn: Conn, change: DecideApproval) -> ApprovalRecord | None:
    params = {
        "s": change.status.value,
        "who": change.approver,
        "why": change.reason,
        "at": change.at,
        "id": change.approval_id,
    }
    return record_or_none(APPROVALS, first_row(conn, _DECIDE, params))


def use_approval(conn: Conn, change: UseApproval) -> ApprovalRecord | None:
    params = {"at": change.at, "id": change.approval_id}
    return record_or_none(APPROVALS, first_row(conn, _USE, params))


def prune_approvals(conn: Conn, change: PruneApprovals) -> int:
    return conn.execute(_PRUNE, {"before": change.before, "n": change.limit}).rowcount


def place_hold(conn: Conn, change: PlaceHold) -> TaskHold | None:
    return record_or_none(TASK_HOLDS, first_row(conn, _PLACE_HOLD, TASK_HOLDS.values(change.hold)))


def clear_hold(conn: Conn, change: ClearHold) -> TaskHold | None:
    return record_or_none(TASK_HOLDS, first_row(conn, _CLEAR_HOLD, {"t": change.task_id}))


class _Backend(Protocol):
    def _read(self, sql: str, **params: Any) -> list[DictRow]: ...


class PostgresApprovals:
    def get_approval(self: _Backend, approval_id: str) -> ApprovalRecord | None:
        rows = self._read(_GET, id=approval_id)
        return record(APPROVALS, rows[0]) if rows else None

    def list_approvals(
        self: _Backend,
        *,
        task_id: str | None = None,
        status: ApprovalStatus | None = None,
        limit: int = 100,
    ) -> list[ApprovalRecord]:
        sql = (
            f"SELECT {_COLUMNS} FROM approvals "  # noqa: S608
            "WHERE (%(t)s::text IS NULL OR task_id = %(t)s) "
            "AND (%(s)s::text IS NULL OR status = %(s)s) "
            "ORDER BY created_at DESC, approval_id DESC LIMIT %(n)s"
        )
        rows = self._read(sql, t=task_id, s=status.value if status else None, n=limit)
        return [record(APPROVALS, row) for row in rows]

    def find_approved(self: _Backend, request: ApprovalRecord, now: float) -> ApprovalRecord | None:
        rows = self._read(_FIND_APPROVED, **_same(request, now))
        return record(APPROVALS, rows[0]) if rows else None

    def get_hold(self: _Backend, task_id: str) -> TaskHold | None:
        rows = self._read(_GET_HOLD, t=task_id)
        return record(TASK_HOLDS, rows[0]) if rows else None

    def list_holds(self: _Backend, limit: int = 10_000) -> list[TaskHold]:
        return [record(TASK_HOLDS, row) for row in self._read(_LIST_HOLDS, n=limit)]
