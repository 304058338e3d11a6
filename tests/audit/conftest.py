"""Shared helpers for the audit tests: a fixed clock and a sealed chain."""

from __future__ import annotations

import pytest

from zerolane.audit.chain import seal
from zerolane.audit.events import SYSTEM, Actor, Event
from zerolane.store.ports import GENESIS_HASH
from zerolane.store.records import AuditRecord
from zerolane.types import Outcome

NOW = 1_800_000_000.0


class FixedClock:
    def __init__(self, now: float = NOW) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def make_event(n: int, *, actor: Actor = SYSTEM, outcome: Outcome = Outcome.SUCCESS) -> Event:
    return Event(
        kind="workload.registered",
        actor=actor,
        subject=f"spiffe://example.org/w{n}",
        outcome=outcome,
        reason="ok" if outcome is Outcome.SUCCESS else "test.refused",
        time=NOW + n,
        details={"n": n},
    )


def build_chain(count: int) -> list[AuditRecord]:
    """``count`` sealed records, seq 1..count, each linked to the one before."""
    records: list[AuditRecord] = []
    prev = GENESIS_HASH
    for n in range(1, count + 1):
        record = seal(make_event(n).unsealed(), n, prev)
        records.append(record)
        prev = record.hash
    return records


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()
