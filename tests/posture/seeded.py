"""A seeded home for the inventory tests: real stores (memory and SQLite), workloads
registered and audit events recorded as the services record them, on a clock the test
moves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from zerolane.audit.events import SYSTEM, Actor
from zerolane.audit.log import AuditLog
from zerolane.store.open import open_stores
from zerolane.store.ports import Stores
from zerolane.store.records import Workload
from zerolane.types import Outcome, WorkloadStatus

DAY = 86400.0
#: when the home was set up; the tests look at it a hundred days later
START = 1_800_000_000.0
NOW = START + 100 * DAY
TD = "spiffe://example.org"


class SetClock:
    def __init__(self, now: float = START) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


class Seeded:
    """Stores with workloads and the events they made, at chosen times."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.clock = SetClock()
        self.audit = AuditLog(stores, self.clock)

    def workload(
        self,
        name: str,
        *,
        owner: str | None = "team-a",
        at: float = START,
        status: WorkloadStatus = WorkloadStatus.ENABLED,
        selectors: tuple[str, ...] = (),
    ) -> str:
        spiffe_id = f"{TD}/{name}"
        self.stores.add_workload(Workload(spiffe_id, selectors, owner, status, at, at))
        self.event("workload.registered", at, Actor("admin", "t"), spiffe_id)
        return spiffe_id

    def event(
        self,
        kind: str,
        at: float,
        actor: Actor,
        subject: str,
        details: Mapping[str, object] | None = None,
        outcome: Outcome = Outcome.SUCCESS,
    ) -> None:
        self.clock.t = at
        self.audit.record(kind, actor=actor, subject=subject, outcome=outcome, details=details)

    def attest(
        self, spiffe_id: str, at: float, jkt: str, method: str = "join_token", **facts: str
    ) -> None:
        """A successful attestation and the SVID it issued, bound to key ``jkt``."""
        self.event(
            "attestation", at, Actor("workload", spiffe_id), spiffe_id, {"method": method, **facts}
        )
        self.event(
            "svid.issued",
            at,
            SYSTEM,
            spiffe_id,
            {"svid_id": "s", "kid": "k", "aud": [], "exp": at + 300, "jkt": jkt, "method": method},
        )

    def task(self, spiffe_id: str, at: float, playbook: str, jkt: str, task_id: str = "t") -> None:
        self.event(
            "task.opened",
            at,
            Actor("workload", spiffe_id),
            task_id,
            {"playbook": playbook, "playbook_version": 1, "jkt": jkt, "token_id": "j"},
        )

    def decision(self, spiffe_id: str, at: float, jkt: str, allowed: bool = True) -> None:
        self.event(
            "decision",
            at,
            Actor("workload", spiffe_id),
            "t",
            {"decision": "allow" if allowed else "deny", "jkt": jkt},
            Outcome.SUCCESS if allowed else Outcome.DENIED,
        )


def open_backend(backend: str, tmp_path: Path) -> Stores:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'state.db'}"
    return open_stores(url)
