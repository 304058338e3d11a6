"""SQLite backend (embedded default): WAL, group-committed writes, full fsync.

Writes go through one writer thread (:mod:`.group_commit`): each write method hands it
a small function of the connection, the writer runs the queued ones back to back in one
``BEGIN IMMEDIATE`` transaction (each inside its own savepoint) and commits once, so a
batch of concurrent writes shares one ``fsync``. A method returns only after its
batch committed. Reads run on pooled connections without taking the write lock: WAL
gives each read a consistent snapshot alongside the writer.

Built on SQLAlchemy Core so that the same statements serve PostgreSQL later.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections import namedtuple
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from zerolane.errors import Conflict, InvalidInput, Unavailable, ZerolaneError
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
    ExpireTree,
    PutBundle,
    PutPlaybook,
    RemoveEnforcementPoint,
    SetWorkloadStatus,
    TransitionLease,
)
from zerolane.store.ports import GENESIS_HASH, EventsOf, Sealer
from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeResult,
    ConsumeStatus,
    FederatedBundle,
    JoinToken,
    LeaseRecord,
    PlaybookRecord,
    SpentProof,
    TaskRecord,
    Workload,
)
from zerolane.store.sqlite.enforcement_points import (
    SqliteEnforcementPoints,
    add_point,
    remove_point,
)
from zerolane.store.sqlite.group_commit import (
    DEFAULT_MAX_BATCH,
    GroupCommitWriter,
    WriteOp,
    WriterStats,
)
from zerolane.store.sqlite.leases import _TRANSITION, SqliteLeases, _lease
from zerolane.store.sqlite.migrations import LATEST, MIGRATIONS
from zerolane.store.sqlite.proofs import SpentProofs
from zerolane.types import TaskState, WorkloadStatus

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

_AUDIT_COLUMNS = "seq, event_id, time, kind, outcome, body, prev_hash, hash"
_WORKLOAD_COLUMNS = "spiffe_id, selectors, owner, status, created_at, updated_at"
_JOIN_TOKEN_COLUMNS = "token_hash, spiffe_id, created_at, expires_at, used_at"  # noqa: S105


def _configure(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # No implicit transactions: the writer issues BEGIN IMMEDIATE itself, and a
        # read is one statement, which SQLite runs on a snapshot without any lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _workload(row: Any) -> Workload:
    return Workload(
        spiffe_id=row.spiffe_id,
        selectors=tuple(json.loads(row.selectors)),
        owner=row.owner,
        status=WorkloadStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _join_token(row: Any) -> JoinToken:
    return JoinToken(
        token_hash=row.token_hash,
        spiffe_id=row.spiffe_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


_TASK_COLUMNS = (
    "task_id, owner, playbook, playbook_version, intent, scope, authorization_details, jkt, "
    "audience, state, created_at, expires_at, max_calls, calls_used, touched, token_jti, "
    "on_behalf_of, parent_id, depth, ended_at, end_reason, user_subject, user_issuer"
)


def _task(row: Any) -> TaskRecord:
    return TaskRecord(
        task_id=row.task_id,
        owner=row.owner,
        playbook=row.playbook,
        playbook_version=row.playbook_version,
        intent=row.intent,
        scope=row.scope,
        authorization_details=row.authorization_details,
        jkt=row.jkt,
        audience=tuple(json.loads(row.audience)),
        state=TaskState(row.state),
        created_at=row.created_at,
        expires_at=row.expires_at,
        max_calls=row.max_calls,
        calls_used=row.calls_used,
        touched=row.touched,
        token_jti=row.token_jti,
        on_behalf_of=row.on_behalf_of,
        parent_id=row.parent_id,
        depth=row.depth,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        user_subject=row.user_subject,
        user_issuer=row.user_issuer,
    )


def _audit(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        event_id=row.event_id,
        time=row.time,
        kind=row.kind,
        outcome=row.outcome,
        body=row.body,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class SqliteStores(SqliteLeases, SqliteEnforcementPoints):
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
        self._engine = create_engine(f"sqlite:///{path}")
        _configure(self._engine)
        self._lost_lock = threading.Lock()
        self._lost_audit_events = 0
        self._closed = False
        self._proofs = SpentProofs()
        # SQLite has one writer: one thread of ours owns it and commits queued writes
        # in batches (other processes still take turns through SQLite's lock).
        self._writer = GroupCommitWriter(self._engine.connect, max_batch=max_batch)
        try:
            self._writer.run(self._migrate)
        except (SQLAlchemyError, Unavailable) as err:
            self.close()
            raise Unavailable("store.open", f"cannot open the database at {path}") from err
        except BaseException:
            self.close()
            raise

    # schema
    @staticmethod
    def _migrate(conn: Connection) -> None:
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at DOUBLE PRECISION NOT NULL)"
        )
        applied = {
            int(row[0]) for row in conn.execute(text("SELECT version FROM schema_migrations"))
        }
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
                conn.exec_driver_sql(statement)
            conn.execute(
                text(
                    "INSERT INTO schema_migrations VALUES (:v, :d, "
                    "CAST(strftime('%s','now') AS REAL))"
                ),
                {"v": version, "d": description},
            )

    def schema_version(self) -> int:
        with self._engine.connect() as conn:
            version = conn.execute(text("SELECT MAX(version) FROM schema_migrations")).scalar()
            return int(version or 0)

    def close(self) -> None:
        """Commit the writes already queued, stop the writer, close the connections."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._engine.dispose()

    def writer_stats(self) -> WriterStats:
        """Batches and writes committed so far by this store's writer."""
        return self._writer.stats()

    @property
    def lost_audit_events(self) -> int:
        """Audit events queued by :meth:`append_events_later` that could not be stored."""
        with self._lost_lock:
            return self._lost_audit_events

    def _read(self, sql: str, **params: Any) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        except SQLAlchemyError as err:
            raise Unavailable("store.read", "the database could not be read") from err

    def _write(self, op: WriteOp[T], *, key: str | None = None) -> T:
        """Run ``op`` in the writer's next batch; return once that batch committed.
        ``key``: the task the op changes (see :meth:`get_task`)."""
        return self._wait(self._writer.submit(op, key=key))

    def _wait(self, future: Future[T]) -> T:
        """:meth:`_write`'s answer for a write submitted apart."""
        try:
            return self._writer.wait(future)
        except IntegrityError:
            raise
        except (SQLAlchemyError, sqlite3.Error) as err:
            raise Unavailable("store.write", "the database could not be written") from err

    async def _wait_async(self, future: Future[T]) -> T:
        """:meth:`_wait` for an event loop (the writer's thread commits)."""
        try:
            return await self._writer.wait_async(future)
        except IntegrityError:
            raise
        except (SQLAlchemyError, sqlite3.Error) as err:
            raise Unavailable("store.write", "the database could not be written") from err

    def _statement(
        self, sql: str, params: dict[str, Any], conflict: tuple[str, str] | None = None
    ) -> int:
        """Execute one write statement; the rows it changed. A unique constraint
        violation is ``Conflict(*conflict)`` when given."""
        statement = text(sql)

        def op(conn: Connection) -> int:
            try:
                return conn.execute(statement, params).rowcount
            except IntegrityError as err:
                if conflict is None:
                    raise
                raise Conflict(*conflict) from err

        return self._write(op)

    # workloads
    def add_workload(self, workload: Workload) -> None:
        self._write(_change_op(AddWorkload(workload)))

    def get_workload(self, spiffe_id: str) -> Workload | None:
        rows = self._read("SELECT * FROM workloads WHERE spiffe_id = :s", s=spiffe_id)
        return _workload(rows[0]) if rows else None

    def list_workloads(self) -> list[Workload]:
        return [_workload(r) for r in self._read("SELECT * FROM workloads ORDER BY spiffe_id")]

    def set_workload_status(
        self, spiffe_id: str, status: WorkloadStatus, at: float
    ) -> Workload | None:
        return self._write(_change_op(SetWorkloadStatus(spiffe_id, status, at)))

    # join tokens
    def add_join_token(self, token: JoinToken) -> None:
        self._write(_change_op(AddJoinToken(token)))

    def consume_join_token(self, token_hash: str, now: float) -> ConsumeResult:
        return self._write(_change_op(ConsumeJoinToken(token_hash, now)))

    # federation bundles
    def put_bundle(self, bundle: FederatedBundle) -> None:
        self._write(_change_op(PutBundle(bundle)))

    def get_bundle(self, trust_domain: str) -> FederatedBundle | None:
        rows = self._read(
            "SELECT * FROM federated_bundles WHERE trust_domain = :td", td=trust_domain
        )
        return FederatedBundle(*rows[0]) if rows else None

    def list_bundles(self) -> list[FederatedBundle]:
        rows = self._read("SELECT * FROM federated_bundles ORDER BY trust_domain")
        return [FederatedBundle(*r) for r in rows]

    # admin credentials
    def add_admin_credential(self, credential: AdminCredential) -> None:
        self._write(_change_op(AddAdminCredential(credential)))

    def list_admin_credentials(self) -> list[AdminCredential]:
        rows = self._read("SELECT * FROM admin_credentials ORDER BY created_at")
        return [AdminCredential(*r) for r in rows]

    # audit
    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        if not events:  # an empty executemany is deprecated in SQLAlchemy
            return []
        try:
            return self._writer.run(_append_op(list(events), seal))
        except (SQLAlchemyError, sqlite3.Error, Unavailable) as err:
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
        future = self._writer.submit(_append_op(list(events), seal), wake=True)

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
        rows = self._read(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_events WHERE seq > :a "  # noqa: S608
            "ORDER BY seq LIMIT :n",
            a=after_seq,
            n=limit,
        )
        return [_audit(r) for r in rows]

    def last_event(self) -> AuditRecord | None:
        rows = self._read(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT 1"  # noqa: S608
        )
        return _audit(rows[0]) if rows else None

    # playbooks
    def put_playbook(self, playbook: PlaybookRecord) -> None:
        self._write(_change_op(PutPlaybook(playbook)))

    def get_playbook(self, name: str) -> PlaybookRecord | None:
        rows = self._read("SELECT * FROM playbooks WHERE name = :n", n=name)
        return PlaybookRecord(*rows[0]) if rows else None

    def list_playbooks(self) -> list[PlaybookRecord]:
        return [PlaybookRecord(*r) for r in self._read("SELECT * FROM playbooks ORDER BY name")]

    # tasks
    def add_task(self, task: TaskRecord) -> None:
        self._write(_change_op(AddTask(task)))

    def get_task(self, task_id: str) -> TaskRecord | None:
        # First let this process's queued spends and ends of the task commit: a decider
        # re-reading after a lost compare-and-set then sees the winner's spend rather
        # than the snapshot it lost on (concurrent requests of one task would thrash).
        self._writer.settle(task_id)
        rows = self._read(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = :t",  # noqa: S608
            t=task_id,
        )
        return _task(rows[0]) if rows else None

    def list_tasks(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        rows = self._read(
            f"SELECT {_TASK_COLUMNS} FROM tasks "  # noqa: S608
            "WHERE (:o IS NULL OR owner = :o) AND (:s IS NULL OR state = :s) "
            "ORDER BY created_at DESC, task_id DESC LIMIT :n",
            o=owner,
            s=state.value if state is not None else None,
            n=limit,
        )
        return [_task(r) for r in rows]

    def end_task(self, task_id: str, state: TaskState, at: float, reason: str) -> TaskRecord | None:
        params = {"s": state.value, "at": at, "r": reason, "t": task_id}
        return self._write(
            lambda conn: _task_or_none(conn.execute(_END_TASK, params).first()), key=task_id
        )

    def spend_proof(self, proof: SpentProof, now: float) -> bool:
        return self._write(lambda conn: self._proofs.spend(_driver(conn), proof, now))

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
        params = _spend_params(
            task_id, expected_calls_used, touched, now, expected_max_calls, expected_touched
        )
        return self._write(self._spend_op(params, proof), key=task_id)

    def _spend_op(
        self, params: dict[str, Any], proof: SpentProof | None
    ) -> WriteOp[TaskRecord | None]:
        """The spend's compare-and-set and, when it spends, its proof (a proof spent
        before raises ``ProofReplayed``, which undoes the spend with it)."""

        def op(conn: Connection) -> TaskRecord | None:
            spent = _spend(conn, params)
            if spent is not None and proof is not None:
                self._proofs.spend_or_raise(_driver(conn), proof, params["now"])
            return spent

        return op

    def submit_spend_call_recorded(
        self,
        task_id: str,
        *,
        expected_calls_used: int,
        touched: int,
        now: float,
        events: Sequence[dict[str, object]],
        seal: Sealer,
        expected_max_calls: int | None = None,
        expected_touched: int | None = None,
        proof: SpentProof | None = None,
    ) -> _Pending[TaskRecord | None]:
        params = _spend_params(
            task_id, expected_calls_used, touched, now, expected_max_calls, expected_touched
        )
        spend = self._spend_op(params, proof)
        append = _append_op(list(events), seal)

        def op(conn: Connection) -> TaskRecord | None:
            spent = spend(conn)
            if spent is not None and events:
                append(conn)  # raising rolls this op (the spend too) back to its savepoint
            return spent

        return _Pending(self, self._writer.submit(op, key=task_id))

    # the delegation tree
    def add_child_task(self, child: TaskRecord, *, now: float) -> TaskRecord | None:
        return self._write(_change_op(AddChildTask(child, now)), key=child.parent_id)

    def list_children(self, parent_id: str) -> list[TaskRecord]:
        return [_task(r) for r in self._read(_CHILDREN.text, p=parent_id)]

    def end_tree(
        self, task_id: str, state: TaskState, at: float, reason: str, descendant_reason: str
    ) -> list[TaskRecord]:
        change = EndTree(task_id, state, at, reason, descendant_reason)
        return self._write(_change_op(change), key=task_id)

    # changes recorded with their audit events (RecordedWrites)
    def write_recorded(self, change: Change[R], events: EventsOf[R], seal: Sealer) -> R:
        apply = _change_op(change)

        def op(conn: Connection) -> R:
            result = apply(conn)
            try:
                unsealed = list(events(result))
                if unsealed:  # raising rolls this op (the change too) back to its savepoint
                    _append_op(unsealed, seal)(conn)
            except (ZerolaneError, SQLAlchemyError, sqlite3.Error):
                raise
            except Exception as err:  # a sealer or event builder that fails: a refusal
                raise Unavailable("audit.write", "the audit event could not be recorded") from err
            return result

        return self._write(op, key=_change_key(change))


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


_SET_WORKLOAD_STATUS = text(
    "UPDATE workloads SET status = :st, updated_at = :at WHERE spiffe_id = :s "  # noqa: S608
    f"RETURNING {_WORKLOAD_COLUMNS}"
)
_CONSUME_JOIN_TOKEN = text(
    "UPDATE join_tokens SET used_at = :now WHERE token_hash = :h "  # noqa: S608
    "AND used_at IS NULL AND expires_at > :now "
    f"RETURNING {_JOIN_TOKEN_COLUMNS}"
)
_GET_JOIN_TOKEN = text(
    f"SELECT {_JOIN_TOKEN_COLUMNS} FROM join_tokens WHERE token_hash = :h"  # noqa: S608
)
_END_TASK = text(
    "UPDATE tasks SET state = :s, ended_at = :at, end_reason = :r "  # noqa: S608
    "WHERE task_id = :t AND state IN ('active', 'suspended') "
    f"RETURNING {_TASK_COLUMNS}"
)
# The statements of an allowed request's write (the spend and its audit event) are
# plain strings run on the driver's connection (:func:`_driver`): SQLAlchemy's execution
# machinery cost more CPU than SQLite's own work on this path.
_SPEND_CALL = (
    "UPDATE tasks SET calls_used = calls_used + 1, "  # noqa: S608
    "touched = CASE WHEN touched < :touched THEN :touched ELSE touched END "
    "WHERE task_id = :t AND state = 'active' AND calls_used = :expected "
    "AND (:max IS NULL OR max_calls = :max) AND (:et IS NULL OR touched = :et) "
    "AND calls_used < max_calls AND expires_at > :now "
    f"RETURNING {_TASK_COLUMNS}"
)
_AUDIT_HEAD = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({_AUDIT_COLUMNS}) VALUES "  # noqa: S608
    "(:seq, :event_id, :time, :kind, :outcome, :body, :prev_hash, :hash)"
)


