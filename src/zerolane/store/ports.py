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
    Workload,
)
from zerolane.types import WorkloadStatus

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


class Stores(WorkloadStore, JoinTokenStore, BundleStore, AdminStore, AuditStore, Protocol):
    """Everything one backend provides."""

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


#: The hash that the first event of a chain links to.
GENESIS_HASH = "0" * 64
