"""Least privilege from evidence: what the tasks of one playbook used against what it
grants, and the narrower playbook that would have been enough.

Evidence
    the tasks opened from the playbook in the window (their successful ``task.opened``
    events at or after ``since``) and the tasks delegated from them (``task.delegate``),
    found in one pass over the audit log by sequence number, from the first event of the
    window (a binary search by time) up to the head as it was when the pass began, one
    page at a time; their decisions (``decision`` events: action, resource, destination
    and sensitivity), the downstream grants issued to them (``grant.issue``), and each
    task's stored record (calls used, highest sensitivity touched, delegation depth,
    when it was opened and ended).

What is proposed, from **allowed** requests only (never from a denied one, nor from one
let through in shadow mode that enforcement would have denied: those are listed apart):

``actions``, ``destinations``
    exactly the granted ones that an allowed request used.
``resources``
    each granted pattern that covered an allowed request (a request counts for the
    narrowest pattern covering it), narrowed to the tightest pattern within it that
    covers what it covered: a segment every request had the same is kept literally, one
    that varied becomes the granted segment's wildcard (``*``, or its ``pre*``), and
    when the requests were of different lengths the pattern ends in ``**``
    after their common part. One resource used is that resource. ``narrow=False`` keeps
    each used pattern as granted. Patterns that covered nothing are dropped.
``data_ceiling``
    the highest sensitivity an allowed request touched.
``max_calls``
    the most calls one task spent, counting the tasks delegated from it (their budget
    was carved out of it), plus ``headroom`` percent, rounded up.
``max_ttl``
    the longest a task lasted (opened to ended; a live task until now; never more than
    its window), rounded up to a whole minute, plus ``headroom`` percent.
``delegable``, ``max_depth``
    the deepest delegation observed; none observed: not delegable.
``grants``
    the brokers a task was issued a credential by.

Everything else (name, description, openers, mode, one-shot) is kept, and nothing is
ever wider than the current playbook: what tasks were allowed under an earlier version
and the current one no longer grants is listed as ``outside`` and not added back.

Memory stays proportional to the playbook and its tasks: the used values are a subset
of the granted ones, a narrowed pattern is a few segments, denied requests are counted
for at most :data:`MAX_REFUSED` distinct ones (the rest in one number).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import yaml

from zerolane.errors import InvalidInput, NotFound
from zerolane.policy.patterns import is_within, matches, parse_pattern
from zerolane.store.ports import AuditStore, PlaybookStore, TaskStore
from zerolane.store.records import AuditRecord, TaskRecord
from zerolane.tasks.playbooks import (
    Playbook,
    format_duration,
    parse_playbook,
    playbook_as_dict,
    playbook_from_json,
)
from zerolane.types import Sensitivity

#: events read from the audit log at a time
PAGE = 1000
#: distinct denied requests counted one by one; beyond, only how many more there were
MAX_REFUSED = 1000
#: distinct allowed uses outside the current playbook remembered
MAX_OUTSIDE = 100
#: the search for the window's first event starts this much earlier (the clocks of
#: several processes writing one log); events before ``since`` are still left out
SLACK = 3600.0
#: resources whose pattern is remembered (a cache: it is emptied when full)
_CACHE = 10_000
#: the kinds of event the pass reads; the bodies of the others are never parsed
_KINDS = frozenset({"task.opened", "task.delegate", "decision", "grant.issue"})
_SUCCESS = "success"
_SHADOW = "shadow"
#: the order of a playbook file's keys (the file format's table, docs/playbooks.md)
_ORDER = (
    "name",
    "description",
    "actions",
    "resources",
    "destinations",
    "data_ceiling",
    "max_ttl",
    "max_calls",
    "delegable",
    "max_depth",
    "one_shot",
    "mode",
    "openers",
    "grants",
)


class SuggestStores(PlaybookStore, TaskStore, AuditStore, Protocol):
    """What a suggestion reads: the playbook, its tasks and the audit log."""


@dataclass(frozen=True, slots=True)
class Used:
    """Of one list a playbook grants (actions, destinations, grant brokers): what an
    allowed request (an issued grant) used."""

    granted: tuple[str, ...]
    used: tuple[str, ...]

    @property
    def unused(self) -> tuple[str, ...]:
        return tuple(g for g in self.granted if g not in self.used)

    def as_json(self) -> dict[str, object]:
        return {"granted": list(self.granted), "used": list(self.used), "unused": list(self.unused)}


@dataclass(frozen=True, slots=True)
class ResourceUse:
    """A granted resource pattern that allowed requests used, and its narrowing."""

    granted: str
    suggested: str
    requests: int

    def as_json(self) -> dict[str, object]:
        return {"granted": self.granted, "suggested": self.suggested, "requests": self.requests}


@dataclass(frozen=True, slots=True)
class Refused:
    """Requests of the tasks that were denied (``shadow``: let through in shadow mode,
    would have been denied), counted by what they asked and the reasons. A request
    refused before it was mapped (a bad proof) has no action, resource or destination."""

    action: str | None
    resource: str | None
    destination: str | None
    reasons: tuple[str, ...]
    shadow: bool
    count: int

    def as_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "resource": self.resource,
            "destination": self.destination,
            "reasons": list(self.reasons),
            "shadow": self.shadow,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The evidence of one playbook's tasks in a window and the narrower playbook."""

    name: str
    version: int
    since: float
    until: float
    headroom: int
    narrow: bool
    current: Playbook
    suggested: Playbook
    #: the tasks opened in the window, those delegated from them, and those of them the
    #: task store no longer holds (their decisions count, their calls and times do not)
    tasks: int
    delegated: int
    missing: int
    #: tasks that ran until their window closed: their duration is their whole window
    ran_out: int
    #: the playbook versions the tasks were opened under
    versions: tuple[int, ...]
    allowed: int
    denied: int
    would_deny: int
    events_read: int
    actions: Used
    destinations: Used
    resources: tuple[ResourceUse, ...]
    unused_resources: tuple[str, ...]
    grants: Used
    ceiling_used: Sensitivity
    calls_used: int
    longest: float
    depth_used: int
    refused: tuple[Refused, ...]
    refused_other: int
    outside: tuple[str, ...]

    def unused(self) -> list[str]:
        """Every grant no task used, one line each."""
        lines = [f"action {a}" for a in self.actions.unused]
        lines += [f"resource {r}" for r in self.unused_resources]
        lines += [f"destination {d}" for d in self.destinations.unused]
        lines += [f"grant {g}" for g in self.grants.unused]
        current, used = self.current.data_ceiling, self.ceiling_used
        if used < current:
            lines.append(f"data_ceiling above {used.label} (granted {current.label})")
        granted = self.current.max_depth
        if self.current.delegable and self.depth_used == 0:
            lines.append(f"delegation (max_depth {granted}): no task delegated")
        elif self.depth_used < granted:
            lines.append(f"delegation deeper than {self.depth_used} (max_depth {granted})")
        return lines

    def diff(self) -> str:
        """The current playbook's file against the suggested one, a unified diff."""
        return playbook_diff(self.current, self.suggested, self.name)

    def as_json(self) -> dict[str, object]:
        return {
            "playbook": self.name,
            "version": self.version,
            "since": iso(self.since),
            "until": iso(self.until),
            "headroom_percent": self.headroom,
            "narrow_resources": self.narrow,
            "evidence": {
                "tasks": self.tasks,
                "delegated": self.delegated,
                "missing": self.missing,
                "ran_out": self.ran_out,
                "versions": list(self.versions),
                "allowed": self.allowed,
                "denied": self.denied,
                "would_deny": self.would_deny,
                "events_read": self.events_read,
            },
            "actions": self.actions.as_json(),
            "destinations": self.destinations.as_json(),
            "resources": {
                "granted": list(self.current.resources),
                "used": [r.as_json() for r in self.resources],
                "unused": list(self.unused_resources),
            },
            "grants": self.grants.as_json(),
            "data_ceiling": {
                "granted": self.current.data_ceiling.label,
                "used": self.ceiling_used.label,
                "suggested": self.suggested.data_ceiling.label,
            },
            "max_calls": {
                "granted": self.current.max_calls,
                "used": self.calls_used,
                "suggested": self.suggested.max_calls,
            },
            "max_ttl": {
                "granted": self.current.max_ttl,
                "used": math.ceil(self.longest),
                "suggested": self.suggested.max_ttl,
            },
            "max_depth": {
                "granted": self.current.max_depth,
                "used": self.depth_used,
                "suggested": self.suggested.max_depth,
            },
            "unused": self.unused(),
            "refused": [r.as_json() for r in self.refused],
            "refused_other": self.refused_other,
            "outside": list(self.outside),
            "suggested": playbook_as_dict(self.suggested),
            "diff": self.diff(),
        }