def _spend_params(
    task_id: str,
    expected: int,
    touched: int,
    now: float,
    max_calls: int | None,
    expected_touched: int | None,
) -> dict[str, Any]:
    return {
        "t": task_id,
        "expected": expected,
        "touched": touched,
        "now": now,
        "max": max_calls,
        "et": expected_touched,
    }


def _driver(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under the writer's SQLAlchemy connection (same transaction)."""
    driver = conn.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):  # pragma: no cover - never pooled so
        raise Unavailable("store.write", "the write connection is not a sqlite3 connection")
    return driver


#: a task row as the driver returns it, read by name like SQLAlchemy's rows
_TaskRow = namedtuple("_TaskRow", _TASK_COLUMNS)  # type: ignore[misc]


def _spend(conn: Connection, params: dict[str, Any]) -> TaskRecord | None:
    """The spend's compare-and-set; when it raised ``touched`` (or may have: no
    expected value given), the rest of the task's delegation tree is raised with it."""
    driver = _driver(conn)
    row = driver.execute(_SPEND_CALL, params).fetchone()
    if row is None:
        return None
    spent = _task(_TaskRow._make(row))
    expected = params["et"]
    if expected is None or spent.touched > expected:
        driver.execute(_TAINT_TREE, {"t": spent.task_id, "touched": spent.touched})
    return spent


