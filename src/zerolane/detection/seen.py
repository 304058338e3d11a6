"""One audit event as a detector sees it (:class:`Seen`), and what a detector reports
(:class:`Detection`): the shape of every ``detection`` audit event.

A detection names the detector, its severity, the task and workload it is about, and
its evidence: the sequence numbers and ids of the events that made it fire. A response
policy (a later slice) acts on exactly these members.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zerolane.store.records import AuditRecord

#: the kind of the events detections are recorded as; detectors never read them
DETECTION = "detection"
#: the subject of a detection about requests whose task is not known
UNKNOWN = "unknown"
#: at most this many events are named as a detection's evidence (the first ones)
MAX_EVIDENCE = 100


def _time(value: object) -> float:
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return 0.0


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Seen:
    """The members of an audit event detectors read, parsed once per event (its JSON
    decoded once, and what several detectors ask of it worked out once: every detector
    of a runner is handed the same view)."""

    seq: int
    event_id: str
    time: float
    kind: str
    outcome: str
    reason: str
    subject: str
    actor_type: str
    actor_id: str
    details: Mapping[str, Any] = field(default_factory=dict)
    #: the workload that made the request, when it was authenticated
    workload: str | None = None
    #: the task of the event, when the log names one: its subject, else a refusal's
    #: ``details.task_id`` (a request refused before its task was checked)
    task_id: str | None = None
    #: every reason id of the event: ``reason`` and a decision's ``details.reasons``
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, record: AuditRecord) -> Seen:
        """Parse ``record``; a member missing or of another type reads as empty."""
        try:
            body = json.loads(record.body)
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        actor = body.get("actor")
        actor = actor if isinstance(actor, dict) else {}
        details = body.get("details")
        details = details if isinstance(details, dict) else {}
        reason, subject = _text(body.get("reason")), _text(body.get("subject"))
        actor_type, actor_id = _text(actor.get("type")), _text(actor.get("id"))
        workload = (
            actor_id
            if actor_type == "workload" and actor_id and actor_id != "unauthenticated"
            else None
        )
        if subject and subject != UNKNOWN:
            task_id: str | None = subject
        else:
            named = details.get("task_id")
            task_id = named if isinstance(named, str) and named else None
        listed = details.get("reasons")
        if isinstance(listed, list) and listed:
            reasons = tuple(dict.fromkeys([reason, *(r for r in listed if isinstance(r, str))]))
        else:
            reasons = (reason,)
        return cls(
            seq=record.seq,
            event_id=record.event_id,
            time=_time(record.time),
            kind=record.kind,
            outcome=record.outcome,
            reason=reason,
            subject=subject,
            actor_type=actor_type,
            actor_id=actor_id,
            details=details,
            workload=workload,
            task_id=task_id,
            reasons=reasons,
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """One event a detection rests on."""

    seq: int
    event_id: str

    def as_json(self) -> dict[str, object]:
        return {"seq": self.seq, "event_id": self.event_id}


@dataclass(frozen=True, slots=True)
class Detection:
    """What a detector found; recorded as a ``detection`` audit event whose reason is
    ``detection.<detector>`` and whose subject is the task (else the workload, else
    ``unknown``)."""

    detector: str
    severity: str
    summary: str
    task_id: str | None
    workload: str | None
    evidence: tuple[Evidence, ...]
    #: the detector's own members: its thresholds and what it counted
    facts: Mapping[str, object] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.task_id or self.workload or UNKNOWN

    def details(self) -> dict[str, object]:
        """The ``details`` of its audit event."""
        shown = self.evidence[:MAX_EVIDENCE]
        return {
            **self.facts,
            "detector": self.detector,
            "severity": self.severity,
            "summary": self.summary,
            "task_id": self.task_id,
            "workload": self.workload,
            "evidence": [e.as_json() for e in shown],
            "evidence_total": len(self.evidence),
        }
