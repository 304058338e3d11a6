"""A dormant identity suddenly active: a workload silent for more than ``days`` days
that acts again.

Reads every event of an authenticated workload (its actor), and
``workload.registered`` (the subject: a registration is the start of its history).
Remembers when each workload last acted, for at most ``max_workloads`` workloads (the
longest silent forgotten first: a workload forgotten is new again, and a new workload
never fires). Fires on the first event after a silence longer than ``days``.
Evidence: that event (``details.last_seen`` is when it last acted before).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from zerolane.detection.recent import Recent
from zerolane.detection.seen import DETECTION, Detection, Evidence, Seen
from zerolane.settings.detection import DormantSettings

NAME = "dormant"
DAY = 86400.0


class DormantDetector:
    name = NAME

    def __init__(self, settings: DormantSettings) -> None:
        self._settings = settings
        self._silence = settings.days * DAY
        self._last: Recent[float] = Recent(settings.max_workloads)

    def observe(self, event: Seen) -> list[Detection]:
        if event.kind == "workload.registered" and event.outcome == "success":
            workload: str | None = event.subject
        elif event.kind == DETECTION:
            return []
        else:
            workload = event.workload
        if not workload:
            return []
        last = self._last.get(workload)
        self._last.put(workload, max(event.time, last or event.time))
        if last is None or event.time - last <= self._silence:
            return []
        silent = (event.time - last) / DAY
        return [
            Detection(
                detector=NAME,
                severity=self._settings.severity,
                summary=f"workload {workload} active after {silent:.1f} days of silence",
                task_id=event.task_id,
                workload=workload,
                evidence=(Evidence(event.seq, event.event_id),),
                facts={
                    "last_seen": dt.datetime.fromtimestamp(last, dt.UTC).isoformat(),
                    "silent_days": round(silent, 2),
                    "days": self._settings.days,
                },
            )
        ]

    def state(self) -> dict[str, Any]:
        return {"last": dict(self._last.items())}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._last = Recent(self._settings.max_workloads)
        for workload, time in state.get("last", {}).items():
            self._last.put(str(workload), float(time))