def _task_or_none(row: Any) -> TaskRecord | None:
    return _task(row) if row is not None else None


def _task_values(task: TaskRecord) -> dict[str, Any]:
    """The row of ``task``: one value per column of :data:`_TASK_COLUMNS`."""
    return {
        "task_id": task.task_id,
        "owner": task.owner,
        "playbook": task.playbook,
        "playbook_version": task.playbook_version,
        "intent": task.intent,
        "scope": task.scope,
        "authorization_details": task.authorization_details,
        "jkt": task.jkt,
        "audience": json.dumps(list(task.audience)),
        "state": task.state.value,
        "created_at": task.created_at,
        "expires_at": task.expires_at,
        "max_calls": task.max_calls,
        "calls_used": task.calls_used,
        "touched": task.touched,
        "token_jti": task.token_jti,
        "on_behalf_of": task.on_behalf_of,
        "parent_id": task.parent_id,
        "depth": task.depth,
        "ended_at": task.ended_at,
        "end_reason": task.end_reason,
        "user_subject": task.user_subject,
        "user_issuer": task.user_issuer,
    }


_INSERT_TASK = text(
    f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES "  # noqa: S608
    f"({', '.join(':' + c.strip() for c in _TASK_COLUMNS.split(','))})"
)
_CARVE_PARENT = text(
    "UPDATE tasks SET max_calls = max_calls - :calls "  # noqa: S608
    "WHERE task_id = :p AND state = 'active' AND expires_at > :now "
    "AND expires_at >= :child_expires AND max_calls - calls_used >= :calls "
    f"RETURNING {_TASK_COLUMNS}"
)
#: every task below :t (children, their children...); UNION, so even a cycle ends
_DESCENDANTS = (
    "WITH RECURSIVE tree(id) AS ("
    "SELECT task_id FROM tasks WHERE parent_id = :t "
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id) "
)
_END_DESCENDANTS = text(
    f"{_DESCENDANTS}UPDATE tasks SET state = 'revoked', ended_at = :at, "  # noqa: S608
    "end_reason = :r "
    "WHERE task_id IN (SELECT id FROM tree) AND state IN ('active', 'suspended') "
    f"RETURNING {_TASK_COLUMNS}"
)
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
_CHILDREN = text(
    f"SELECT {_TASK_COLUMNS} FROM tasks WHERE parent_id = :p "  # noqa: S608
    "ORDER BY created_at, task_id"
)