def iso(at: float) -> str:
    """RFC 3339 UTC to the second."""
    return (
        dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def playbook_yaml(playbook: Playbook) -> str:
    """The playbook as a YAML file ``zerolane playbook apply`` takes: the keys in the
    order of the file format, ``max_ttl`` as a duration (``15m``)."""
    doc = playbook_as_dict(playbook)
    doc["max_ttl"] = format_duration(playbook.max_ttl)
    ordered = {key: doc[key] for key in _ORDER if key in doc}
    text: str = yaml.safe_dump(
        ordered, sort_keys=False, allow_unicode=True, default_flow_style=False, width=88
    )
    return text


def playbook_diff(current: Playbook, suggested: Playbook, name: str) -> str:
    """A unified diff of the two playbooks' YAML files (empty when they are the same)."""
    return "".join(
        difflib.unified_diff(
            playbook_yaml(current).splitlines(keepends=True),
            playbook_yaml(suggested).splitlines(keepends=True),
            fromfile=f"{name} (current)",
            tofile=f"{name} (suggested)",
        )
    )


class _Narrowing:
    """The tightest pattern covering the resources added so far, kept as it goes:
    each position the same in all of them (or None), down to the shortest one."""

    __slots__ = ("count", "segments", "varied")

    def __init__(self) -> None:
        self.segments: list[str | None] | None = None
        self.varied = False
        self.count = 0

    def add(self, value: tuple[str, ...]) -> None:
        self.count += 1
        if self.segments is None:
            self.segments = list(value)
            return
        if len(value) != len(self.segments):
            self.varied = True
            del self.segments[len(value) :]
        for index, segment in enumerate(self.segments):
            if segment is not None and segment != value[index]:
                self.segments[index] = None

    def pattern(self, granted: str) -> str:
        """The narrowed pattern, always within ``granted`` (else ``granted`` itself)."""
        outer = parse_pattern(granted)
        if self.segments is None:
            raise ValueError("nothing to narrow to: no resource was added")
        segments = self.segments
        if self.varied:  # every value has len(segments) or more: '**' takes at least one
            segments = segments[: len(segments) - 1]
        parts = [
            seg if seg is not None else _wildcard(outer, index)
            for index, seg in enumerate(segments)
        ]
        if self.varied:
            parts.append("**")
        narrowed = "/".join(parts)
        return narrowed if is_within(narrowed, granted) else granted


def narrow_pattern(granted: str, resources: Iterable[str]) -> str:
    """The tightest pattern within ``granted`` covering every one of ``resources`` (see
    the module docstring); ``granted`` itself when no narrower one does."""
    narrowing = _Narrowing()
    for resource in resources:
        narrowing.add(tuple(resource.split("/")))
    return narrowing.pattern(granted)


def _wildcard(outer: tuple[str, ...], index: int) -> str:
    """The granted pattern's own wildcard at ``index`` (``*`` under its ``**``)."""
    if index < len(outer) and outer[index] != "**":
        return outer[index]
    return "*"


def _specificity(pattern: str) -> tuple[bool, int, int, str]:
    """Narrower patterns sort first: no ``**``, fewer wildcards, more segments."""
    segments = parse_pattern(pattern)
    wild = sum(1 for s in segments if s.endswith("*"))
    return (segments[-1] == "**", wild, -len(segments), pattern)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class _Pass:
    """The one pass over the log (see the module docstring)."""

    name: str
    current: Playbook
    since: float
    patterns: tuple[str, ...] = ()
    #: task id -> the id of the task it was delegated from at the root (itself for one
    #: opened from the playbook)
    root_of: dict[str, str] = field(default_factory=dict)
    versions: set[int] = field(default_factory=set)
    delegated: int = 0
    actions: set[str] = field(default_factory=set)
    destinations: set[str] = field(default_factory=set)
    brokers: set[str] = field(default_factory=set)
    narrowings: dict[str, _Narrowing] = field(default_factory=dict)
    ceiling: int = -1
    allowed: int = 0
    denied: int = 0
    would_deny: int = 0
    refused: dict[tuple[str | None, str | None, str | None, tuple[str, ...], bool], int] = field(
        default_factory=dict
    )
    refused_other: int = 0
    outside: set[str] = field(default_factory=set)
    events_read: int = 0
    _cache: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.patterns = tuple(sorted(self.current.resources, key=_specificity))

    def read(self, record: AuditRecord) -> None:
        self.events_read += 1
        if record.kind not in _KINDS:
            return
        try:
            body = json.loads(record.body)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        subject = _text(body.get("subject"))
        details = body.get("details")
        if subject is None or not isinstance(details, dict):
            return
        success = record.outcome == _SUCCESS
        if record.kind == "decision":
            if subject in self.root_of:
                self._decision(details, success, _text(body.get("reason")))
        elif not success:
            return
        elif record.kind == "task.opened":
            self._opened(subject, details, record.time)
        elif record.kind == "task.delegate":
            parent = _text(details.get("parent_id"))
            if parent is not None and parent in self.root_of:
                self.root_of[subject] = self.root_of[parent]
                self.delegated += 1
        else:  # grant.issue
            task_id, broker = _text(details.get("task_id")), _text(details.get("broker"))
            if task_id is not None and task_id in self.root_of and broker is not None:
                self.brokers.add(broker)

    def _opened(self, task_id: str, details: Mapping[str, object], time: str) -> None:
        at = _time(time)
        if details.get("playbook") != self.name or at is None or at < self.since:
            return
        self.root_of[task_id] = task_id
        version = details.get("playbook_version")
        if isinstance(version, int) and not isinstance(version, bool):
            self.versions.add(version)

    def _decision(self, details: Mapping[str, object], success: bool, reason: str | None) -> None:
        action, resource = _text(details.get("action")), _text(details.get("resource"))
        destination = _text(details.get("destination"))
        shadow = details.get("decision") == _SHADOW
        if success and not shadow:
            self.allowed += 1
            if action is not None and resource is not None and destination is not None:
                self._allowed(action, resource, destination, _text(details.get("sensitivity")))
            return
        if shadow:
            self.would_deny += 1
            listed = details.get("would_deny")
        else:
            self.denied += 1
            listed = details.get("reasons")
        reasons = tuple(r for r in listed if isinstance(r, str)) if isinstance(listed, list) else ()
        key = (action, resource, destination, reasons or (reason or "unknown",), shadow)
        if key in self.refused:
            self.refused[key] += 1
        elif len(self.refused) < MAX_REFUSED:
            self.refused[key] = 1
        else:
            self.refused_other += 1

    def _allowed(
        self, action: str, resource: str, destination: str, sensitivity: str | None
    ) -> None:
        if action in self.current.actions:
            self.actions.add(action)
        else:
            self._outside(f"action {action}")
        if destination in self.current.destinations:
            self.destinations.add(destination)
        else:
            self._outside(f"destination {destination}")
        pattern = self._pattern(resource)
        if pattern is None:
            self._outside(f"resource {resource}")
        else:
            self.narrowings.setdefault(pattern, _Narrowing()).add(tuple(resource.split("/")))
        if sensitivity is not None:
            try:
                touched = Sensitivity.parse(sensitivity)
            except ValueError:
                return
            self.ceiling = max(self.ceiling, int(touched))

    def _pattern(self, resource: str) -> str | None:
        """The narrowest granted pattern covering ``resource``, None when none does (or
        it is not a resource name at all)."""
        if resource in self._cache:
            return self._cache[resource]
        try:
            found = next((p for p in self.patterns if matches(p, resource)), None)
        except InvalidInput:  # not a resource name: a wildcard, an empty segment
            found = None
        if len(self._cache) >= _CACHE:
            self._cache.clear()
        self._cache[resource] = found
        return found

    def _outside(self, what: str) -> None:
        if len(self.outside) < MAX_OUTSIDE:
            self.outside.add(what)


def _window_start(stores: AuditStore, since: float, head: int) -> int:
    """The sequence number after which the window's events start: the smallest ``after``
    whose next event is at or after ``since`` (less :data:`SLACK`), by binary search
    over the log's sequence numbers (its times grow with them, but for clock steps)."""
    since -= SLACK
    low, high = 0, head
    while low < high:
        middle = (low + high) // 2
        batch = stores.read_events(middle, 1)
        at = _time(batch[0].time) if batch else None
        if not batch or batch[0].seq > head or (at is not None and at >= since):
            high = middle
        else:
            low = middle + 1
    return low


def _read(stores: AuditStore, scan: _Pass, page: int) -> None:
    last = stores.last_event()
    head = last.seq if last is not None else 0
    after = _window_start(stores, scan.since, head)
    while after < head:
        batch = stores.read_events(after, min(page, head - after))
        for record in batch:
            if record.seq > head:
                return
            scan.read(record)
        if not batch:
            return
        after = batch[-1].seq


def _rounded(seconds: float) -> int:
    """Up to a whole minute, at least one."""
    return max(1, math.ceil(seconds / 60)) * 60


def _with_headroom(value: float, headroom: int) -> float:
    return value * (100 + headroom) / 100


@dataclass(slots=True)
class _Tasks:
    """What the stored records of the tasks say."""

    missing: int = 0
    ran_out: int = 0
    longest: float = 0.0
    depth: int = 0
    touched: int = -1
    calls: dict[str, int] = field(default_factory=dict)

    def read(self, task: TaskRecord, root: str, now: float) -> None:
        self.calls[root] = self.calls.get(root, 0) + task.calls_used
        self.depth = max(self.depth, task.depth)
        self.touched = max(self.touched, task.touched)
        end = task.ended_at if task.ended_at is not None else now
        if end >= task.expires_at:
            self.ran_out += 1
        self.longest = max(self.longest, min(end, task.expires_at) - task.created_at)


def _tasks(stores: TaskStore, root_of: Mapping[str, str], now: float) -> _Tasks:
    seen = _Tasks()
    for task_id, root in root_of.items():
        task = stores.get_task(task_id)
        if task is None:
            seen.missing += 1
        else:
            seen.read(task, root, now)
    return seen


def _sorted_refused(scan: _Pass) -> tuple[Refused, ...]:
    rows = [Refused(*key, count) for key, count in scan.refused.items()]
    rows.sort(key=lambda r: (-r.count, r.reasons, r.action or "", r.resource or ""))
    return tuple(rows)


def _kept(granted: Iterable[str], used: set[str]) -> tuple[str, ...]:
    return tuple(g for g in granted if g in used)


def suggest(
    stores: SuggestStores,
    name: str,
    *,
    since: float,
    now: float,
    headroom: int = 0,
    narrow: bool = True,
    page: int = PAGE,
) -> Suggestion:
    """The suggestion for playbook ``name`` from its tasks opened at ``since`` or later
    (see the module docstring). ``playbook.unknown`` for a name not registered;
    ``playbook.no_evidence`` when no task was opened in the window, or none made an
    allowed request the current playbook still grants (there is nothing to narrow it to:
    a playbook needs an action, a resource and a destination)."""
    if headroom < 0:
        raise ValueError("headroom is a percentage, 0 or more")
    record = stores.get_playbook(name)
    if record is None:
        raise NotFound("playbook.unknown", f"no playbook {name!r} is registered")
    current = playbook_from_json(record.document, f"stored playbook {name!r}")
    scan = _Pass(name, current, since)
    _read(stores, scan, page)
    window = f"since {iso(since)}"
    if not scan.root_of:
        raise NotFound(
            "playbook.no_evidence",
            f"no task was opened from playbook {name!r} {window}: no evidence to suggest "
            "from (look further back with --since)",
        )
    seen = _tasks(stores, scan.root_of, now)
    actions = _kept(current.actions, scan.actions)
    destinations = _kept(current.destinations, scan.destinations)
    uses = tuple(
        ResourceUse(p, scan.narrowings[p].pattern(p) if narrow else p, scan.narrowings[p].count)
        for p in current.resources
        if p in scan.narrowings
    )
    if not (actions and destinations and uses):
        tasks = len(scan.root_of) - scan.delegated
        raise NotFound(
            "playbook.no_evidence",
            f"the {tasks} task(s) opened from playbook {name!r} {window} made no allowed "
            f"request it still grants ({scan.allowed} allowed, {scan.denied} denied): "
            "nothing to narrow it to",
        )
    ceiling = Sensitivity(max(scan.ceiling, seen.touched, 0))
    calls = max(seen.calls.values(), default=0)
    depth = min(seen.depth, current.max_depth)
    brokers = _kept((g.broker for g in current.grants), scan.brokers)
    doc = playbook_as_dict(current)
    doc.update(
        actions=list(actions),
        destinations=list(destinations),
        resources=[u.suggested for u in uses],
        data_ceiling=min(ceiling, current.data_ceiling).label,
        max_calls=min(current.max_calls, max(1, math.ceil(_with_headroom(calls, headroom)))),
        max_ttl=min(current.max_ttl, _rounded(_with_headroom(seen.longest, headroom))),
        delegable=depth > 0,
        max_depth=depth,
    )
    if current.grants:
        doc["grants"] = {g.broker: g.as_dict() for g in current.grants if g.broker in brokers}
    suggested = parse_playbook(doc, f"suggestion for playbook {name!r}")
    return Suggestion(
        name=name,
        version=record.version,
        since=since,
        until=now,
        headroom=headroom,
        narrow=narrow,
        current=current,
        suggested=suggested,
        tasks=len(scan.root_of) - scan.delegated,
        delegated=scan.delegated,
        missing=seen.missing,
        ran_out=seen.ran_out,
        versions=tuple(sorted(scan.versions)),
        allowed=scan.allowed,
        denied=scan.denied,
        would_deny=scan.would_deny,
        events_read=scan.events_read,
        actions=Used(current.actions, actions),
        destinations=Used(current.destinations, destinations),
        resources=uses,
        unused_resources=tuple(p for p in current.resources if p not in scan.narrowings),
        grants=Used(tuple(g.broker for g in current.grants), brokers),
        ceiling_used=ceiling,
        calls_used=calls,
        longest=seen.longest,
        depth_used=seen.depth,
        refused=_sorted_refused(scan),
        refused_other=scan.refused_other,
        outside=tuple(sorted(scan.outside)),
    )
