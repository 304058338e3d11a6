"""The write of each change (:mod:`zerolane.store.changes`) in PostgreSQL: a function of
a connection inside the write's transaction. The port's write methods run one alone,
``write_recorded`` with the append of its audit events in the same transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from psycopg import errors

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
from zerolane.store.postgres import locks
from zerolane.store.postgres.approvals import (
    clear_hold,
    decide_approval,
    place_hold,
    prune_approvals,
    request_approval,
    use_approval,
)
from zerolane.store.postgres.connection import Conn, first_row
from zerolane.store.postgres.rows import insert, record, record_or_none
from zerolane.store.postgres.tasks import (
    add_child,
    add_task,
    end_tree,
    expire_tree,
    resume_tree,
    suspend_tree,
)
from zerolane.store.records import ConsumeResult, ConsumeStatus, EnforcementPoint, LeaseRecord
from zerolane.store.sqlite.tables import (
    ADMIN_CREDENTIALS,
    DETECTOR_CURSORS,
    ENFORCEMENT_POINTS,
    FEDERATED_BUNDLES,
    JOIN_TOKENS,
    LEASES,
    PLAYBOOKS,
    RISK_SCORES,
    WORKLOADS,
)

T = TypeVar("T")
#: a write: a function of a connection inside the write's transaction
WriteOp = Callable[[Conn], T]

_SET_WORKLOAD_STATUS = (
    "UPDATE workloads SET status = %(st)s, updated_at = %(at)s WHERE spiffe_id = %(s)s "  # noqa: S608
    f"RETURNING {WORKLOADS.columns_sql}"
)
_CONSUME_JOIN_TOKEN = (
    "UPDATE join_tokens SET used_at = %(now)s WHERE token_hash = %(h)s "  # noqa: S608
    "AND used_at IS NULL AND expires_at > %(now)s "
    f"RETURNING {JOIN_TOKENS.columns_sql}"
)
_GET_JOIN_TOKEN = f"SELECT {JOIN_TOKENS.columns_sql} FROM join_tokens WHERE token_hash = %(h)s"  # noqa: S608
_PUT_BUNDLE = insert(
    FEDERATED_BUNDLES,
    " ON CONFLICT (trust_domain) DO UPDATE SET bundle_json = excluded.bundle_json, "
    "sequence = excluded.sequence, updated_at = excluded.updated_at",
)
_PUT_PLAYBOOK = insert(
    PLAYBOOKS,
    " ON CONFLICT (name) DO UPDATE SET document = excluded.document, "
    "version = excluded.version, updated_at = excluded.updated_at",
)
_TRANSITION_LEASE = (
    "UPDATE leases SET state = %(state)s, updated_at = %(at)s, "  # noqa: S608
    "attempts = attempts + %(inc)s, last_error = COALESCE(%(error)s, last_error), "
    "next_attempt_at = %(next)s, end_reason = COALESCE(%(reason)s, end_reason) "
    "WHERE lease_id = %(id)s AND state = ANY(%(expected)s) "
    f"RETURNING {LEASES.columns_sql}"
)
_DELETE_POINT = (
    "DELETE FROM enforcement_points WHERE name = %(n)s "  # noqa: S608
    f"RETURNING {ENFORCEMENT_POINTS.columns_sql}"
)
_CURSOR_SEQ = "SELECT seq FROM detector_cursors WHERE detector = %(d)s"
_PUT_CURSOR = insert(
    DETECTOR_CURSORS,
    " ON CONFLICT (detector) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
    "updated_at = excluded.updated_at",
)
_PUT_SCORE = insert(
    RISK_SCORES,
    " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, at = excluded.at, "
    "forget_at = excluded.forget_at, version = excluded.version",
)
_FORGET_SCORES = "DELETE FROM risk_scores WHERE forget_at < %(before)s"


def change_op(change: Change[T]) -> WriteOp[T]:
    """The write of ``change``: a function of a connection inside a transaction."""

    def op(conn: Conn) -> Any:
        match change:
            case TransitionLease():
                return _transition_lease(conn, change)
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
                return _insert(conn, insert(WORKLOADS), WORKLOADS.values(workload), conflict)
            case SetWorkloadStatus(spiffe_id, status, at):
                params = {"st": status.value, "at": at, "s": spiffe_id}
                return record_or_none(WORKLOADS, first_row(conn, _SET_WORKLOAD_STATUS, params))
            case AddJoinToken(token):
                conflict = ("join_token.exists", "a join token with this hash exists")
                return _insert(conn, insert(JOIN_TOKENS), JOIN_TOKENS.values(token), conflict)
            case ConsumeJoinToken(token_hash, now):
                return _consume_join_token(conn, token_hash, now)
            case PutBundle(bundle):
                conn.execute(_PUT_BUNDLE, FEDERATED_BUNDLES.values(bundle))
                return None
            case AddAdminCredential(credential):
                conflict = ("admin.exists", f"admin credential {credential.credential_id} exists")
                values = ADMIN_CREDENTIALS.values(credential)
                return _insert(conn, insert(ADMIN_CREDENTIALS), values, conflict)
            case PutPlaybook(playbook):
                conn.execute(_PUT_PLAYBOOK, PLAYBOOKS.values(playbook))
                return None
            case AddEnforcementPoint(point):
                conflict = ("enforcement_point.exists", f"{point.name} exists")
                values = ENFORCEMENT_POINTS.values(point)
                return _insert(conn, insert(ENFORCEMENT_POINTS), values, conflict)
            case RemoveEnforcementPoint(name):
                return _remove_point(conn, name)
            case AdvanceCursors():
                return _advance(conn, change)
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


def _insert(conn: Conn, sql: str, params: dict[str, Any], conflict: tuple[str, str]) -> None:
    """Insert one row; a unique constraint violation is ``Conflict(*conflict)`` (the
    transaction is rolled back with it)."""
    try:
        conn.execute(sql, params)
    except errors.UniqueViolation as err:
        raise Conflict(*conflict) from err


def _consume_join_token(conn: Conn, token_hash: str, now: float) -> ConsumeResult:
    consumed = first_row(conn, _CONSUME_JOIN_TOKEN, {"now": now, "h": token_hash})
    if consumed is not None:
        return ConsumeResult(ConsumeStatus.CONSUMED, record(JOIN_TOKENS, consumed))
    row = first_row(conn, _GET_JOIN_TOKEN, {"h": token_hash})
    if row is None:
        return ConsumeResult(ConsumeStatus.UNKNOWN, None)
    token = record(JOIN_TOKENS, row)
    if token.used_at is not None:
        return ConsumeResult(ConsumeStatus.ALREADY_USED, token)
    return ConsumeResult(ConsumeStatus.EXPIRED, token)


def _transition_lease(conn: Conn, change: TransitionLease) -> LeaseRecord | None:
    """Move a lease to ``change.state`` if it is in one of ``change.expected``
    (compare-and-set); the lease as stored after it, or None (nothing written)."""
    if not change.expected:
        return None
    params = {
        "state": change.state.value,
        "at": change.at,
        "inc": 1 if change.count_attempt else 0,
        "error": change.error,
        "next": change.next_attempt_at,
        "reason": change.end_reason,
        "id": change.lease_id,
        "expected": [s.value for s in change.expected],
    }
    return record_or_none(LEASES, first_row(conn, _TRANSITION_LEASE, params))


def _remove_point(conn: Conn, name: str) -> EnforcementPoint | None:
    return record_or_none(ENFORCEMENT_POINTS, first_row(conn, _DELETE_POINT, {"n": name}))


def _advance(conn: Conn, change: AdvanceCursors) -> bool:
    """Check every cursor is where its advance expects it, then write them all; False
    (nothing written) when one is not. Under the cursors' lock, so two processes
    advancing the same cursor from the same place cannot both succeed."""
    locks.lock(conn, locks.CURSORS)
    for step in change.advances:
        row = first_row(conn, _CURSOR_SEQ, {"d": step.detector})
        if (int(row["seq"]) if row is not None else 0) != step.expected_seq:
            return False
    with conn.cursor() as cursor:
        cursor.executemany(
            _PUT_CURSOR, [DETECTOR_CURSORS.values(step.cursor()) for step in change.advances]
        )
        if change.scores:
            cursor.executemany(_PUT_SCORE, [RISK_SCORES.values(s) for s in change.scores])
    if change.forget_before is not None:
        conn.execute(_FORGET_SCORES, {"before": change.forget_before})
    return True
