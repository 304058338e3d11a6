"""The shadow report: what shadow mode let through that enforcement would have denied,
grouped by reason, read from the audit log (``zerolane report shadow``,
``GET /v1/admin/reports/shadow``).

Every shadow allow is a ``decision`` event whose ``details.decision`` is ``shadow``, with
the reasons enforcement would have denied it for (``would_deny``), what was in shadow
mode (``shadow``: ``policies``, ``playbook:<name>``, ``route:<name>``) and its task's
``playbook`` (:mod:`zerolane.tasks.decisions`). The report counts them per would-deny
reason (a request that would have been denied for two reasons counts under each), with
the playbooks and modes involved, a few examples of what was asked, and when it was
first and last seen: what to fix in a playbook or a policy before enforcing it.

The log is read through the store port from the first event of the period on: its start
is found by bisecting the sequence numbers on the events' times (a few reads), then
the period is read in pages, so a long log is not read from its beginning.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from zerolane.audit.events import rfc3339
from zerolane.store.ports import AuditStore
from zerolane.store.records import AuditRecord

#: events read at once
PAGE = 1000
#: the events' times are ordered only as the writers' clocks are: the bisection looks
#: this many seconds earlier, and each event is then checked against the period itself
SLACK = 300.0
#: examples of what was asked kept per reason
EXAMPLES = 3
#: the marker every shadow allow's event body holds (read before parsing it)
_MARKER = '"would_deny"'


@dataclass(frozen=True, slots=True)
class Example:
    """One request a reason would have denied: what was asked, where and by whom."""

    method: str
    action: str
    resource: str
    destination: str
    task_id: str
    seen: str

    def as_json(self) -> dict[str, str]:
        return {
            "method": self.method,
            "action": self.action,
            "resource": self.resource,
            "destination": self.destination,
            "task_id": self.task_id,
            "seen": self.seen,
        }


@dataclass
class ReasonGroup:
    """The shadow allows one would-deny reason accounts for."""

    reason: str
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""
    playbooks: set[str] = field(default_factory=set)
    modes: set[str] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    #: the policies that would have denied them
    policies: set[str] = field(default_factory=set)
    examples: list[Example] = field(default_factory=list)

    def add(self, details: Mapping[str, Any], subject: str, seen: str) -> None:
        self.count += 1
        self.first_seen = self.first_seen or seen
        self.last_seen = seen
        playbook = _text(details.get("playbook"))
        if playbook:
            self.playbooks.add(playbook)
        self.modes.update(_texts(details.get("shadow")))
        self.policies.update(_texts(details.get("policies")))
        self.tasks.add(subject)
        example = Example(
            _text(details.get("method")),
            _text(details.get("action")),
            _text(details.get("resource")),
            _text(details.get("destination")),
            subject,
            seen,
        )
        shape = (example.method, example.action, example.resource, example.destination)
        known = {(e.method, e.action, e.resource, e.destination) for e in self.examples}
        if len(self.examples) < EXAMPLES and shape not in known:
            self.examples.append(example)

    def as_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "count": self.count,
            "tasks": len(self.tasks),
            "playbooks": sorted(self.playbooks),
            "modes": sorted(self.modes),
            "policies": sorted(self.policies),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "examples": [e.as_json() for e in self.examples],
        }


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """The period read and its would-deny groups, the most frequent first."""

    since: str
    until: str
    #: shadow allows in the period (a request counts once here, under each reason below)
    total: int
    groups: tuple[ReasonGroup, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "total": self.total,
            "reasons": [g.as_json() for g in self.groups],
        }


def shadow_report(store: AuditStore, since: float, until: float) -> ShadowReport:
    """The shadow allows recorded from ``since`` to ``until`` (epoch seconds)."""
    groups: dict[str, ReasonGroup] = {}
    total = 0
    for record in _records(store, since - SLACK):
        if record.kind != "decision" or _MARKER not in record.body:
            continue
        moment = _epoch(record.time)
        if moment is None or not since <= moment <= until:
            continue
        body = json.loads(record.body)
        details = body.get("details")
        if not isinstance(details, dict) or details.get("decision") != "shadow":
            continue
        total += 1
        subject = _text(body.get("subject"))
        for reason in dict.fromkeys(_texts(details.get("would_deny"))) or ("unknown",):
            group = groups.get(reason)
            if group is None:
                group = groups[reason] = ReasonGroup(reason)
            group.add(details, subject, record.time)
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.reason))
    return ShadowReport(rfc3339(since), rfc3339(until), total, tuple(ordered))


def _records(store: AuditStore, since: float) -> Iterator[AuditRecord]:
    """The log's events from about ``since`` on, in order, a page at a time."""
    after = _start(store, since)
    while True:
        page = store.read_events(after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def _start(store: AuditStore, since: float) -> int:
    """A sequence number after which every event of ``since`` or later is: the last
    one found earlier than ``since`` by bisection (0: from the beginning)."""
    last = store.last_event()
    if last is None:
        return 0
    low, high = 0, last.seq  # events up to low are earlier; the answer is <= high
    while low < high:
        middle = (low + high) // 2
        found = store.read_events(middle, 1)
        moment = _epoch(found[0].time) if found else None
        if found and moment is not None and moment < since:
            low = min(found[0].seq, high)
        else:
            high = middle
    return low


def _epoch(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _texts(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
