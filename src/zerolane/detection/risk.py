"""Risk: a score per task and per workload from the detections about them, decaying.

Each detection adds its severity's weight (``[response.risk] weights``) to its task's
and its workload's score, at most :data:`MAX_SCORE`; a score halves every
``half_life_seconds`` without new detections (decayed from the detection's own time,
so a responder reading a backlog scores what it would have scored live). Policies read
the scores as ``context.risk`` (whole numbers 0..100).

The responder (:mod:`zerolane.detection.response`) keeps the scores
(:class:`RiskScores`) in its stored cursor's state, written with its cursor. Deciders
read them through :class:`RiskView`: the state read again at most every
``refresh_seconds`` (one read per interval, none per decision), and handed over at
once by a responder in the same process.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from typing import Any

from zerolane.policy.context import RiskFacts
from zerolane.store.ports import DetectorCursorStore
from zerolane.types import Clock

log = logging.getLogger(__name__)

MAX_SCORE = 100.0
#: a score decayed below this is forgotten
FORGET_BELOW = 0.5
#: the responder's cursor (:mod:`zerolane.detection.response`), whose state holds the scores
RESPONSE_CURSOR = "response"


class RiskScores:
    """Scores of tasks and workloads: ``(value, at)`` pairs decayed on read."""

    def __init__(self, half_life: float) -> None:
        self._rate = math.log(2) / half_life
        self.tasks: dict[str, tuple[float, float]] = {}
        self.workloads: dict[str, tuple[float, float]] = {}

    def _value(self, entry: tuple[float, float] | None, now: float) -> float:
        if entry is None:
            return 0.0
        value, at = entry
        return value * math.exp(-self._rate * max(0.0, now - at))

    def add(self, task_id: str | None, workload: str | None, weight: float, at: float) -> None:
        """A detection of ``weight`` at ``at`` about ``task_id`` and ``workload``."""
        for table, key in ((self.tasks, task_id), (self.workloads, workload)):
            if key:
                value = self._value(table.get(key), at) + weight
                table[key] = (min(MAX_SCORE, value), at)

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

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a :meth:`state`; raises ``ValueError``/``TypeError`` when malformed."""

        def table(raw: Any) -> dict[str, tuple[float, float]]:
            if not isinstance(raw, Mapping):
                raise TypeError("a risk table must be an object")
            return {str(key): (float(value), float(at)) for key, (value, at) in raw.items()}

        self.tasks = table(state.get("tasks", {}))
        self.workloads = table(state.get("workloads", {}))


class RiskView:
    """The deciders' read of the scores: the responder's stored state, read again at
    most every ``refresh`` seconds; :meth:`put` hands over a same-process responder's
    scores at once. A failed read keeps the scores last read (logged)."""

    def __init__(
        self, cursors: DetectorCursorStore, clock: Clock, *, half_life: float, refresh: float
    ) -> None:
        self._cursors = cursors
        self._clock = clock
        self._half_life = half_life
        self._refresh = refresh
        self._scores = RiskScores(half_life)
        self._seq = -1
        self._next = 0.0
        self._lock = threading.Lock()

    def facts(self, task_id: str, workload: str) -> RiskFacts:
        """The risk of ``task_id`` and ``workload`` now."""
        now = self._clock.now()
        if now >= self._next:
            self._reload(now)
        return self._scores.facts(task_id, workload, now)

    def put(self, scores: RiskScores, seq: int) -> None:
        """A responder's scores as of its cursor ``seq``."""
        with self._lock:
            if seq >= self._seq:
                self._scores, self._seq = scores, seq

    def _reload(self, now: float) -> None:
        with self._lock:
            if now < self._next:  # another thread just did
                return
            self._next = now + self._refresh
            try:
                cursor = self._cursors.get_cursor(RESPONSE_CURSOR)
                if cursor is None or cursor.seq == self._seq:
                    return
                scores = RiskScores(self._half_life)
                scores.restore(json.loads(cursor.state).get("risk", {}))
            except Exception:
                log.exception("reading the risk scores failed; keeping the last read")
                return
            self._scores, self._seq = scores, cursor.seq
