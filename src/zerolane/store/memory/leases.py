"""In-memory lease store, composed into :class:`zerolane.store.memory.MemoryStores`."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

from zerolane.errors import Conflict
from zerolane.store.records import LeaseRecord, LeaseState


class MemoryLeases:
    """Implements :class:`zerolane.store.ports.LeaseStore` under its own lock."""

    def __init__(self) -> None:
        self._lease_lock = threading.Lock()
        self._leases: dict[str, LeaseRecord] = {}

    def add_lease(self, lease: LeaseRecord) -> None:
        with self._lease_lock:
            if lease.lease_id in self._leases:
                raise Conflict("lease.exists", f"lease {lease.lease_id} exists")
            self._leases[lease.lease_id] = lease

    def get_lease(self, lease_id: str) -> LeaseRecord | None:
        with self._lease_lock:
            return self._leases.get(lease_id)

    def list_leases(
        self,
        *,
        task_id: str | None = None,
        state: LeaseState | None = None,
        due_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[LeaseRecord]:
        with self._lease_lock:
            leases = [
                lease
                for lease in self._leases.values()
                if (task_id is None or lease.task_id == task_id)
                and (state is None or lease.state is state)
                and (
                    due_before is None
                    or (lease.next_attempt_at is not None and lease.next_attempt_at <= due_before)
                )
                and (before is None or (lease.created_at, lease.lease_id) < before)
            ]
        leases.sort(key=lambda lease: (lease.created_at, lease.lease_id), reverse=True)
        return leases[:limit]

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
        with self._lease_lock:
            lease = self._leases.get(lease_id)
            if lease is None or lease.state not in expected:
                return None
            moved = dataclasses.replace(
                lease,
                state=state,
                updated_at=at,
                attempts=lease.attempts + (1 if count_attempt else 0),
                last_error=error if error is not None else lease.last_error,
                next_attempt_at=next_attempt_at,
                end_reason=end_reason if end_reason is not None else lease.end_reason,
            )
            self._leases[lease_id] = moved
            return moved
