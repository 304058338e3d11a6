"""Recorded event sequences for the detectors' tests: real audit events, sealed into a
chain as the log stores them, at times the test chooses."""

from __future__ import annotations

from collections.abc import Mapping

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor, Event
from zerolane.detection.detector import Detector
from zerolane.detection.seen import Detection, Seen
from zerolane.store.ports import GENESIS_HASH
from zerolane.store.records import AuditRecord
from zerolane.types import Outcome

T0 = 1_700_000_000.0
AGENT = "spiffe://example.org/agents/a1"


class Recorder:
    """Builds a chain of audit records, one call per event."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def add(
        self,
        kind: str,
        at: float,
        *,
        subject: str = "tsk_1",
        outcome: Outcome = Outcome.DENIED,
        reason: str = "ok",
        actor: str = AGENT,
        details: Mapping[str, object] | None = None,
    ) -> AuditRecord:
        prev = self.records[-1].hash if self.records else GENESIS_HASH
        event = Event(
            kind, Actor("workload", actor), subject, outcome, reason, T0 + at, details or {}
        )
        record = seal(event.unsealed(), len(self.records) + 1, prev)
        self.records.append(record)
        return record

    def decision(
        self,
        at: float,
        *,
        task: str = "tsk_1",
        reason: str = "policy.denied",
        action: str | None = "http:GET",
        resource: str = "https://api.example.org/a",
        allowed: bool = False,
        actor: str = AGENT,
    ) -> AuditRecord:
        details: dict[str, object] = {"decision": "allow" if allowed else "deny"}
        details["reasons"] = [reason]
        if action is not None:
            details |= {"action": action, "resource": resource}
        outcome = Outcome.SUCCESS if allowed else Outcome.DENIED
        return self.add(
            "decision",
            at,
            subject=task,
            outcome=outcome,
            reason=reason,
            actor=actor,
            details=details,
        )

    def delegate(self, at: float, child: str, parent: str, depth: int = 1) -> AuditRecord:
        return self.add(
            "task.delegate",
            at,
            subject=child,
            outcome=Outcome.SUCCESS,
            details={"parent_id": parent, "depth": depth},
        )


def run(detector: Detector, records: list[AuditRecord]) -> list[Detection]:
    """Feed ``records`` to ``detector`` in order; every detection it made."""
    found: list[Detection] = []
    for record in records:
        found.extend(detector.observe(Seen.of(record)))
    return found


def seqs(detection: Detection) -> list[int]:
    return [e.seq for e in detection.evidence]
