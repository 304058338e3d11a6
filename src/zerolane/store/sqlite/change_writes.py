"""The write of each change (:mod:`zerolane.store.changes`) in SQLite.

The port's write methods run them alone, ``write_recorded`` with the append of their
audit events; each is a function of the writer's connection (a
:data:`~zerolane.store.sqlite.group_commit.WriteOp`).
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

from zerolane.errors import Conflict
from zerolane.store.changes import (
    AddAdminCredential,
    AddChildTask,
    AddEnforcementPoint,
    AddJoinToken,
    AddTask,
    AddWorkload,
    AdvanceCursors,
    Change,
    ClearHold,
    ConsumeJoinToken,
    DecideApproval,
    EndTree,
    ExpireTree,
    PlaceHold,
    PruneApprovals,
    PutBundle,
    PutPlaybook,
    RemoveEnforcementPoint,
    RequestApproval,
    ResumeTree,
    SetWorkloadStatus,
    SuspendTree,
    TransitionLease,
    UseApproval,
)
from zerolane.store.records import ConsumeResult, ConsumeStatus
from zerolane.store.sqlite.approvals import (
    clear_hold,
    decide_approval,
    place_hold,
    prune_approvals,
    request_approval,
    use_approval,
)
from zerolane.store.sqlite.connection import first_row
from zerolane.store.sqlite.detector_cursors import advance
from zerolane.store.sqlite.enforcement_points import add_point, remove_point
from zerolane.store.sqlite.group_commit import WriteOp
from zerolane.store.sqlite.leases import transition
from zerolane.store.sqlite.tables import (
    ADMIN_CREDENTIALS,
    FEDERATED_BUNDLES,
    JOIN_TOKENS,
    PLAYBOOKS,
    WORKLOADS,
)
from zerolane.store.sqlite.tasks import (
    add_child,
    add_task,
    end_tree,
    expire_tree,
    resume_tree,
    suspend_tree,
)

T = TypeVar("T")

_SET_WORKLOAD_STATUS = (
    "UPDATE workloads SET status = :st, updated_at = :at WHERE spiffe_id = :s "  # noqa: S608
    f"RETURNING {WORKLOADS.columns_sql}"
)
_CONSUME_JOIN_TOKEN = (
    "UPDATE join_tokens SET used_at = :now WHERE token_hash = :h "  # noqa: S608
    "AND used_at IS NULL AND expires_at > :now "
    f"RETURNING {JOIN_TOKENS.columns_sql}"
)
_GET_JOIN_TOKEN = f"SELECT {JOIN_TOKENS.columns_sql} FROM join_tokens WHERE token_hash = :h"  # noqa: S608
_PUT_BUNDLE = FEDERATED_BUNDLES.insert(
    " ON CONFLICT (trust_domain) DO UPDATE SET bundle_json = excluded.bundle_json, "
    "sequence = excluded.sequence, updated_at = excluded.updated_at"
)
_PUT_PLAYBOOK = PLAYBOOKS.insert(
    " ON CONFLICT (name) DO UPDATE SET document = excluded.document, "
    "version = excluded.version, updated_at = excluded.updated_at"
)


def change_key(change: Change[Any]) -> str | None:
    """The task a change writes (see ``GroupCommitWriter.settle``), if any."""
    match change:
        case AddChildTask(child, _):
            return child.parent_id
        case (
            EndTree(task_id=task_id)
            | ExpireTree(task_id=task_id)
            | SuspendTree(task_id=task_id)
            | ResumeTree(task_id=task_id)
        ):
            return task_id
    return None


def change_op(change: Change[T]) -> WriteOp[T]:
    """The write of ``change``: a function of the writer's connection."""

    def op(conn: sqlite3.Connection) -> Any:
        match change:
            case TransitionLease():
                return transition(conn, change)
            case AddTask(task):
                return add_task(conn, task)
            case AddChildTask(child, now):
                return add_child(conn, child, now)
            case EndTree(task_id, state, at, reason, below):
                return end_tree(conn, task_id, state, at, reason, below)
            case ExpireTree(task_id, at):
                return expire_tree(conn, task_id, at)
            case SuspendTree(task_id, at, reason, below):
                return suspend_tree(conn, task_id, at, reason, below)
            case ResumeTree(task_id, at, below):
                return resume_tree(conn, task_id, at, below)
            case AddWorkload(workload):
                conflict = ("workload.exists", f"{workload.spiffe_id} is already registered")
                return _insert(conn, WORKLOADS.insert(), WORKLOADS.values(workload), conflict)
            case SetWorkloadStatus(spiffe_id, status, at):
                params = {"st": status.value, "at": at, "s": spiffe_id}
                return WORKLOADS.from_row_or_none(first_row(conn, _SET_WORKLOAD_STATUS, params))
            case AddJoinToken(token):
                conflict = ("join_token.exists", "a join token with this hash exists")
                return _insert(conn, JOIN_TOKENS.insert(), JOIN_TOKENS.values(token), conflict)
            case ConsumeJoinToken(token_hash, now):
                return _consume_join_token(conn, token_hash, now)
            case PutBundle(bundle):
                conn.execute(_PUT_BUNDLE, FEDERATED_BUNDLES.values(bundle))
                return None
            case AddAdminCredential(credential):
                conn.execute(ADMIN_CREDENTIALS.insert(), ADMIN_CREDENTIALS.values(credential))
                return None
            case PutPlaybook(playbook):
                conn.execute(_PUT_PLAYBOOK, PLAYBOOKS.values(playbook))
                return None
            case AddEnforcementPoint():
                return add_point(conn, change)
            case RemoveEnforcementPoint():
                return remove_point(conn, change)
            case AdvanceCursors():
                return advance(conn, change)
            case RequestApproval():
                return request_approval(conn, change)
            case DecideApproval():
                return decide_approval(conn, change)
            case UseApproval():
                return use_approval(conn, change)
            case PruneApprovals():
                return prune_approvals(conn, change)
            case PlaceHold():
                return place_hold(conn, change)
            case ClearHold():
                return clear_hold(conn, change)
        raise TypeError(f"unknown change {type(change).__name__}")

    return op


def _insert(
    conn: sqlite3.Connection, sql: str, params: dict[str, Any], conflict: tuple[str, str]
) -> None:
    """Insert one row; a unique constraint violation is ``Conflict(*conflict)``."""
    try:
        conn.execute(sql, params)
    except sqlite3.IntegrityError as err:
        raise Conflict(*conflict) from err


def _consume_join_token(conn: sqlite3.Connection, token_hash: str, now: float) -> ConsumeResult:
    consumed = first_row(conn, _CONSUME_JOIN_TOKEN, {"now": now, "h": token_hash})
    if consumed is not None:
        return ConsumeResult(ConsumeStatus.CONSUMED, JOIN_TOKENS.from_row(consumed))
    row = first_row(conn, _GET_JOIN_TOKEN, {"h": token_hash})
    if row is None:
        return ConsumeResult(ConsumeStatus.UNKNOWN, None)
    token = JOIN_TOKENS.from_row(row)
    if token.used_at is not None:
        return ConsumeResult(ConsumeStatus.ALREADY_USED, token)
    return ConsumeResult(ConsumeStatus.EXPIRED, token)