def _append_op(events: list[dict[str, object]], seal: Sealer) -> WriteOp[list[AuditRecord]]:
    """The write that seals ``events`` onto the chain's head and inserts them.

    It reads the head inside the batch's transaction, so events appended by earlier
    ops of the same batch are already there and the chain links through them.
    """

    def op(conn: Connection) -> list[AuditRecord]:
        driver = _driver(conn)
        head = driver.execute(_AUDIT_HEAD).fetchone()
        seq, prev_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
        sealed: list[AuditRecord] = []
        for unsealed in events:
            seq += 1
            record = seal(unsealed, seq, prev_hash)
            sealed.append(record)
            prev_hash = record.hash
        driver.executemany(
            _AUDIT_INSERT,
            [
                {
                    "seq": r.seq,
                    "event_id": r.event_id,
                    "time": r.time,
                    "kind": r.kind,
                    "outcome": r.outcome,
                    "body": r.body,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                }
                for r in sealed
            ],
        )
        return sealed

    return op


# The write of each change (:mod:`zerolane.store.changes`): the port's write methods
# run them alone, ``write_recorded`` with the append of their audit events.
_INSERT_WORKLOAD = text(
    f"INSERT INTO workloads ({_WORKLOAD_COLUMNS}) VALUES "  # noqa: S608
    "(:spiffe_id, :selectors, :owner, :status, :created_at, :updated_at)"
)
_INSERT_JOIN_TOKEN = text(
    f"INSERT INTO join_tokens ({_JOIN_TOKEN_COLUMNS}) VALUES (:h, :s, :c, :e, :u)"  # noqa: S608
)
_PUT_BUNDLE = text(
    "INSERT INTO federated_bundles VALUES (:td, :b, :seq, :at) "
    "ON CONFLICT (trust_domain) DO UPDATE SET bundle_json = excluded.bundle_json, "
    "sequence = excluded.sequence, updated_at = excluded.updated_at"
)
_INSERT_ADMIN = text("INSERT INTO admin_credentials VALUES (:i, :h, :c)")
_PUT_PLAYBOOK = text(
    "INSERT INTO playbooks VALUES (:n, :d, :v, :at) ON CONFLICT (name) DO UPDATE SET "
    "document = excluded.document, version = excluded.version, "
    "updated_at = excluded.updated_at"
)
#: :t and every task below it whose window is over at :at (see ``ExpireTree``)
_EXPIRE_TREE = text(
    "WITH RECURSIVE tree(id) AS (SELECT :t "  # noqa: S608
    "UNION SELECT tasks.task_id FROM tasks JOIN tree ON tasks.parent_id = tree.id) "
    "UPDATE tasks SET state = 'expired', ended_at = expires_at, "
    "end_reason = 'expired' "
    "WHERE task_id IN (SELECT id FROM tree) AND state IN ('active', 'suspended') "
    f"AND expires_at <= :at RETURNING {_TASK_COLUMNS}"
)


