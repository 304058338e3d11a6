"""SQLite backend (embedded default): WAL, ``BEGIN IMMEDIATE`` writes, full fsync.

Built on SQLAlchemy Core so that the same statements serve PostgreSQL later.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from zerolane.errors import Conflict, InvalidInput, Unavailable
from zerolane.store.ports import GENESIS_HASH, Sealer
from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeResult,
    ConsumeStatus,
    FederatedBundle,
    JoinToken,
    PlaybookRecord,
    TaskRecord,
    Workload,
)
from zerolane.store.sqlite.migrations import LATEST, MIGRATIONS
from zerolane.types import TaskState, WorkloadStatus

_AUDIT_COLUMNS = "seq, event_id, time, kind, outcome, body, prev_hash, hash"


def _configure(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
    "on_behalf_of, parent_id, depth, ended_at, end_reason"
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


class SqliteStores:
    """Implements every port of :mod:`zerolane.store.ports` on one SQLite file."""

    def __init__(self, path: Path) -> None:
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
        # SQLite has one writer; queueing our own threads here is far cheaper than
        # letting them spin in SQLite's busy handler. Other processes still use it.
        self._write_lock = threading.Lock()
        _configure(self._engine)
        try:
            self._migrate()
        except SQLAlchemyError as err:
            self._engine.dispose()
            raise Unavailable("store.open", f"cannot open the database at {path}") from err
        except BaseException:
            self._engine.dispose()
            raise

    # schema
    def _migrate(self) -> None:
        with self._engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = conn.execute(text("SELECT MAX(version) FROM schema_migrations")).scalar()
            current = current or 0
            if current > LATEST:
                raise InvalidInput(
                    "store.schema_too_new",
                    f"the database schema is version {current}; this zerolane knows {LATEST}",
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
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
        self._engine.dispose()

    def _read(self, sql: str, **params: Any) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        except SQLAlchemyError as err:
            raise Unavailable("store.read", "the database could not be read") from err

    def _write(self, sql: str, **params: Any) -> int:
        try:
            with self._write_lock, self._engine.begin() as conn:
                return conn.execute(text(sql), params).rowcount
        except IntegrityError:
            raise
        except SQLAlchemyError as err:
            raise Unavailable("store.write", "the database could not be written") from err

    # workloads
    def add_workload(self, workload: Workload) -> None:
        try:
            self._write(
                "INSERT INTO workloads VALUES (:spiffe_id, :selectors, :owner, :status, "
                ":created_at, :updated_at)",
                spiffe_id=workload.spiffe_id,
                selectors=json.dumps(list(workload.selectors)),
                owner=workload.owner,
                status=workload.status.value,
                created_at=workload.created_at,
                updated_at=workload.updated_at,
            )
        except IntegrityError as err:
            raise Conflict(
                "workload.exists", f"{workload.spiffe_id} is already registered"
            ) from err

    def get_workload(self, spiffe_id: str) -> Workload | None:
        rows = self._read("SELECT * FROM workloads WHERE spiffe_id = :s", s=spiffe_id)
        return _workload(rows[0]) if rows else None

    def list_workloads(self) -> list[Workload]:
        return [_workload(r) for r in self._read("SELECT * FROM workloads ORDER BY spiffe_id")]

    def set_workload_status(
        self, spiffe_id: str, status: WorkloadStatus, at: float
    ) -> Workload | None:
        changed = self._write(
            "UPDATE workloads SET status = :st, updated_at = :at WHERE spiffe_id = :s",
            st=status.value,
            at=at,
            s=spiffe_id,
        )
        return self.get_workload(spiffe_id) if changed else None

    # join tokens
    def add_join_token(self, token: JoinToken) -> None:
        try:
            self._write(
                "INSERT INTO join_tokens VALUES (:h, :s, :c, :e, :u)",
                h=token.token_hash,
                s=token.spiffe_id,
                c=token.created_at,
                e=token.expires_at,
                u=token.used_at,
            )
        except IntegrityError as err:
            raise Conflict("join_token.exists", "a join token with this hash exists") from err

    def consume_join_token(self, token_hash: str, now: float) -> ConsumeResult:
        try:
            with self._write_lock, self._engine.begin() as conn:
                consumed = conn.execute(
                    text(
                        "UPDATE join_tokens SET used_at = :now WHERE token_hash = :h "
                        "AND used_at IS NULL AND expires_at > :now "
                        "RETURNING token_hash, spiffe_id, created_at, expires_at, used_at"
                    ),
                    {"now": now, "h": token_hash},
                ).first()
        except SQLAlchemyError as err:
            raise Unavailable("store.write", "the database could not be written") from err
        if consumed is not None:
            return ConsumeResult(ConsumeStatus.CONSUMED, _join_token(consumed))
        rows = self._read("SELECT * FROM join_tokens WHERE token_hash = :h", h=token_hash)
        if not rows:
            return ConsumeResult(ConsumeStatus.UNKNOWN, None)
        token = _join_token(rows[0])
        if token.used_at is not None:
            return ConsumeResult(ConsumeStatus.ALREADY_USED, token)
        return ConsumeResult(ConsumeStatus.EXPIRED, token)

    # federation bundles
    def put_bundle(self, bundle: FederatedBundle) -> None:
        self._write(
            "INSERT INTO federated_bundles VALUES (:td, :b, :seq, :at) "
            "ON CONFLICT (trust_domain) DO UPDATE SET bundle_json = excluded.bundle_json, "
            "sequence = excluded.sequence, updated_at = excluded.updated_at",
            td=bundle.trust_domain,
            b=bundle.bundle_json,
            seq=bundle.sequence,
            at=bundle.updated_at,
        )

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
        self._write(
            "INSERT INTO admin_credentials VALUES (:i, :h, :c)",
            i=credential.credential_id,
            h=credential.credential_hash,
            c=credential.created_at,
        )

    def list_admin_credentials(self) -> list[AdminCredential]:
        rows = self._read("SELECT * FROM admin_credentials ORDER BY created_at")
        return [AdminCredential(*r) for r in rows]

    # audit
    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        if not events:  # an empty executemany is deprecated in SQLAlchemy
            return []
        try:
            with self._write_lock, self._engine.begin() as conn:
                head = conn.execute(
                    text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                ).first()
                seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
                sealed: list[AuditRecord] = []
                for unsealed in events:
                    seq += 1
                    record = seal(unsealed, seq, prev_hash)
                    sealed.append(record)
                    prev_hash = record.hash
                conn.execute(
                    text(
                        f"INSERT INTO audit_events ({_AUDIT_COLUMNS}) VALUES "  # noqa: S608
                        "(:seq, :event_id, :time, :kind, :outcome, :body, :prev_hash, :hash)"
                    ),
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
        except SQLAlchemyError as err:
            raise Unavailable("audit.write", "the audit event could not be recorded") from err

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
        self._write(
            "INSERT INTO playbooks VALUES (:n, :d, :v, :at) ON CONFLICT (name) DO UPDATE SET "
            "document = excluded.document, version = excluded.version, "
            "updated_at = excluded.updated_at",
            n=playbook.name,
            d=playbook.document,
            v=playbook.version,
            at=playbook.updated_at,
        )

    def get_playbook(self, name: str) -> PlaybookRecord | None:
        rows = self._read("SELECT * FROM playbooks WHERE name = :n", n=name)
        return PlaybookRecord(*rows[0]) if rows else None

    def list_playbooks(self) -> list[PlaybookRecord]:
        return [PlaybookRecord(*r) for r in self._read("SELECT * FROM playbooks ORDER BY name")]

    # tasks
    def add_task(self, task: TaskRecord) -> None:
        values = {
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
        }
        placeholders = ", ".join(f":{name}" for name in values)
        try:
            self._write(
                f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({placeholders})",  # noqa: S608
                **values,
            )
        except IntegrityError as err:
            raise Conflict("task.exists", f"task {task.task_id} exists") from err

    def get_task(self, task_id: str) -> TaskRecord | None:
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
        changed = self._write(
            "UPDATE tasks SET state = :s, ended_at = :at, end_reason = :r "
            "WHERE task_id = :t AND state IN ('active', 'suspended')",
            s=state.value,
            at=at,
            r=reason,
            t=task_id,
        )
        return self.get_task(task_id) if changed else None

    def spend_call(
        self, task_id: str, *, expected_calls_used: int, touched: int, now: float
    ) -> TaskRecord | None:
        try:
            with self._write_lock, self._engine.begin() as conn:
                row = conn.execute(
                    text(
                        "UPDATE tasks SET calls_used = calls_used + 1, "  # noqa: S608
                        "touched = CASE WHEN touched < :touched THEN :touched ELSE touched END "
                        "WHERE task_id = :t AND state = 'active' AND calls_used = :expected "
                        "AND calls_used < max_calls AND expires_at > :now "
                        f"RETURNING {_TASK_COLUMNS}"
                    ),
                    {"t": task_id, "expected": expected_calls_used, "touched": touched, "now": now},
                ).first()
        except SQLAlchemyError as err:
            raise Unavailable("store.write", "the database could not be written") from err
        return _task(row) if row is not None else None
