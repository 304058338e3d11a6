"""Risk: a score per task and per workload from the detections about them, decaying.

Each detection adds its severity's weight (``[response.risk] weights``) to its task's
and its workload's score, at most :data:`MAX_SCORE`; a score halves every
``half_life_seconds`` without new detections (decayed from the detection's own time,
so a responder reading a backlog scores what it would have scored live). Policies read
the scores as ``context.risk`` (whole numbers 0..100).

The responder (:mod:`zerolane.detection.response`) keeps the scores
(:class:`RiskScores`) in the store's risk score rows
(:class:`~zerolane.store.ports.RiskScoreStore`), one per task or workload: each write
of its cursor stores only the scores its step changed, versioned by the cursor's
sequence number, and deletes those forgotten. Deciders read them through
:class:`RiskView`: the rows written since its last read, read at most every
``refresh_seconds`` (one read per interval, none per decision), and handed over at
once by a responder in the same process. A home whose responder kept the whole table
in its cursor's state (before the rows) has it moved into rows by the responder's
first load; until then a view reads it from there once.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from zerolane.policy.context import RiskFacts
from zerolane.store.changes import RiskScore
from zerolane.store.ports import DetectorCursorStore, RiskScoreStore
from zerolane.types import Clock

log = logging.getLogger(__name__)

MAX_SCORE = 100.0
#: a score decayed below this is forgotten
FORGET_BELOW = 0.5
#: the responder's cursor (:mod:`zerolane.detection.response`); its state held the scores
#: before they were rows (an old home's, moved into rows on its first load)
RESPONSE_CURSOR = "response"
TASK, WORKLOAD = "task", "workload"


class RiskStore(DetectorCursorStore, RiskScoreStore, Protocol):
    """What reading the scores needs of a backend: the rows (and the responder's
    cursor, for a home that still keeps them in its state)."""


class RiskScores:
    """Scores of tasks and workloads: ``(value, at)`` pairs decayed on read."""

    def __init__(self, half_life: float) -> None:
        self._rate = math.log(2) / half_life
        self.tasks: dict[str, tuple[float, float]] = {}
        self.workloads: dict[str, tuple[float, float]] = {}
        #: ``(kind, key)`` of the scores :meth:`add` changed since :meth:`rows` last
        #: took them
        self.changed: set[tuple[str, str]] = set()

    def _value(self, entry: tuple[float, float] | None, now: float) -> float:
        if entry is None:
            return 0.0
        value, at = entry
        return value * math.exp(-self._rate * max(0.0, now - at))

    def add(self, task_id: str | None, workload: str | None, weight: float, at: float) -> None:
        """A detection of ``weight`` at ``at`` about ``task_id`` and ``workload``."""
        for kind, table, key in ((TASK, self.tasks, task_id), (WORKLOAD, self.workloads, workload)):
            if key:
                value = self._value(table.get(key), at) + weight
                table[key] = (min(MAX_SCORE, value), at)
                self.changed.add((kind, key))

    def task(self, task_id: str, now: float) -> int:
        return round(self._value(self.tasks.get(task_id), now))

    def workload(self, workload: str, now: float) -> int:
        return round(self._value(self.workloads.get(workload), now))

    def facts(self, task_id: str, workload: str, now: float) -> RiskFacts:
        return RiskFacts(self.task(task_id, now), self.workload(workload, now))

    def state(self, now: float) -> dict[str, Any]:
        """The scores still worth keeping at ``now``, as JSON."""

        def kept(table: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
            return {
                key: [value, at]
                for key, (value, at) in table.items()
                if self._value((value, at), now) >= FORGET_BELOW
            }

        return {"tasks": kept(self.tasks), "workloads": kept(self.workloads)}

    def forget_at(self, value: float, at: float) -> float:
        """When a score of ``value`` at ``at`` decays below :data:`FORGET_BELOW`."""
        if value < FORGET_BELOW:
            return at
        return at + math.log(value / FORGET_BELOW) / self._rate

    def rows(self, version: int) -> tuple[RiskScore, ...]:
        """The scores changed since the last call, as rows of ``version``; forgets
        which changed."""
        tables = {TASK: self.tasks, WORKLOAD: self.workloads}
        rows = []
        for kind, key in sorted(self.changed):
            value, at = tables[kind][key]
            rows.append(RiskScore(kind, key, value, at, self.forget_at(value, at), version))
        self.changed.clear()
        return tuple(rows)

    def mark_all_changed(self) -> None:
        """Every score is to be written (a whole table moved into rows)."""
        self.changed.update((TASK, key) for key in self.tasks)
        self.changed.update((WORKLOAD, key) for key in self.workloads)

    def merge(self, rows: Iterable[RiskScore]) -> None:
        """Take stored rows (each replaces its key's score; the store deletes the
        forgotten ones with each write, as :meth:`state` left them out)."""
        for row in rows:
            table = self.tasks if row.kind == TASK else self.workloads
            table[row.key] = (row.value, row.at)

    def copy(self) -> RiskScores:
        """Another table with the same scores (and no changes)."""
        other = RiskScores.__new__(RiskScores)
        other._rate = self._rate
        other.tasks, other.workloads = dict(self.tasks), dict(self.workloads)
        other.changed = set()
        return other

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a :meth:`state`; raises ``ValueError``/``TypeError`` when malformed."""

        def table(raw: Any) -> dict[str, tuple[float, float]]:
            if not isinstance(raw, Mapping):
                raise TypeError("a risk table must be an object")
            return {str(key): (float(value), float(at)) for key, (value, at) in raw.items()}

        self.tasks = table(state.get("tasks", {}))
        self.workloads = table(state.get("workloads", {}))