def _change_key(change: Change[Any]) -> str | None:
    """The task a change writes (see ``GroupCommitWriter.settle``), if any."""
    match change:
        case AddChildTask(child, _):
            return child.parent_id
        case EndTree(task_id=task_id) | ExpireTree(task_id=task_id):
            return task_id
    return None


def _insert(
    conn: Connection, statement: Any, params: dict[str, Any], conflict: tuple[str, str]
) -> None:
    """Insert one row; a unique constraint violation is ``Conflict(*conflict)``."""
    try:
        conn.execute(statement, params)
    except IntegrityError as err:
        raise Conflict(*conflict) from err


def _change_op(change: Change[T]) -> WriteOp[T]:
    """The write of ``change``: a function of the writer's connection."""

    def op(conn: Connection) -> Any:
        match change:
            case TransitionLease():
                return _transition_lease(conn, change)
            case AddTask(task):
                conflict = ("task.exists", f"task {task.task_id} exists")
                return _insert(conn, _INSERT_TASK, _task_values(task), conflict)
            case AddChildTask(child, now):
                return _add_child(conn, child, now)
            case EndTree(task_id, state, at, reason, below):
                return _end_tree(conn, task_id, state, at, reason, below)
            case ExpireTree(task_id, at):
                return _expire_tree(conn, task_id, at)
            case AddWorkload(workload):
                conflict = ("workload.exists", f"{workload.spiffe_id} is already registered")
                return _insert(conn, _INSERT_WORKLOAD, _workload_values(workload), conflict)
            case SetWorkloadStatus(spiffe_id, status, at):
                params = {"st": status.value, "at": at, "s": spiffe_id}
                row = conn.execute(_SET_WORKLOAD_STATUS, params).first()
                return _workload(row) if row is not None else None
            case AddJoinToken(token):
                params = {
                    "h": token.token_hash,
                    "s": token.spiffe_id,
                    "c": token.created_at,
                    "e": token.expires_at,
                    "u": token.used_at,
                }
                conflict = ("join_token.exists", "a join token with this hash exists")
                return _insert(conn, _INSERT_JOIN_TOKEN, params, conflict)
            case ConsumeJoinToken(token_hash, now):
                return _consume_join_token(conn, token_hash, now)
            case PutBundle(bundle):
                params = {
                    "td": bundle.trust_domain,
                    "b": bundle.bundle_json,
                    "seq": bundle.sequence,
                    "at": bundle.updated_at,
                }
                conn.execute(_PUT_BUNDLE, params)
                return None
            case AddAdminCredential(credential):
                params = {
                    "i": credential.credential_id,
                    "h": credential.credential_hash,
                    "c": credential.created_at,
                }
                conn.execute(_INSERT_ADMIN, params)
                return None
            case PutPlaybook(playbook):
                params = {
                    "n": playbook.name,
                    "d": playbook.document,
                    "v": playbook.version,
                    "at": playbook.updated_at,
                }
                conn.execute(_PUT_PLAYBOOK, params)
                return None
            case AddEnforcementPoint():
                return add_point(conn, change)
            case RemoveEnforcementPoint():
                return remove_point(conn, change)
        raise TypeError(f"unknown change {type(change).__name__}")

    return op


