"""The statements on the ``tasks`` table and the writes of tasks and their trees.

Each write is a function of a connection inside the write's transaction (READ
COMMITTED). A compare-and-set is one ``UPDATE ... WHERE ... RETURNING``: PostgreSQL
locks the row and checks the condition again on its newest version, so of concurrent
spends expecting the same ``calls_used`` exactly one wins. What changes a delegation
tree as a whole (adding a child, ending, expiring, suspending or resuming a tree,
raising ``touched`` across it) first takes the tree's lock (:func:`.locks.lock_tree`):
each statement after it sees every change of the tree committed before, so a child is
never added beside an end or a raise that misses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import errors

from zerolane.errors import Conflict
from zerolane.store.postgres.connection import Conn, all_rows, first_row
from zerolane.store.postgres.locks import lock_tree
from zerolane.store.postgres.rows import insert, record, record_or_none
from zerolane.store.records import TaskRecord
from zerolane.store.sqlite.tables import TASKS
from zerolane.types import TaskState

_COLUMNS = TASKS.columns_sql

INSERT_TASK = insert(TASKS)
GET_TASK = f"SELECT {_COLUMNS} FROM tasks WHERE task_id = %(t)s"  # noqa: S608
LIST_TASKS = (
    f"SELECT {_COLUMNS} FROM tasks "  # noqa: S608
    "WHERE (%(o)s::text IS NULL OR owner = %(o)s) AND (%(s)s::text IS NULL OR state = %(s)s) "
    "ORDER BY created_at DESC, task_id DESC LIMIT %(n)s"
)
CHILDREN = (
    f"SELECT {_COLUMNS} FROM tasks WHERE parent_id = %(p)s "  # noqa: S608
    "ORDER BY created_at, task_id"
)
_END_TASK = (
    "UPDATE tasks SET state = %(s)s, ended_at = %(at)s, end_reason = %(r)s "  # noqa: S608
    "WHERE task_id = %(t)s AND state IN ('active', 'suspended') "
    f"RETURNING {_COLUMNS}"
)
_SPEND_CALL = (
    "UPDATE tasks SET calls_used = calls_used + 1, "  # noqa: S608
    "touched = GREATEST(touched, %(touched)s) "
    "WHERE task_id = %(t)s AND state = 'active' AND calls_used = %(expected)s "
    "AND (%(max)s::bigint IS NULL OR max_calls = %(max)s) "
    "AND (%(et)s::integer IS NULL OR touched = %(et)s) "
    "AND calls_used < max_calls AND expires_at > %(now)s "
    f"RETURNING {_COLUMNS}"
)
_CARVE_PARENT = (
    "UPDATE tasks SET max_calls = max_calls - %(calls)s "  # noqa: S608
    "WHERE task_id = %(p)s AND state = 'active' AND expires_at > %(now)s "
    "AND expires_at >= %(child_expires)s AND max_calls - calls_used >= %(calls)s "
    f"RETURNING {_COLUMNS}"
)
#: every task below %(t)s (children, their children...); UNION, so even a cycle ends
_DESCENDANTS = (
    "WITH RECURSIVE tree(id) AS ("
    "SELECT task_id FROM tasks WHERE parent_id = %(t)s "
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id) "
)
_END_DESCENDANTS = (
    f"{_DESCENDANTS}UPDATE tasks SET state = 'revoked', ended_at = %(at)s, "  # noqa: S608
    "end_reason = %(r)s "
    "WHERE task_id IN (SELECT id FROM tree) AND state IN ('active', 'suspended') "
    f"RETURNING {_COLUMNS}"
)
#: the whole tree %(t)s is in (from its root down) gets ``touched`` raised
_TAINT_TREE = (
    "WITH RECURSIVE up(id, parent) AS ("
    "SELECT task_id, parent_id FROM tasks WHERE task_id = %(t)s "
    "UNION SELECT tasks.task_id, tasks.parent_id FROM tasks JOIN up ON tasks.task_id = up.parent"
    "), down(id) AS ("
    "SELECT id FROM up WHERE parent IS NULL "
    "UNION SELECT tasks.task_id FROM tasks JOIN down ON tasks.parent_id = down.id) "
    "UPDATE tasks SET touched = %(touched)s "
    "WHERE task_id IN (SELECT id FROM down) AND touched < %(touched)s"
)
_EXPIRE_TREE = (
    "WITH RECURSIVE tree(id) AS (SELECT %(t)s::text "  # noqa: S608
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id) "
    "UPDATE tasks SET state = 'expired', ended_at = expires_at, "
    "end_reason = 'expired' "
    "WHERE task_id IN (SELECT id FROM tree) AND state IN ('active', 'suspended') "
    f"AND expires_at <= %(at)s RETURNING {_COLUMNS}"
)
_SUSPEND_ROOT = (
    "UPDATE tasks SET state = 'suspended', end_reason = %(r)s "  # noqa: S608
    "WHERE task_id = %(t)s AND state = 'active' AND expires_at > %(at)s "
    f"RETURNING {_COLUMNS}"
)
_SUSPEND_DESCENDANTS = (
    f"{_DESCENDANTS}UPDATE tasks SET state = 'suspended', end_reason = %(r)s "  # noqa: S608
    "WHERE task_id IN (SELECT id FROM tree) AND state = 'active' AND expires_at > %(at)s "
    f"RETURNING {_COLUMNS}"
)
_RESUME_ROOT = (
    "UPDATE tasks SET state = 'active', end_reason = NULL "  # noqa: S608
    "WHERE task_id = %(t)s AND state = 'suspended' AND expires_at > %(at)s "
    "AND (parent_id IS NULL OR EXISTS (SELECT 1 FROM tasks AS p "
    "WHERE p.task_id = tasks.parent_id AND p.state = 'active')) "
    f"RETURNING {_COLUMNS}"
)
_RESUME_DESCENDANTS = (
    "WITH RECURSIVE tree(id) AS ("  # noqa: S608
    "SELECT task_id FROM tasks WHERE parent_id = %(t)s AND state = 'suspended' "
    "AND end_reason = %(r)s "
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id "
    "WHERE tasks.state = 'suspended' AND tasks.end_reason = %(r)s) "
    "UPDATE tasks SET state = 'active', end_reason = NULL "
    "WHERE task_id IN (SELECT id FROM tree) AND expires_at > %(at)s "
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


def spend(conn: Conn, params: dict[str, Any]) -> TaskRecord | None:
    """The spend's compare-and-set. When it may raise ``touched`` (above the expected
    value, or none expected) the tree's lock is taken first and the rest of the tree is
    raised with it; a spend that raises nothing locks its own row only."""
    expected = params["et"]
    may_raise = expected is None or params["touched"] > expected
    if may_raise:
        lock_tree(conn, params["t"])
    row = first_row(conn, _SPEND_CALL, params)
    if row is None:
        return None
    spent = record(TASKS, row)
    if may_raise and (expected is None or spent.touched > expected):
        conn.execute(_TAINT_TREE, {"t": spent.task_id, "touched": spent.touched})
    return spent


def add_task(conn: Conn, task: TaskRecord) -> None:
    try:
        conn.execute(INSERT_TASK, TASKS.values(task))
    except errors.UniqueViolation as err:
        raise Conflict("task.exists", f"task {task.task_id} exists") from err


def add_child(conn: Conn, child: TaskRecord, now: float) -> TaskRecord | None:
    """Carve the child's budget out of its parent and insert the child; the parent as
    carved, or None (nothing written) when the parent cannot give it."""
    if child.parent_id is None:
        return None
    lock_tree(conn, child.parent_id)
    carve = {
        "p": child.parent_id,
        "calls": child.max_calls,
        "now": now,
        "child_expires": child.expires_at,
    }
    row = first_row(conn, _CARVE_PARENT, carve)
    if row is None:
        return None
    parent = record(TASKS, row)
    values = TASKS.values(child)
    try:  # the child inherits what the parent has read, as of this write
        conn.execute(INSERT_TASK, values | {"touched": max(child.touched, parent.touched)})
    except errors.UniqueViolation as err:  # the transaction rolls the carve back too
        raise Conflict("task.exists", f"task {child.task_id} exists") from err
    return parent


def end_task(
    conn: Conn, task_id: str, state: TaskState, at: float, reason: str
) -> TaskRecord | None:
    params = {"s": state.value, "at": at, "r": reason, "t": task_id}
    return record_or_none(TASKS, first_row(conn, _END_TASK, params))


def end_tree(
    conn: Conn, task_id: str, state: TaskState, at: float, reason: str, below: str
) -> list[TaskRecord]:
    lock_tree(conn, task_id)
    root = end_task(conn, task_id, state, at, reason)
    rows = all_rows(conn, _END_DESCENDANTS, {"at": at, "r": below, "t": task_id})
    ended = [root] if root is not None else []
    return ended + _by_depth(record(TASKS, r) for r in rows)


def expire_tree(conn: Conn, task_id: str, at: float) -> list[TaskRecord]:
    lock_tree(conn, task_id)
    expired = [record(TASKS, r) for r in all_rows(conn, _EXPIRE_TREE, {"t": task_id, "at": at})]
    root = [t for t in expired if t.task_id == task_id]
    return root + _by_depth(t for t in expired if t.task_id != task_id)


def suspend_tree(conn: Conn, task_id: str, at: float, reason: str, below: str) -> list[TaskRecord]:
    lock_tree(conn, task_id)
    root = first_row(conn, _SUSPEND_ROOT, {"t": task_id, "at": at, "r": reason})
    if root is None:
        return []
    rows = all_rows(conn, _SUSPEND_DESCENDANTS, {"t": task_id, "at": at, "r": below})
    return [record(TASKS, root), *_by_depth(record(TASKS, r) for r in rows)]


def resume_tree(conn: Conn, task_id: str, at: float, below: str) -> list[TaskRecord]:
    lock_tree(conn, task_id)
    root = first_row(conn, _RESUME_ROOT, {"t": task_id, "at": at})
    if root is None:
        return []
    rows = all_rows(conn, _RESUME_DESCENDANTS, {"t": task_id, "at": at, "r": below})
    return [record(TASKS, root), *_by_depth(record(TASKS, r) for r in rows)]


def _by_depth(tasks: Iterable[TaskRecord]) -> list[TaskRecord]:
    return sorted(tasks, key=lambda t: (t.depth, t.created_at, t.task_id))