class RiskView:
    """The deciders' read of the scores: the rows written since its last read (by their
    version), read at most every ``refresh`` seconds; :meth:`put` hands over a
    same-process responder's scores at once. A failed read keeps the scores last read
    (logged)."""

    def __init__(self, store: RiskStore, clock: Clock, *, half_life: float, refresh: float) -> None:
        self._store = store
        self._clock = clock
        self._half_life = half_life
        self._refresh = refresh
        self._scores = RiskScores(half_life)
        self._borrowed = False  # the scores are a responder's (copied before a merge)
        self._seq = -1  # the highest version read or handed over
        self._next = 0.0
        self._lock = threading.Lock()

    def facts(self, task_id: str, workload: str) -> RiskFacts:
        """The risk of ``task_id`` and ``workload`` now."""
        now = self._clock.now()
        if now >= self._next:
            self._reload(now)
        return self._scores.facts(task_id, workload, now)

    def put(self, scores: RiskScores, seq: int) -> None:
        """A responder's scores as of its cursor ``seq`` (every row up to that version)."""
        with self._lock:
            if seq >= self._seq:
                self._scores, self._seq, self._borrowed = scores, seq, True

    def _reload(self, now: float) -> None:
        with self._lock:
            if now < self._next:  # another thread just did
                return
            self._next = now + self._refresh
            try:
                legacy = self._legacy() if self._seq < 0 else []
                rows = legacy + self._store.risk_scores_since(self._seq)
            except Exception:
                log.exception("reading the risk scores failed; keeping the last read")
                return
            if not rows:
                return
            scores = self._scores.copy() if self._borrowed else self._scores
            scores.merge(rows)  # in version order: the newest of a key last
            self._scores, self._borrowed = scores, False
            self._seq = max(self._seq, rows[-1].version)

    def _legacy(self) -> list[RiskScore]:
        """The whole table a responder kept in its cursor's state before the rows (its
        next load moves it into rows of the cursor's seq, the same scores), as rows; []
        when there is none or it is unreadable (that responder starts afresh too)."""
        cursor = self._store.get_cursor(RESPONSE_CURSOR)
        if cursor is None:
            return []
        try:
            state = json.loads(cursor.state)
            if not isinstance(state, dict) or "risk" not in state:
                return []
            scores = RiskScores(self._half_life)
            scores.restore(state["risk"])
        except (ValueError, TypeError, AttributeError):
            log.error("the responder's stored state is unreadable: no risk scores from it")
            return []
        scores.mark_all_changed()
        return list(scores.rows(cursor.seq))
