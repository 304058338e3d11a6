"""The statements on the ``tasks`` table and the writes of tasks and their trees.

Each write is a function of the writer's connection, run inside a batch's transaction
(:mod:`.group_commit`). The spend is on every allowed request's path: one
compare-and-set ``UPDATE ... RETURNING`` (and, when it raised ``touched``, the raise
of the rest of the task's delegation tree).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from zerolane.errors import Conflict
from zerolane.store.records import TaskRecord
from zerolane.store.sqlite.connection import all_rows, first_row
from zerolane.store.sqlite.tables import TASKS
from zerolane.types import TaskState

_COLUMNS = TASKS.columns_sql

INSERT_TASK = TASKS.insert()
GET_TASK = f"SELECT {_COLUMNS} FROM tasks WHERE task_id = :t"  # noqa: S608
LIST_TASKS = (
    f"SELECT {_COLUMNS} FROM tasks "  # noqa: S608
    "WHERE (:o IS NULL OR owner = :o) AND (:s IS NULL OR state = :s) "
    "ORDER BY created_at DESC, task_id DESC LIMIT :n"
)
CHILDREN = (
    f"SELECT {_COLUMNS} FROM tasks WHERE parent_id = :p "  # noqa: S608
    "ORDER BY created_at, task_id"
)
END_TASK = (
    "UPDATE tasks SET state = :s, ended_at = :at, end_reason = :r "  # noqa: S608
    "WHERE task_id = :t AND state IN ('active', 'suspended') "
    f"RETURNING {_COLUMNS}"
)
_SPEND_CALL = (
    "UPDATE tasks SET calls_used = calls_used + 1, "  # noqa: S608
    "touched = CASE WHEN touched < :touched THEN :touched ELSE touched END "
    "WHERE task_id = :t AND state = 'active' AND calls_used = :expected "
    "AND (:max IS NULL OR max_calls = :max) AND (:et IS NULL OR touched = :et) "
    "AND calls_used < max_calls AND expires_at > :now "
    f"RETURNING {_COLUMNS}"
)
_CARVE_PARENT = (
    "UPDATE tasks SET max_calls = max_calls - :calls "  # noqa: S608
    "WHERE task_id = :p AND state = 'active' AND expires_at > :now "
    "AND expires_at >= :child_expires AND max_calls - calls_used >= :calls "
    f"RETURNING {_COLUMNS}"
)
#: every task below :t (children, their children...); UNION, so even a cycle ends
_DESCENDANTS = (
    "WITH RECURSIVE tree(id) AS ("
    "SELECT task_id FROM tasks WHERE parent_id = :t "
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id) "
)
_END_DESCENDANTS = (
    f"{_DESCENDANTS}UPDATE tasks SET state = 'revoked', ended_at = :at, "  # noqa: S608
    "end_reason = :r "
    "WHERE task_id IN (SELECT id FROM tree) AND state IN ('active', 'suspended') "
    f"RETURNING {_COLUMNS}"
)
#: the whole tree :t is in (from its root down) gets ``touched`` raised to :touched
_TAINT_TREE = (
    "WITH RECURSIVE up(id, parent) AS ("
    "SELECT task_id, parent_id FROM tasks WHERE task_id = :t "
    "UNION SELECT tasks.task_id, tasks.parent_id FROM tasks JOIN up ON tasks.task_id = up.parent"
    "), down(id) AS ("
    "SELECT id FROM up WHERE parent IS NULL "
    "UNION SELECT tasks.task_id FROM tasks JOIN down ON tasks.parent_id = down.id) "
    "UPDATE tasks SET touched = :touched "
    "WHERE task_id IN (SELECT id FROM down) AND touched < :touched"
)
#: :t and every task below it whose window is over at :at (see ``ExpireTree``)
_EXPIRE_TREE = (
    "WITH RECURSIVE tree(id) AS (SELECT :t "  # noqa: S608
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id) "
    "UPDATE tasks SET state = 'expired', ended_at = expires_at, "
    "end_reason = 'expired' "
    "WHERE task_id IN (SELECT id FROM tree) AND state IN ('active', 'suspended') "
    f"AND expires_at <= :at RETURNING {_COLUMNS}"
)

#: suspend :t when it is active and unexpired at :at (see ``SuspendTree``)
_SUSPEND_ROOT = (
    "UPDATE tasks SET state = 'suspended', end_reason = :r "  # noqa: S608
    "WHERE task_id = :t AND state = 'active' AND expires_at > :at "
    f"RETURNING {_COLUMNS}"
)
_SUSPEND_DESCENDANTS = (
    f"{_DESCENDANTS}UPDATE tasks SET state = 'suspended', end_reason = :r "  # noqa: S608
    "WHERE task_id IN (SELECT id FROM tree) AND state = 'active' AND expires_at > :at "
    f"RETURNING {_COLUMNS}"
)
#: resume :t when it is suspended, unexpired at :at and its parent (if any) is active
_RESUME_ROOT = (
    "UPDATE tasks SET state = 'active', end_reason = NULL "  # noqa: S608
    "WHERE task_id = :t AND state = 'suspended' AND expires_at > :at "
    "AND (parent_id IS NULL OR EXISTS (SELECT 1 FROM tasks AS p "
    "WHERE p.task_id = tasks.parent_id AND p.state = 'active')) "
    f"RETURNING {_COLUMNS}"
)
#: the descendants suspended with :t: reached through tasks suspended with reason :r
_RESUME_DESCENDANTS = (
    "WITH RECURSIVE tree(id) AS ("  # noqa: S608
    "SELECT task_id FROM tasks WHERE parent_id = :t AND state = 'suspended' AND end_reason = :r "
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id "
    "WHERE tasks.state = 'suspended' AND tasks.end_reason = :r) "
    "UPDATE tasks SET state = 'active', end_reason = NULL "
    "WHERE task_id IN (SELECT id FROM tree) AND expires_at > :at "
    f"RETURNING {_COLUMNS}"
)


def spend_params(
    task_id: str,
    expected: int,
    touched: int,
    now: float,
    max_calls: int | None,
    expected_touched: int | None,
) -> dict[str, Any]:
    """The parameters of the spend's compare-and-set (see :func:`spend`)."""
    return {
        "t": task_id,
        "expected": expected,
        "touched": touched,
        "now": now,
        "max": max_calls,
        "et": expected_touched,
    }


