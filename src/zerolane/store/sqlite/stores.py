""":class:`SqliteStores`: every port of :mod:`zerolane.store.ports` on one SQLite file.

Writes go through one group-committing writer (:mod:`.group_commit`); reads take a
pooled connection (:mod:`.connection`). The statements live with the tables they
touch (:mod:`.tasks`, :mod:`.audit`, :mod:`.change_writes`, :mod:`.leases`,
:mod:`.enforcement_points`, :mod:`.detector_cursors`, :mod:`.proofs`); rows map to
records by column name (:mod:`.tables`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Generic, TypeVar

from zerolane.errors import Conflict, InvalidInput, Unavailable, ZerolaneError
from zerolane.store.changes import (
    AddAdminCredential,
    AddChildTask,
    AddJoinToken,
    AddTask,
    AddWorkload,
    Change,
    ConsumeJoinToken,
    EndTree,
    PutBundle,
    PutPlaybook,
    SetWorkloadStatus,
)
from zerolane.store.ports import EventsOf, Sealer
from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeResult,
    FederatedBundle,
    JoinToken,
    PlaybookRecord,
    Spend,
    SpentProof,
    TaskRecord,
    Workload,
)
from zerolane.store.sqlite import tasks
from zerolane.store.sqlite.approvals import SqliteApprovals
from zerolane.store.sqlite.audit import LAST_EVENT, READ_EVENTS, append_op, records
from zerolane.store.sqlite.change_writes import change_key, change_op
from zerolane.store.sqlite.connection import ReadPool, connect
from zerolane.store.sqlite.detector_cursors import SqliteDetectorCursors
from zerolane.store.sqlite.enforcement_points import SqliteEnforcementPoints
from zerolane.store.sqlite.group_commit import (
    DEFAULT_MAX_BATCH,
    GroupCommitWriter,
    WriteOp,
    WriterStats,
)
from zerolane.store.sqlite.leases import SqliteLeases
from zerolane.store.sqlite.migrations import LATEST, MIGRATIONS
from zerolane.store.sqlite.proofs import SpentProofs
from zerolane.store.sqlite.tables import (
    ADMIN_CREDENTIALS,
    AUDIT_EVENTS,
    FEDERATED_BUNDLES,
    PLAYBOOKS,
    TASKS,
    WORKLOADS,
)
from zerolane.types import TaskState, WorkloadStatus

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("zerolane.store.sqlite")

_GET_WORKLOAD = f"SELECT {WORKLOADS.columns_sql} FROM workloads WHERE spiffe_id = :s"  # noqa: S608
_LIST_WORKLOADS = f"SELECT {WORKLOADS.columns_sql} FROM workloads ORDER BY spiffe_id"  # noqa: S608
_GET_BUNDLE = (
    f"SELECT {FEDERATED_BUNDLES.columns_sql} FROM federated_bundles "  # noqa: S608
    "WHERE trust_domain = :td"
)
_LIST_BUNDLES = (
    f"SELECT {FEDERATED_BUNDLES.columns_sql} FROM federated_bundles "  # noqa: S608
    "ORDER BY trust_domain"
)
_LIST_ADMINS = (
    f"SELECT {ADMIN_CREDENTIALS.columns_sql} FROM admin_credentials "  # noqa: S608
    "ORDER BY created_at"
)
_GET_PLAYBOOK = f"SELECT {PLAYBOOKS.columns_sql} FROM playbooks WHERE name = :n"  # noqa: S608
_LIST_PLAYBOOKS = f"SELECT {PLAYBOOKS.columns_sql} FROM playbooks ORDER BY name"  # noqa: S608
_CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
    "applied_at DOUBLE PRECISION NOT NULL)"
)
_RECORD_MIGRATION = (
    "INSERT INTO schema_migrations (version, description, applied_at) "
    "VALUES (:v, :d, CAST(strftime('%s','now') AS REAL))"
)


class SqliteStores(SqliteLeases, SqliteEnforcementPoints, SqliteDetectorCursors, SqliteApprovals):
    """Implements every port of :mod:`zerolane.store.ports` on one SQLite file."""

    def __init__(self, path: Path, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.path = path
        try:
            # Create the file 0600 before SQLite opens it: SQLite gives the -wal and -shm
            # files (which hold recent writes) the database file's mode, and a chmod after
            # the fact would leave them, and the file for a moment, readable by others.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError as err:
            raise Unavailable("store.open", f"cannot create the database at {path}") from err
        self._reads = ReadPool(path)
        self._lost_lock = threading.Lock()
        self._lost_audit_events = 0
        self._closed = False
        self._proofs = SpentProofs()
        # SQLite has one writer: one thread of ours owns it and commits queued writes
        # in batches (other processes still take turns through SQLite's lock).
        self._writer = GroupCommitWriter(lambda: connect(path), max_batch=max_batch)
        try:
            self._writer.run(self._migrate)
        except (sqlite3.Error, Unavailable) as err:
            self.close()
            raise Unavailable("store.open", f"cannot open the database at {path}") from err
        except BaseException:
            self.close()
            raise

    # schema
    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute(_CREATE_MIGRATIONS)
        rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        applied = {int(row["version"]) for row in rows}
        current = max(applied, default=0)
        if current > LATEST:
            raise InvalidInput(
                "store.schema_too_new",
                f"the database schema is version {current}; this zerolane knows {LATEST}",
            )
        # every version the database lacks, in version order: a migration numbered
        # below one already applied (two appended at once) still runs
        for version, description, statements in sorted(MIGRATIONS, key=lambda m: m[0]):
            if version in applied:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(_RECORD_MIGRATION, {"v": version, "d": description})

    def schema_version(self) -> int:
        rows = self._read("SELECT MAX(version) AS version FROM schema_migrations")
        return int(rows[0]["version"] or 0)

    def close(self) -> None:
        """Commit the writes already queued, stop the writer, close the connections."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._reads.close()

    def writer_stats(self) -> WriterStats:
        """Batches and writes committed so far by this store's writer."""
        return self._writer.stats()

    @property
    def lost_audit_events(self) -> int:
        """Audit events queued by :meth:`append_events_later` that could not be stored."""
        with self._lost_lock:
            return self._lost_audit_events

    def _read(self, sql: str, **params: Any) -> list[sqlite3.Row]:
        try:
            with self._reads.connection() as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise Unavailable("store.read", "the database could not be read") from err

    def _write(self, op: WriteOp[T], *, key: str | None = None) -> T:
        """Run ``op`` in the writer's next batch; return once that batch committed.
        ``key``: the task the op changes (see :meth:`get_task`)."""
        return self._wait(self._writer.submit(op, key=key))

    def _wait(self, future: Future[T]) -> T:
        """:meth:`_write`'s answer for a write submitted apart."""
        try:
            return self._writer.wait(future)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as err:
            raise Unavailable("store.write", "the database could not be written") from err

    async def _wait_async(self, future: Future[T]) -> T:
        """:meth:`_wait` for an event loop (the writer's thread commits)."""
        try:
            return await self._writer.wait_async(future)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as err:
            raise Unavailable("store.write", "the database could not be written") from err

    def _statement(
        self, sql: str, params: dict[str, Any], conflict: tuple[str, str] | None = None
    ) -> int:
        """Execute one write statement; the rows it changed. A unique constraint
        violation is ``Conflict(*conflict)`` when given."""

        def op(conn: sqlite3.Connection) -> int:
            try:
                return conn.execute(sql, params).rowcount
            except sqlite3.IntegrityError as err:
                if conflict is None:
                    raise
                raise Conflict(*conflict) from err

        return self._write(op)

    # workloads
    def add_workload(self, workload: Workload) -> None:
        self._write(change_op(AddWorkload(workload)))

    def get_workload(self, spiffe_id: str) -> Workload | None:
        rows = self._read(_GET_WORKLOAD, s=spiffe_id)
        return WORKLOADS.from_row(rows[0]) if rows else None

    def list_workloads(self) -> list[Workload]:
        return [WORKLOADS.from_row(r) for r in self._read(_LIST_WORKLOADS)]

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
        return FEDERATED_BUNDLES.from_row(rows[0]) if rows else None

    def list_bundles(self) -> list[FederatedBundle]:
        return [FEDERATED_BUNDLES.from_row(r) for r in self._read(_LIST_BUNDLES)]

    # admin credentials
    def add_admin_credential(self, credential: AdminCredential) -> None:
        self._write(change_op(AddAdminCredential(credential)))

    def list_admin_credentials(self) -> list[AdminCredential]:
        return [ADMIN_CREDENTIALS.from_row(r) for r in self._read(_LIST_ADMINS)]

    # audit
    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        if not events:  # nothing to seal: no write
            return []
        try:
            return self._writer.run(append_op(list(events), seal))
        except (sqlite3.Error, Unavailable) as err:
            raise Unavailable("audit.write", "the audit event could not be recorded") from err

    def append_events_later(self, events: Sequence[dict[str, object]], seal: Sealer) -> None:
        """Queue ``events`` for the writer's next batch and return without waiting.

        The events are appended in order with every other write of this store, but the
        caller is not told whether they were stored: a failure is logged and counted in
        :attr:`lost_audit_events`. For the audit log's ``async`` mode only. Raises
        ``Unavailable`` only when nothing can be queued (the store is closed).
        """
        if not events:
            return
        count = len(events)
        future = self._writer.submit(append_op(list(events), seal), wake=True)

        def done(finished: Future[list[AuditRecord]]) -> None:
            error = finished.exception()
            if error is None:
                return
            with self._lost_lock:
                self._lost_audit_events += count
            cause = error.__cause__ or error
            log.error("%d audit event(s) queued in async mode were lost: %r", count, cause)

        future.add_done_callback(done)

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return records(self._read(READ_EVENTS, a=after_seq, n=limit))

    def last_event(self) -> AuditRecord | None:
        rows = self._read(LAST_EVENT)
        return AUDIT_EVENTS.from_row(rows[0]) if rows else None

    # playbooks
    def put_playbook(self, playbook: PlaybookRecord) -> None:
        self._write(change_op(PutPlaybook(playbook)))

    def get_playbook(self, name: str) -> PlaybookRecord | None:
        rows = self._read(_GET_PLAYBOOK, n=name)
        return PLAYBOOKS.from_row(rows[0]) if rows else None

    def list_playbooks(self) -> list[PlaybookRecord]:
        return [PLAYBOOKS.from_row(r) for r in self._read(_LIST_PLAYBOOKS)]

    # tasks
    def add_task(self, task: TaskRecord) -> None:
        self._write(change_op(AddTask(task)))

    def get_task(self, task_id: str) -> TaskRecord | None:
        # First let this process's queued spends and ends of the task commit: a decider
        # re-reading after a lost compare-and-set then sees the winner's spend rather
        # than the snapshot it lost on (concurrent requests of one task would thrash).
        self._writer.settle(task_id)
        rows = self._read(tasks.GET_TASK, t=task_id)
        return TASKS.from_row(rows[0]) if rows else None

    def list_tasks(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        rows = self._read(
            tasks.LIST_TASKS, o=owner, s=state.value if state is not None else None, n=limit
        )
        return [TASKS.from_row(r) for r in rows]

    def end_task(self, task_id: str, state: TaskState, at: float, reason: str) -> TaskRecord | None:
        return self._write(
            lambda conn: tasks.end_task(conn, task_id, state, at, reason), key=task_id
        )

    def spend_proof(self, proof: SpentProof, now: float) -> bool:
        return self._write(lambda conn: self._proofs.spend(conn, proof, now))

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
        return self._write(self._spend_op(params, proof), key=task_id)

    def _spend_op(
        self, params: dict[str, Any], proof: SpentProof | None
    ) -> WriteOp[TaskRecord | None]:
        """The spend's compare-and-set and, when it spends, its proof (a proof spent
        before raises ``ProofReplayed``, which undoes the spend with it)."""

        def op(conn: sqlite3.Connection) -> TaskRecord | None:
            spent = tasks.spend(conn, params)
            if spent is not None and proof is not None:
                self._proofs.spend_or_raise(conn, proof, params["now"])
            return spent

        return op

    def commit_decision(
        self, spend: Spend, events: Sequence[dict[str, object]], seal: Sealer
    ) -> _Pending[TaskRecord | None]:
        """Queued for the writer's next batch (keyed by the task: :meth:`get_task`
        waits for it), one op: a failing append rolls the spend back with it."""
        params = tasks.spend_params(
            spend.task_id,
            spend.expected_calls_used,
            spend.touched,
            spend.now,
            spend.expected_max_calls,
            spend.expected_touched,
        )
        apply = self._spend_op(params, spend.proof)
        append = append_op(list(events), seal) if events else None

        def op(conn: sqlite3.Connection) -> TaskRecord | None:
            spent = apply(conn)
            if spent is not None and append is not None:
                try:  # raising rolls this op (the spend too) back to its savepoint
                    append(conn)
                except (ZerolaneError, sqlite3.Error):
                    raise
                except Exception as err:  # a sealer that fails: nothing is stored
                    raise Unavailable(
                        "audit.write", "the audit event could not be recorded"
                    ) from err
            return spent

        return _Pending(self, self._writer.submit(op, key=spend.task_id))

    # the delegation tree
    def add_child_task(self, child: TaskRecord, *, now: float) -> TaskRecord | None:
        return self._write(change_op(AddChildTask(child, now)), key=child.parent_id)

    def list_children(self, parent_id: str) -> list[TaskRecord]:
        return [TASKS.from_row(r) for r in self._read(tasks.CHILDREN, p=parent_id)]

    def end_tree(
        self, task_id: str, state: TaskState, at: float, reason: str, descendant_reason: str
    ) -> list[TaskRecord]:
        change = EndTree(task_id, state, at, reason, descendant_reason)
        return self._write(change_op(change), key=task_id)

    # changes recorded with their audit events (RecordedWrites)
    def write_recorded(self, change: Change[R], events: EventsOf[R], seal: Sealer) -> R:
        apply = change_op(change)

        def op(conn: sqlite3.Connection) -> R:
            result = apply(conn)
            try:
                unsealed = list(events(result))
                if unsealed:  # raising rolls this op (the change too) back to its savepoint
                    append_op(unsealed, seal)(conn)
            except (ZerolaneError, sqlite3.Error):
                raise
            except Exception as err:  # a sealer or event builder that fails: a refusal
                raise Unavailable("audit.write", "the audit event could not be recorded") from err
            return result

        return self._write(op, key=change_key(change))


class _Pending(Generic[T]):
    """A queued write of this store (see :class:`~zerolane.store.ports.PendingWrite`)."""

    __slots__ = ("_future", "_store")

    def __init__(self, store: SqliteStores, future: Future[T]) -> None:
        self._store = store
        self._future = future

    def result(self) -> T:
        return self._store._wait(self._future)

    async def result_async(self) -> T:
        return await self._store._wait_async(self._future)
