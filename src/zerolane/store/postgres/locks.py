"""Transaction-level advisory locks: what many processes over one database take in turn.

Each lock is ``pg_advisory_xact_lock(class, key)``: held until the transaction ends
(commit or rollback), never leaked by a process that dies. The key hashes the schema
the connection works in (``current_schema()``), so deployments in separate schemas of
one database never wait for each other. Locks are always taken in this order, so no
two transactions wait for each other in a cycle: a tree's lock first, then task rows,
then spent proofs, the audit chain's head last.
"""

from __future__ import annotations

from zerolane.store.postgres.connection import Conn

#: the migrations of one schema (:mod:`.migrations`)
MIGRATIONS = 0x7A6C0001
#: the audit chain's head (:mod:`.audit`)
AUDIT_HEAD = 0x7A6C0002
#: one delegation tree, by its root task (:mod:`.tasks`)
TREE = 0x7A6C0003
#: the detector cursors (:mod:`.change_writes`)
CURSORS = 0x7A6C0004
#: the approvals of one task (:mod:`.approvals`)
APPROVALS = 0x7A6C0005

_SCHEMA = "coalesce(current_schema(), '')"
_LOCK = f"SELECT pg_advisory_xact_lock(%(c)s, hashtext({_SCHEMA} || '/' || %(k)s))"
_LOCK_TREE = (
    "WITH RECURSIVE up(id, parent) AS ("  # noqa: S608 (constants only)
    "SELECT task_id, parent_id FROM tasks WHERE task_id = %(k)s "
    "UNION SELECT tasks.task_id, tasks.parent_id FROM tasks JOIN up ON tasks.task_id = up.parent) "
    f"SELECT pg_advisory_xact_lock(%(c)s, hashtext({_SCHEMA} || '/' || "
    "coalesce((SELECT id FROM up WHERE parent IS NULL LIMIT 1), %(k)s)))"
)


def lock(conn: Conn, kind: int, key: str = "") -> None:
    """Wait for the lock ``(kind, key)`` of this schema; held until the transaction ends."""
    conn.execute(_LOCK, {"c": kind, "k": key}).fetchall()


def lock_tree(conn: Conn, task_id: str) -> None:
    """Wait for the lock of the delegation tree ``task_id`` is in (keyed by its root,
    which never changes: a task's parent is set once)."""
    conn.execute(_LOCK_TREE, {"c": TREE, "k": task_id}).fetchall()