def spend(conn: sqlite3.Connection, params: dict[str, Any]) -> TaskRecord | None:
    """The spend's compare-and-set; when it raised ``touched`` (or may have: no
    expected value given), the rest of the task's delegation tree is raised with it."""
    row = first_row(conn, _SPEND_CALL, params)
    if row is None:
        return None
    spent = TASKS.from_row(row)
    expected = params["et"]
    if expected is None or spent.touched > expected:
        conn.execute(_TAINT_TREE, {"t": spent.task_id, "touched": spent.touched})
    return spent


def add_task(conn: sqlite3.Connection, task: TaskRecord) -> None:
    try:
        conn.execute(INSERT_TASK, TASKS.values(task))
    except sqlite3.IntegrityError as err:
        raise Conflict("task.exists", f"task {task.task_id} exists") from err


def add_child(conn: sqlite3.Connection, child: TaskRecord, now: float) -> TaskRecord | None:
    """Carve the child's budget out of its parent and insert the child; the parent as
    carved, or None (nothing written) when the parent cannot give it."""
    if child.parent_id is None:
        return None
    carve = {
        "p": child.parent_id,
        "calls": child.max_calls,
        "now": now,
        "child_expires": child.expires_at,
    }
    row = first_row(conn, _CARVE_PARENT, carve)
    if row is None:
        return None
    parent = TASKS.from_row(row)
    values = TASKS.values(child)
    try:  # the child inherits what the parent has read, as of this write
        conn.execute(INSERT_TASK, values | {"touched": max(child.touched, parent.touched)})
    except sqlite3.IntegrityError as err:  # the op's savepoint rolls the carve back too
        raise Conflict("task.exists", f"task {child.task_id} exists") from err
    return parent


def end_task(
    conn: sqlite3.Connection, task_id: str, state: TaskState, at: float, reason: str
) -> TaskRecord | None:
    params = {"s": state.value, "at": at, "r": reason, "t": task_id}
    return TASKS.from_row_or_none(first_row(conn, END_TASK, params))


def end_tree(
    conn: sqlite3.Connection, task_id: str, state: TaskState, at: float, reason: str, below: str
) -> list[TaskRecord]:
    root = end_task(conn, task_id, state, at, reason)
    rows = all_rows(conn, _END_DESCENDANTS, {"at": at, "r": below, "t": task_id})
    ended = [root] if root is not None else []
    return ended + _by_depth(TASKS.from_row(r) for r in rows)


def expire_tree(conn: sqlite3.Connection, task_id: str, at: float) -> list[TaskRecord]:
    rows = all_rows(conn, _EXPIRE_TREE, {"t": task_id, "at": at})
    expired = [TASKS.from_row(r) for r in rows]
    root = [t for t in expired if t.task_id == task_id]
    return root + _by_depth(t for t in expired if t.task_id != task_id)


def suspend_tree(
    conn: sqlite3.Connection, task_id: str, at: float, reason: str, below: str
) -> list[TaskRecord]:
    root = first_row(conn, _SUSPEND_ROOT, {"t": task_id, "at": at, "r": reason})
    if root is None:
        return []
    rows = all_rows(conn, _SUSPEND_DESCENDANTS, {"t": task_id, "at": at, "r": below})
    return [TASKS.from_row(root), *_by_depth(TASKS.from_row(r) for r in rows)]


def resume_tree(conn: sqlite3.Connection, task_id: str, at: float, below: str) -> list[TaskRecord]:
    root = first_row(conn, _RESUME_ROOT, {"t": task_id, "at": at})
    if root is None:
        return []
    rows = all_rows(conn, _RESUME_DESCENDANTS, {"t": task_id, "at": at, "r": below})
    return [TASKS.from_row(root), *_by_depth(TASKS.from_row(r) for r in rows)]


def _by_depth(tasks: Iterable[TaskRecord]) -> list[TaskRecord]:
    return sorted(tasks, key=lambda t: (t.depth, t.created_at, t.task_id))