def _workload_values(workload: Workload) -> dict[str, Any]:
    return {
        "spiffe_id": workload.spiffe_id,
        "selectors": json.dumps(list(workload.selectors)),
        "owner": workload.owner,
        "status": workload.status.value,
        "created_at": workload.created_at,
        "updated_at": workload.updated_at,
    }


def _consume_join_token(conn: Connection, token_hash: str, now: float) -> ConsumeResult:
    consumed = conn.execute(_CONSUME_JOIN_TOKEN, {"now": now, "h": token_hash}).first()
    if consumed is not None:
        return ConsumeResult(ConsumeStatus.CONSUMED, _join_token(consumed))
    row = conn.execute(_GET_JOIN_TOKEN, {"h": token_hash}).first()
    if row is None:
        return ConsumeResult(ConsumeStatus.UNKNOWN, None)
    token = _join_token(row)
    if token.used_at is not None:
        return ConsumeResult(ConsumeStatus.ALREADY_USED, token)
    return ConsumeResult(ConsumeStatus.EXPIRED, token)


def _add_child(conn: Connection, child: TaskRecord, now: float) -> TaskRecord | None:
    if child.parent_id is None:
        return None
    carve = {
        "p": child.parent_id,
        "calls": child.max_calls,
        "now": now,
        "child_expires": child.expires_at,
    }
    parent = conn.execute(_CARVE_PARENT, carve).first()
    if parent is None:
        return None
    values = _task_values(child)
    try:  # the child inherits what the parent has read, as of this write
        conn.execute(_INSERT_TASK, values | {"touched": max(child.touched, parent.touched)})
    except IntegrityError as err:  # the op's savepoint rolls the carve back too
        raise Conflict("task.exists", f"task {child.task_id} exists") from err
    return _task(parent)


def _end_tree(
    conn: Connection, task_id: str, state: TaskState, at: float, reason: str, below: str
) -> list[TaskRecord]:
    end = {"s": state.value, "at": at, "r": reason, "t": task_id}
    root = conn.execute(_END_TASK, end).first()
    descendants = conn.execute(_END_DESCENDANTS, {"at": at, "r": below, "t": task_id}).all()
    ended = [_task(root)] if root is not None else []
    return ended + _by_depth(_task(r) for r in descendants)


def _expire_tree(conn: Connection, task_id: str, at: float) -> list[TaskRecord]:
    expired = [_task(r) for r in conn.execute(_EXPIRE_TREE, {"t": task_id, "at": at}).all()]
    root = [t for t in expired if t.task_id == task_id]
    return root + _by_depth(t for t in expired if t.task_id != task_id)


def _transition_lease(conn: Connection, change: TransitionLease) -> LeaseRecord | None:
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
    row = conn.execute(_TRANSITION, params).first()
    return _lease(row) if row is not None else None


def _by_depth(tasks: Iterable[TaskRecord]) -> list[TaskRecord]:
    return sorted(tasks, key=lambda t: (t.depth, t.created_at, t.task_id))
