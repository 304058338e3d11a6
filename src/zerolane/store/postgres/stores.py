""":class:`PostgresStores`: every port of :mod:`zerolane.store.ports` on one PostgreSQL
database (one schema of it), shared by any number of processes.

Each write is one transaction on a pooled connection (:mod:`.connection`), committed
before the method returns, except a decision's: :meth:`PostgresStores.commit_decision`
hands it to a thread of its own (:mod:`.decision_writer`) and returns a pending write.
PostgreSQL's own commit is durable (``synchronous_commit`` as the server is set).
Reads are single statements in autocommit mode. Concurrency between processes rests
on the database alone: compare-and-set ``UPDATE``s, ``ON CONFLICT`` inserts and
transaction-level advisory locks taken in one order (:mod:`.locks`). A write that
PostgreSQL aborts as a deadlock or a serialization failure is run again whole
(:data:`RETRIES` times): every write is a pure function of its connection, sealing
included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.rows import DictRow

from zerolane.errors import Conflict, Unavailable, ZerolaneError
from zerolane.store.changes import (
    AddAdminCredential,
    AddChildTask,
    AddEnforcementPoint,
    AddJoinToken,
    AddTask,
    AddWorkload,
    Change,
    ConsumeJoinToken,
    EndTree,
    PutBundle,
    PutPlaybook,
    RemoveEnforcementPoint,
    RiskScore,
    SetWorkloadStatus,
    TransitionLease,
)
from zerolane.store.memory.done import Failed
from zerolane.store.ports import EventsOf, PendingWrite, Sealer
from zerolane.store.postgres import audit, tasks
from zerolane.store.postgres.approvals import PostgresApprovals
from zerolane.store.postgres.change_writes import change_op
from zerolane.store.postgres.connection import Conn, Pool, describe
from zerolane.store.postgres.decision_writer import DecisionWriter
from zerolane.store.postgres.migrations import migrate
from zerolane.store.postgres.proofs import SpentProofs
from zerolane.store.postgres.rows import insert, record
from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeResult,
    DetectorCursor,
    EnforcementPoint,
    FederatedBundle,
    JoinToken,
    LeaseRecord,
    LeaseState,
    PlaybookRecord,
    Spend,
    SpentProof,
    TaskRecord,
    Workload,
)
from zerolane.store.sqlite.tables import (
    ADMIN_CREDENTIALS,
    AUDIT_EVENTS,
    DETECTOR_CURSORS,
    ENFORCEMENT_POINTS,
    FEDERATED_BUNDLES,
    LEASES,
    PLAYBOOKS,
    RISK_SCORES,
    TASKS,
    WORKLOADS,
)
from zerolane.types import TaskState, WorkloadStatus

T = TypeVar("T")
R = TypeVar("R")

#: times a write aborted as a deadlock or serialization failure is run again
RETRIES = 3

_GET_WORKLOAD = f"SELECT {WORKLOADS.columns_sql} FROM workloads WHERE spiffe_id = %(s)s"  # noqa: S608
_LIST_WORKLOADS = f"SELECT {WORKLOADS.columns_sql} FROM workloads ORDER BY spiffe_id"  # noqa: S608
_GET_BUNDLE = (
    f"SELECT {FEDERATED_BUNDLES.columns_sql} FROM federated_bundles "  # noqa: S608
    "WHERE trust_domain = %(td)s"
)
_LIST_BUNDLES = (
    f"SELECT {FEDERATED_BUNDLES.columns_sql} FROM federated_bundles "  # noqa: S608
    "ORDER BY trust_domain"
)
_LIST_ADMINS = (
    f"SELECT {ADMIN_CREDENTIALS.columns_sql} FROM admin_credentials "  # noqa: S608
    "ORDER BY created_at"
)
_GET_PLAYBOOK = f"SELECT {PLAYBOOKS.columns_sql} FROM playbooks WHERE name = %(n)s"  # noqa: S608
_LIST_PLAYBOOKS = f"SELECT {PLAYBOOKS.columns_sql} FROM playbooks ORDER BY name"  # noqa: S608
_LIST_POINTS = f"SELECT {ENFORCEMENT_POINTS.columns_sql} FROM enforcement_points ORDER BY name"  # noqa: S608
_GET_LEASE = f"SELECT {LEASES.columns_sql} FROM leases WHERE lease_id = %(i)s"  # noqa: S608
_LIST_LEASES = (
    f"SELECT {LEASES.columns_sql} FROM leases "  # noqa: S608
    "WHERE (%(t)s::text IS NULL OR task_id = %(t)s) AND (%(s)s::text IS NULL OR state = %(s)s) "
    "AND (%(due)s::double precision IS NULL "
    "OR (next_attempt_at IS NOT NULL AND next_attempt_at <= %(due)s)) "
    "AND (%(bc)s::double precision IS NULL OR created_at < %(bc)s "
    "OR (created_at = %(bc)s AND lease_id < %(bi)s)) "
    "ORDER BY created_at DESC, lease_id DESC LIMIT %(n)s"
)
_GET_CURSOR = f"SELECT {DETECTOR_CURSORS.columns_sql} FROM detector_cursors WHERE detector = %(d)s"  # noqa: S608
_LIST_CURSORS = f"SELECT {DETECTOR_CURSORS.columns_sql} FROM detector_cursors ORDER BY detector"  # noqa: S608
_SCORES_SINCE = (
    f"SELECT {RISK_SCORES.columns_sql} FROM risk_scores "  # noqa: S608
    "WHERE version > %(v)s ORDER BY version"
)


class PostgresStores(PostgresApprovals):
    """Implements every port of :mod:`zerolane.store.ports` on one PostgreSQL database.

    ``conninfo``: a libpq URI (``postgresql://user@host:5432/db``) or ``key=value``
    string; its ``options`` may set ``-c search_path=SCHEMA`` to keep a deployment in a
    schema of its own. The schema is migrated when the store opens."""

    def __init__(self, conninfo: str) -> None:
        self.where = describe(conninfo)
        self._pool = Pool(conninfo)
        self._proofs = SpentProofs()
        self._closed = False
        try:
            with self._pool.connection() as conn:
                migrate(conn)
        except psycopg.Error as err:
            self._pool.close()
            raise Unavailable("store.open", f"cannot open the database at {self.where}") from err
        except BaseException:
            self._pool.close()
            raise
        self._decisions = DecisionWriter()

    # schema
    def schema_version(self) -> int:
        rows = self._read("SELECT MAX(version) AS version FROM schema_migrations")
        return int(rows[0]["version"] or 0)

    def close(self) -> None:
        """Commit the decisions handed over (new ones are refused), then close the
        pooled connections (one in use is closed when given back)."""
        if self._closed:
            return
        self._closed = True
        self._decisions.close()
        self._pool.close()

    def _read(self, sql: str, **params: Any) -> list[DictRow]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as err:
            raise Unavailable("store.read", "the database could not be read") from err

    def _write(self, op: Callable[[Conn], T], *, reason: str = "store.write") -> T:
        """Run ``op`` in a transaction of its own and commit it; its result. An error
        of ours (``Conflict``, ``ProofReplayed``...) rolls the write back and is raised
        as it is; a driver error is ``Unavailable`` (``reason``)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._pool.connection() as conn, conn.transaction():
                    return op(conn)
            except (errors.DeadlockDetected, errors.SerializationFailure) as err:
                if attempt <= RETRIES:
                    continue
                raise Unavailable(reason, "the database could not be written") from err
            except psycopg.Error as err:
                raise Unavailable(reason, "the database could not be written") from err

    # workloads
    def add_workload(self, workload: Workload) -> None:
        self._write(change_op(AddWorkload(workload)))

    def get_workload(self, spiffe_id: str) -> Workload | None:
        rows = self._read(_GET_WORKLOAD, s=spiffe_id)
        return record(WORKLOADS, rows[0]) if rows else None

    def list_workloads(self) -> list[Workload]:
        return [record(WORKLOADS, r) for r in self._read(_LIST_WORKLOADS)]

    def set_workload_status(
        self, spiffe_id: str, status: WorkloadStatus, at: float
    ) -> Workload | None:
        return self._write(change_op(SetWorkloadStatus(spiffe_id, status, at)))

    # join tokens
    def add_join_token(self, token: JoinToken) -> None:
        self._write(change_op(AddJoinToken(token)))

    def consume_join_token(self, token_hash: str, now: float) -> ConsumeResult:
        return self._write(change_op(ConsumeJoinToken(token_hash, now)))

    # federation bundles
    def put_bundle(self, bundle: FederatedBundle) -> None:
        self._write(change_op(PutBundle(bundle)))

    def get_bundle(self, trust_domain: str) -> FederatedBundle | None:
        rows = self._read(_GET_BUNDLE, td=trust_domain)
        return record(FEDERATED_BUNDLES, rows[0]) if rows else None

    def list_bundles(self) -> list[FederatedBundle]:
        return [record(FEDERATED_BUNDLES, r) for r in self._read(_LIST_BUNDLES)]

    # admin credentials
    def add_admin_credential(self, credential: AdminCredential) -> None:
        self._write(change_op(AddAdminCredential(credential)))

    def list_admin_credentials(self) -> list[AdminCredential]:
        return [record(ADMIN_CREDENTIALS, r) for r in self._read(_LIST_ADMINS)]

    # enforcement points
    def add_enforcement_point(self, point: EnforcementPoint) -> None:
        self._write(change_op(AddEnforcementPoint(point)))

    def list_enforcement_points(self) -> list[EnforcementPoint]:
        return [record(ENFORCEMENT_POINTS, r) for r in self._read(_LIST_POINTS)]

    def remove_enforcement_point(self, name: str) -> EnforcementPoint | None:
        return self._write(change_op(RemoveEnforcementPoint(name)))

    # audit
    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        if not events:  # nothing to seal: no write
            return []
        unsealed = list(events)
        return self._write(lambda conn: audit.append(conn, unsealed, seal), reason="audit.write")

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return [AuditRecord(**row) for row in self._read(audit.READ_EVENTS, a=after_seq, n=limit)]

    def last_event(self) -> AuditRecord | None:
        rows = self._read(audit.LAST_EVENT)
        return record(AUDIT_EVENTS, rows[0]) if rows else None

    # detector cursors and risk scores
    def get_cursor(self, detector: str) -> DetectorCursor | None:
        rows = self._read(_GET_CURSOR, d=detector)
        return record(DETECTOR_CURSORS, rows[0]) if rows else None

    def list_cursors(self) -> list[DetectorCursor]:
        return [record(DETECTOR_CURSORS, r) for r in self._read(_LIST_CURSORS)]

    def risk_scores_since(self, version: int) -> list[RiskScore]:
        return [record(RISK_SCORES, r) for r in self._read(_SCORES_SINCE, v=version)]

    # playbooks
    def put_playbook(self, playbook: PlaybookRecord) -> None:
        self._write(change_op(PutPlaybook(playbook)))

    def get_playbook(self, name: str) -> PlaybookRecord | None:
        rows = self._read(_GET_PLAYBOOK, n=name)
        return record(PLAYBOOKS, rows[0]) if rows else None

    def list_playbooks(self) -> list[PlaybookRecord]:
        return [record(PLAYBOOKS, r) for r in self._read(_LIST_PLAYBOOKS)]

    # tasks
    def add_task(self, task: TaskRecord) -> None:
        self._write(change_op(AddTask(task)))

    def get_task(self, task_id: str) -> TaskRecord | None:
        # First let the decisions of the task this process handed over commit: a
        # decider re-reading after a lost compare-and-set then sees the winner's spend.
        self._decisions.settle(task_id)
        rows = self._read(tasks.GET_TASK, t=task_id)
        return record(TASKS, rows[0]) if rows else None

    def list_tasks(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        rows = self._read(
            tasks.LIST_TASKS, o=owner, s=state.value if state is not None else None, n=limit
        )
        return [record(TASKS, r) for r in rows]

    def end_task(self, task_id: str, state: TaskState, at: float, reason: str) -> TaskRecord | None:
        return self._write(lambda conn: tasks.end_task(conn, task_id, state, at, reason))

    def spend_proof(self, proof: SpentProof, now: float) -> bool:
        self._purge(now)
        return self._write(lambda conn: self._proofs.spend(conn, proof, now))

    def _purge(self, now: float) -> None:
        """Delete expired proofs, at most once a second per process (its own write)."""
        if self._proofs.purge_due(now):
            self._write(lambda conn: self._proofs.purge(conn, now))

    def spend_call(
        self,
        task_id: str,
        *,
        expected_calls_used: int,
        touched: int,
        now: float,
        expected_max_calls: int | None = None,
        expected_touched: int | None = None,
        proof: SpentProof | None = None,
    ) -> TaskRecord | None:
        params = tasks.spend_params(
            task_id, expected_calls_used, touched, now, expected_max_calls, expected_touched
        )
        if proof is not None:
            self._purge(now)
        return self._write(self._spend_op(params, proof))

    def _spend_op(
        self, params: dict[str, Any], proof: SpentProof | None
    ) -> Callable[[Conn], TaskRecord | None]:
        """The spend's compare-and-set and, when it spends, its proof (a proof spent
        before raises ``ProofReplayed``, which rolls the spend back with it)."""

        def op(conn: Conn) -> TaskRecord | None:
            spent = tasks.spend(conn, params)
            if spent is not None and proof is not None:
                self._proofs.spend_or_raise(conn, proof, params["now"])
            return spent

        return op

    def commit_decision(
        self, spend: Spend, events: Sequence[dict[str, object]], seal: Sealer
    ) -> PendingWrite[TaskRecord | None]:
        """Handed to the decision writer (:mod:`.decision_writer`), which commits it on
        its own thread, after the writes handed over before it, as one transaction: the
        spend's compare-and-set, its proof and, when it spends, its events on the chain
        (a failing append rolls the spend back). Returns at once; a closed store's
        pending write fails (``store.closed``)."""
        params = tasks.spend_params(
            spend.task_id,
            spend.expected_calls_used,
            spend.touched,
            spend.now,
            spend.expected_max_calls,
            spend.expected_touched,
        )
        apply = self._spend_op(params, spend.proof)
        unsealed = list(events)

        def op(conn: Conn) -> TaskRecord | None:
            spent = apply(conn)
            if spent is not None and unsealed:
                _append_recorded(conn, unsealed, seal)
            return spent

        def commit() -> TaskRecord | None:
            if spend.proof is not None:
                self._purge(spend.now)
            return self._write(op)

        try:
            return self._decisions.submit(spend.task_id, commit)
        except ZerolaneError as err:
            return Failed(err)

    # the delegation tree
    def add_child_task(self, child: TaskRecord, *, now: float) -> TaskRecord | None:
        return self._write(change_op(AddChildTask(child, now)))

    def list_children(self, parent_id: str) -> list[TaskRecord]:
        return [record(TASKS, r) for r in self._read(tasks.CHILDREN, p=parent_id)]

    def end_tree(
        self, task_id: str, state: TaskState, at: float, reason: str, descendant_reason: str
    ) -> list[TaskRecord]:
        return self._write(change_op(EndTree(task_id, state, at, reason, descendant_reason)))

    # leases
    def add_lease(self, lease: LeaseRecord) -> None:
        def op(conn: Conn) -> None:
            try:
                conn.execute(insert(LEASES), LEASES.values(lease))
            except errors.UniqueViolation as err:
                raise Conflict("lease.exists", f"lease {lease.lease_id} exists") from err

        self._write(op)

    def get_lease(self, lease_id: str) -> LeaseRecord | None:
        rows = self._read(_GET_LEASE, i=lease_id)
        return record(LEASES, rows[0]) if rows else None

    def list_leases(
        self,
        *,
        task_id: str | None = None,
        state: LeaseState | None = None,
        due_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[LeaseRecord]:
        rows = self._read(
            _LIST_LEASES,
            t=task_id,
            s=state.value if state is not None else None,
            due=due_before,
            bc=before[0] if before is not None else None,
            bi=before[1] if before is not None else None,
            n=limit,
        )
        return [record(LEASES, r) for r in rows]

    def transition_lease(
        self,
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
        return self._write(change_op(change))

    # changes recorded with their audit events (RecordedWrites)
    def write_recorded(self, change: Change[R], events: EventsOf[R], seal: Sealer) -> R:
        apply = change_op(change)

        def op(conn: Conn) -> R:
            result = apply(conn)
            try:
                unsealed = list(events(result))
            except ZerolaneError:
                raise
            except Exception as err:  # an event builder that fails: a refusal
                raise Unavailable("audit.write", "the audit event could not be recorded") from err
            if unsealed:  # raising rolls the transaction (the change too) back
                _append_recorded(conn, unsealed, seal)
            return result

        return self._write(op)


def _append_recorded(conn: Conn, unsealed: list[dict[str, object]], seal: Sealer) -> None:
    """Append the events of a write in its transaction; a sealer that fails is
    ``Unavailable`` (``audit.write``), and the whole write is rolled back."""
    try:
        audit.append(conn, unsealed, seal)
    except (ZerolaneError, psycopg.Error):
        raise
    except Exception as err:
        raise Unavailable("audit.write", "the audit event could not be recorded") from err
