"""The workload registry: who may be attested, with which selectors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, NotFound, ZerolaneError
from zerolane.identity.selectors import parse_selectors
from zerolane.identity.spiffe_id import parse_workload_id
from zerolane.store.changes import AddWorkload, SetWorkloadStatus
from zerolane.store.ports import BundleStore, RecordedWrites, WorkloadStore
from zerolane.store.records import Workload
from zerolane.types import Clock, Outcome, WorkloadStatus

MAX_OWNER_LEN = 256


class RecordedWorkloadStore(WorkloadStore, RecordedWrites, Protocol):
    """The workload store the registry writes through: each change with its event."""


class WorkloadRegistry:
    def __init__(
        self,
        trust_domain: str,
        workloads: RecordedWorkloadStore,
        bundles: BundleStore,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self.trust_domain = trust_domain
        self._workloads = workloads
        self._bundles = bundles
        self._audit = audit
        self._clock = clock

    def check_trust_domain(self, trust_domain: str) -> None:
        if trust_domain != self.trust_domain and self._bundles.get_bundle(trust_domain) is None:
            raise InvalidInput(
                "spiffe_id.foreign_trust_domain",
                f"trust domain {trust_domain!r} is neither this one ({self.trust_domain!r}) "
                "nor a federated one (zerolane federation add)",
            )

    def register(
        self,
        spiffe_id: str,
        *,
        selectors: Iterable[str],
        owner: str | None,
        actor: Actor,
    ) -> Workload:
        try:
            parsed = parse_workload_id(spiffe_id)
            self.check_trust_domain(parsed.trust_domain)
            clean = parse_selectors(selectors)
            if owner is not None and not 0 < len(owner) <= MAX_OWNER_LEN:
                raise InvalidInput("workload.owner", f"owner must be 1..{MAX_OWNER_LEN} chars")
            now = self._clock.now()
            workload = Workload(str(parsed), clean, owner, WorkloadStatus.ENABLED, now, now)
            registered = self._audit.event(
                "workload.registered",
                actor,
                workload.spiffe_id,
                Outcome.SUCCESS,
                details={"selectors": list(clean), "owner": owner},
            )
            # the workload and its event in one write: never one without the other
            self._workloads.write_recorded(
                AddWorkload(workload), lambda _: [registered.unsealed()], seal
            )
        except ZerolaneError as err:
            self._audit.record(
                "workload.registered",
                actor=actor,
                subject=spiffe_id[:2048],
                outcome=Outcome.FAILURE,
                reason=err.reason,
            )
            raise
        return workload

    def get(self, spiffe_id: str) -> Workload:
        workload = self._workloads.get_workload(spiffe_id)
        if workload is None:
            raise NotFound("workload.unknown", f"no workload {spiffe_id} is registered")
        return workload

    def list(self) -> list[Workload]:
        return self._workloads.list_workloads()

    def set_status(self, spiffe_id: str, status: WorkloadStatus, *, actor: Actor) -> Workload:
        changed = self._audit.event(f"workload.{status.value}", actor, spiffe_id, Outcome.SUCCESS)
        updated = self._workloads.write_recorded(
            SetWorkloadStatus(spiffe_id, status, self._clock.now()),
            lambda done: [changed.unsealed()] if done is not None else [],
            seal,
        )
        if updated is None:
            raise NotFound("workload.unknown", f"no workload {spiffe_id} is registered")
        return updated
