"""The storage ports: one small Protocol per kind of state.

A backend implements all of them (see ``memory`` and ``sqlite``). Every method is
atomic on its own; methods that must be atomic together (consume a join token; append
to the audit chain) are single methods here, never read-then-write in the core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeResult,
    FederatedBundle,
    JoinToken,
    PlaybookRecord,
    TaskRecord,
    Workload,
)
from zerolane.types import TaskState, WorkloadStatus

#: Seals one event: given its unsealed JSON object, the sequence number it gets and the
#: previous record's hash, returns the record to store. Supplied by the audit layer.
Sealer = Callable[[dict[str, object], int, str], AuditRecord]


class WorkloadStore(Protocol):
    def add_workload(self, workload: Workload) -> None:
        """Store a new workload; raise ``Conflict`` when the SPIFFE ID exists."""

    def get_workload(self, spiffe_id: str) -> Workload | None: ...

    def list_workloads(self) -> list[Workload]:
        """All workloads, ordered by SPIFFE ID."""

    def set_workload_status(
        self, spiffe_id: str, status: WorkloadStatus, at: float
    ) -> Workload | None:
        """Change the status; return the new record, or None when unknown."""


class JoinTokenStore(Protocol):
    def add_join_token(self, token: JoinToken) -> None: ...

    def consume_join_token(self, token_hash: str, now: float) -> ConsumeResult:
        """Atomically mark the token used if it is unused and unexpired.

        Exactly one of any number of concurrent callers gets ``CONSUMED``.
        """


class BundleStore(Protocol):
    def put_bundle(self, bundle: FederatedBundle) -> None:
        """Insert or replace the bundle of ``bundle.trust_domain``."""

    def get_bundle(self, trust_domain: str) -> FederatedBundle | None: ...

    def list_bundles(self) -> list[FederatedBundle]: ...


class AdminStore(Protocol):
    def add_admin_credential(self, credential: AdminCredential) -> None: ...

    def list_admin_credentials(self) -> list[AdminCredential]: ...


class AuditStore(Protocol):
    def append_events(self, events: Sequence[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
        """Append ``events`` at the head of the chain, all or none, durably."""

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Records with ``seq > after_seq`` in order, at most ``limit``."""

    def last_event(self) -> AuditRecord | None: ...


class PlaybookStore(Protocol):
    def put_playbook(self, playbook: PlaybookRecord) -> None:
        """Insert or replace the playbook of ``playbook.name``."""

    def get_playbook(self, name: str) -> PlaybookRecord | None: ...

    def list_playbooks(self) -> list[PlaybookRecord]:
        """All playbooks, ordered by name."""


class TaskStore(Protocol):
    def add_task(self, task: TaskRecord) -> None:
        """Store a new task; raise ``Conflict`` when the id exists."""

    def get_task(self, task_id: str) -> TaskRecord | None: ...

    def list_tasks(
        self, *, owner: str | None = None, state: TaskState | None = None, limit: int = 100
    ) -> list[TaskRecord]:
        """Tasks, newest first, optionally of one owner and/or in one stored state."""

    def end_task(self, task_id: str, state: TaskState, at: float, reason: str) -> TaskRecord | None:
        """Move a live (active or suspended) task to ``state``, atomically.

        Returns the updated task, or None when it is unknown or had already ended.
        """

    def spend_call(
        self, task_id: str, *, expected_calls_used: int, touched: int, now: float
    ) -> TaskRecord | None:
        """Spend one call, compare-and-set: only when the task is still active, unexpired
        at ``now``, has calls left and ``calls_used == expected_calls_used``. Raises
        ``touched`` to at least the given rank. Returns the updated task, or None when
        any condition failed (the caller re-reads and decides again)."""


class ReplayCache(Protocol):
    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        """Remember ``key`` until ``expires_at``; True only the first time it is seen.

        A cache that cannot remember (full, unreachable) returns False: fail closed.
        """


class Stores(
    WorkloadStore,
    JoinTokenStore,
    BundleStore,
    AdminStore,
    AuditStore,
    PlaybookStore,
    TaskStore,
    Protocol,
):
    """Everything one backend provides."""

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


#: The hash that the first event of a chain links to.
GENESIS_HASH = "0" * 64
