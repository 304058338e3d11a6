"""Replay attempts: a refused reuse of something single-use, or a token presented with
another key or certificate than the one it is bound to.

Counts the events whose reason (or one of a decision's ``reasons``) is one of
``[detection.replay] reasons`` (by default ``dpop.replayed``, ``dpop.key_mismatch``,
``mtls.cert_mismatch``, ``token.task_mismatch``, ``oauth.refresh_reused``), per task
(``unknown`` when the log names none), and fires when ``threshold`` of them fall within
``window_seconds``. Evidence: those events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zerolane.detection.detector import Hit, Windows
from zerolane.detection.seen import UNKNOWN, Detection, Seen
from zerolane.settings.detection import ReplaySettings

NAME = "replay"


class ReplayDetector:
    name = NAME

    def __init__(self, settings: ReplaySettings) -> None:
        self._settings = settings
        self._reasons = frozenset(settings.reasons)
        self._windows = Windows(settings.window_seconds)

    def observe(self, event: Seen) -> list[Detection]:
        matched = [r for r in event.reasons if r in self._reasons]
        if not matched:
            return []
        key = event.task_id or UNKNOWN
        hits = self._windows.add(key, Hit.of(event, matched[0]))
        if len(hits) < self._settings.threshold:
            return []
        self._windows.clear(key)
        reasons = sorted({h.tag for h in hits})
        return [
            Detection(
                detector=NAME,
                severity=self._settings.severity,
                summary=f"{len(hits)} refused replay attempt(s): {', '.join(reasons)}",
                task_id=event.task_id,
                workload=event.workload,
                evidence=tuple(h.evidence for h in hits),
                facts={
                    "reasons": reasons,
                    "count": len(hits),
                    "threshold": self._settings.threshold,
                    "window_seconds": self._settings.window_seconds,
                },
            )
        ]

    def state(self) -> dict[str, Any]:
        return {"windows": self._windows.state()}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._windows.restore(state.get("windows", {}))
