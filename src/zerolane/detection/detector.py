"""The protocol every detector implements, and the sliding windows most of them keep.

A detector is fed the events of the audit log in sequence order, each once
(:meth:`Detector.observe`), and returns the detections an event completes. What it
remembers between events (its open windows) it hands over as JSON (:meth:`state`),
and the runner stores that with its cursor in the write that records its detections;
after a restart it gets it back (:meth:`restore`) and goes on as if it never stopped.
Windows are measured in the events' own times, so a detector that lags behind, or
reads a day of history at once, finds what it would have found live.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from zerolane.detection.seen import Detection, Evidence, Seen


class Detector(Protocol):
    """One detector (one module each; its thresholds from ``[detection.<name>]``)."""

    @property
    def name(self) -> str:
        """Its stable name: its cursor's key and its detections' ``detection.<name>``."""
        ...

    def observe(self, event: Seen) -> list[Detection]:
        """The detections ``event`` completes (usually none). Never sees a detection."""
        ...

    def state(self) -> dict[str, Any]:
        """What it remembers, as JSON (stored with its cursor)."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back a :meth:`state` (``{}``: start afresh). Raises ``ValueError``,
        ``TypeError`` or ``KeyError`` when ``state`` is not one of its own."""
        ...

    # optional: ``def state_text(self) -> str``, :meth:`state` as JSON text, for a
    # detector with a large state that can encode again only what changed (the runner
    # calls it, when present, at each write instead of encoding :meth:`state`)


class Hit(NamedTuple):
    """One event counted in a window; ``tag`` is what the detector counts by. (A named
    tuple: detectors make one per event they count, so it is cheap to build.)"""

    time: float
    seq: int
    event_id: str
    tag: str = ""

    @classmethod
    def of(cls, event: Seen, tag: str = "") -> Hit:
        return cls(event.time, event.seq, event.event_id, tag)

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.seq, self.event_id)


class Windows:
    """Per key (a task id...), the hits of the last ``seconds`` (by event time)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._keys: dict[str, deque[Hit]] = {}
        self._latest = float("-inf")

    def add(self, key: str, hit: Hit) -> deque[Hit]:
        """Count ``hit`` under ``key``; the key's hits still in the window after it."""
        hits = self._keys.setdefault(key, deque())
        hits.append(hit)
        self._latest = max(self._latest, hit.time)
        cutoff = hit.time - self.seconds
        while hits and hits[0].time < cutoff:
            hits.popleft()
        return hits

    def clear(self, key: str) -> None:
        """Forget ``key`` (it fired: the next detection needs hits of its own)."""
        self._keys.pop(key, None)

    def state(self) -> dict[str, list[list[Any]]]:
        """The hits still in a window as of the latest one seen, as JSON."""
        cutoff = self._latest - self.seconds
        kept: dict[str, list[list[Any]]] = {}
        for key, hits in self._keys.items():
            live = [[h.time, h.seq, h.event_id, h.tag] for h in hits if h.time >= cutoff]
            if live:
                kept[key] = live
        return kept

    def restore(self, state: Mapping[str, Any]) -> None:
        keys: dict[str, deque[Hit]] = {}
        latest = float("-inf")
        for key, hits in state.items():
            restored = deque(
                Hit(float(t), int(seq), str(event_id), str(tag)) for t, seq, event_id, tag in hits
            )
            keys[str(key)] = restored
            latest = max([latest, *(h.time for h in restored)])
        self._keys = keys
        self._latest = latest
