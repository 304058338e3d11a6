"""Off-window use: a scheduled workload or playbook at work outside its window.

``[detection.off_window] schedules`` gives a workload (its SPIFFE ID), a playbook, or
both, cron-like ``hours`` and ``weekdays`` in a ``timezone``. Reads every event of an
authenticated workload (its actor); the playbook is its task's (``task.opened`` names
it, a delegated child has its parent's). Fires when an event a schedule applies to
(the workload and the playbook it names, each given one matching) falls outside its
hours or weekdays; then not again for that schedule and workload for
``cooldown_seconds``. Evidence: that event.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zerolane.detection.recent import Recent, TaskPlaybooks
from zerolane.detection.seen import DETECTION, Detection, Evidence, Seen
from zerolane.settings.detection import (
    WEEKDAYS,
    OffWindowSettings,
    Schedule,
    hours_of,
    weekdays_of,
)

NAME = "off_window"


@dataclass(frozen=True, slots=True)
class Window:
    """One :class:`Schedule`, parsed."""

    index: int
    schedule: Schedule
    hours: frozenset[int]
    weekdays: frozenset[int]
    zone: zoneinfo.ZoneInfo

    def applies(self, workload: str, playbook: str | None) -> bool:
        s = self.schedule
        return (not s.workload or s.workload == workload) and (
            not s.playbook or s.playbook == playbook
        )

    def local(self, time: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(time, self.zone)

    def allows(self, local: dt.datetime) -> bool:
        return local.hour in self.hours and local.weekday() in self.weekdays


class OffWindowDetector:
    name = NAME

    def __init__(self, settings: OffWindowSettings) -> None:
        self._settings = settings
        self._windows = [
            Window(i, s, hours_of(s.hours), weekdays_of(s.weekdays), zoneinfo.ZoneInfo(s.timezone))
            for i, s in enumerate(settings.schedules)
        ]
        self._playbooks = TaskPlaybooks(settings.max_tasks)
        #: "<schedule index> <workload>" -> when it last fired
        self._fired: Recent[float] = Recent(settings.max_tasks)

    def observe(self, event: Seen) -> list[Detection]:
        workload = event.workload
        if not self._windows or workload is None or event.kind == DETECTION:
            return []
        self._playbooks.observe(event)
        playbook = self._playbooks.of(event.task_id)
        found = []
        for window in self._windows:
            if not window.applies(workload, playbook):
                continue
            local = window.local(event.time)
            key = f"{window.index} {workload}"
            last = self._fired.get(key)
            if window.allows(local) or (
                last is not None and event.time - last < self._settings.cooldown_seconds
            ):
                continue
            self._fired.put(key, event.time)
            found.append(self._detection(window, local, event, workload, playbook))
        return found

    def _detection(
        self, window: Window, local: dt.datetime, event: Seen, workload: str, playbook: str | None
    ) -> Detection:
        s = window.schedule
        return Detection(
            detector=NAME,
            severity=self._settings.severity,
            summary=f"{event.kind} at {local:%a %H:%M} {s.timezone}, outside hours {s.hours}"
            f" weekdays {s.weekdays}",
            task_id=event.task_id,
            workload=workload,
            evidence=(Evidence(event.seq, event.event_id),),
            facts={
                "schedule": {
                    "workload": s.workload,
                    "playbook": s.playbook,
                    "hours": s.hours,
                    "weekdays": s.weekdays,
                    "timezone": s.timezone,
                },
                "playbook": playbook,
                "local_time": f"{WEEKDAYS[local.weekday()]} {local:%H:%M}",
                "cooldown_seconds": self._settings.cooldown_seconds,
            },
        )

    def state(self) -> dict[str, Any]:
        return {"tasks": self._playbooks.state(), "fired": dict(self._fired.items())}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._playbooks.restore(state.get("tasks", {}))
        self._fired = Recent(self._settings.max_tasks)
        for key, time in state.get("fired", {}).items():
            self._fired.put(str(key), float(time))
