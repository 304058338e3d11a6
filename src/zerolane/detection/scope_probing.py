"""Scope probing: one task denied many different things in a short time.

Counts the denied ``decision`` events of a known task that name an action, by the
distinct ``(action, resource)`` pair they asked for, and fires when ``distinct``
different pairs are denied within ``window_seconds``. The same request denied again and
again is not probing (it counts once); neither are refusals before a decision mapped
the request (no action: a bad token, a replay...). Evidence: the first denial of each
pair in the window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from zerolane.detection.detector import Hit, Windows
from zerolane.detection.seen import Detection, Seen
from zerolane.settings.detection import ScopeProbingSettings

NAME = "scope_probing"


class ScopeProbingDetector:
    name = NAME

    def __init__(self, settings: ScopeProbingSettings) -> None:
        self._settings = settings
        self._windows = Windows(settings.window_seconds)

    def observe(self, event: Seen) -> list[Detection]:
        action = event.details.get("action")
        task_id = event.task_id
        if event.kind != "decision" or event.outcome != "denied" or not action or not task_id:
            return []
        resource = event.details.get("resource")
        tag = json.dumps([str(action), "" if resource is None else str(resource)])
        hits = self._windows.add(task_id, Hit.of(event, tag))
        first: dict[str, Hit] = {}
        for hit in hits:
            first.setdefault(hit.tag, hit)
        if len(first) < self._settings.distinct:
            return []
        self._windows.clear(task_id)
        pairs = [json.loads(tag) for tag in first]
        return [
            Detection(
                detector=NAME,
                severity=self._settings.severity,
                summary=f"{len(first)} different requests denied to one task",
                task_id=task_id,
                workload=event.workload,
                evidence=tuple(hit.evidence for hit in first.values()),
                facts={
                    "denied": [{"action": a, "resource": r} for a, r in pairs],
                    "count": len(first),
                    "threshold": self._settings.distinct,
                    "window_seconds": self._settings.window_seconds,
                },
            )
        ]

    def state(self) -> dict[str, Any]:
        return {"windows": self._windows.state()}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._windows.restore(state.get("windows", {}))
