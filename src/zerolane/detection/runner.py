"""The detection stream: the audit log read by sequence number, from each detector's
stored cursor, off the decision path.

A step reads the events after the slowest cursor (``batch_size`` at most), feeds each
detector the events past its own cursor, in order, and then commits, in one write
(:class:`~zerolane.store.changes.AdvanceCursors` through ``write_recorded``): every
detector's new cursor and state, compare-and-set, with the ``detection`` events they
found. A crash before that write loses nothing (the events are read again, and the
detectors' state is the stored one); after it, nothing is found twice. When another
runner moved a cursor first, nothing is written and this one reloads from the store.

The runner thread (:meth:`DetectionRunner.start`) steps while there is a backlog and
sleeps ``poll_interval`` once it has caught up; a decision never waits for it. When it
falls behind it catches up batch by batch; its lag (the last sequence number in the log
minus a cursor) is :meth:`DetectionRunner.lag`. A failing step is retried (with a
growing pause), never skipped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.detection.detector import Detector
from zerolane.detection.seen import DETECTION, Detection, Seen
from zerolane.store.changes import AdvanceCursors, CursorAdvance
from zerolane.store.ports import AuditStore, DetectorCursorStore, RecordedWrites
from zerolane.types import Clock, Outcome

log = logging.getLogger(__name__)

#: the longest pause between retries of a failing step (seconds)
MAX_BACKOFF = 30.0


class DetectionStore(AuditStore, DetectorCursorStore, RecordedWrites, Protocol):
    """What the runner needs of a backend: the log, the cursors, recorded writes."""


def detection_event(audit: AuditLog, found: Detection) -> dict[str, object]:
    """The unsealed ``detection`` audit event of ``found``."""
    return audit.event(
        "detection",  # seen.DETECTION, written out for tests/audit/test_schema.py's scan
        Actor("detector", found.detector),
        found.subject,
        Outcome.FAILURE,  # a check of continuous verification failed
        f"detection.{found.detector}",
        found.details(),
    ).unsealed()


class DetectionRunner:
    """Runs ``detectors`` over the log of ``store`` (see the module doc)."""

    def __init__(
        self,
        store: DetectionStore,
        audit: AuditLog,
        detectors: Sequence[Detector],
        clock: Clock,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        then: Sequence[Callable[[], object]] = (),
    ) -> None:
        """``then``: run in the thread after each step (the responder's step)."""
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique: {names}")
        self._store = store
        self._audit = audit
        self._detectors = list(detectors)
        self._clock = clock
        self._batch = batch_size
        self._poll = poll_interval
        self._then = tuple(then)
        self._seqs: dict[str, int] | None = None  # None: load from the store first
        self._lock = threading.Lock()  # one step at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: detections recorded, and steps that failed, by this runner
        self.recorded = 0
        self.failures = 0

    @property
    def names(self) -> list[str]:
        return [d.name for d in self._detectors]

    def _load(self) -> dict[str, int]:
        """Each detector's stored cursor and state (none: from the start, afresh)."""
        seqs: dict[str, int] = {}
        for detector in self._detectors:
            cursor = self._store.get_cursor(detector.name)
            seqs[detector.name] = cursor.seq if cursor is not None else 0
            try:
                detector.restore(json.loads(cursor.state) if cursor is not None else {})
            except (ValueError, TypeError, KeyError):
                log.error("the stored state of detector %s is unreadable: afresh", detector.name)
                detector.restore({})
        return seqs

    def step(self) -> int:
        """Read and process one batch; how many events it read (0: caught up)."""
        with self._lock:
            seqs = self._seqs if self._seqs is not None else self._load()
            self._seqs = None  # until this step is committed, the store is the truth
            records = self._store.read_events(min(seqs.values(), default=0), self._batch)
            if not records or not self._detectors:
                self._seqs = seqs
                return 0
            seen = [Seen.of(r) for r in records if r.kind != DETECTION]
            last = records[-1].seq
            found: list[Detection] = []
            advances: list[CursorAdvance] = []
            now = self._clock.now()
            for detector in self._detectors:
                start = seqs[detector.name]
                for event in seen:
                    if event.seq > start:
                        found.extend(detector.observe(event))
                state = json.dumps(detector.state(), separators=(",", ":"))
                advances.append(CursorAdvance(detector.name, start, last, state, now))
            events = [detection_event(self._audit, d) for d in found]
            moved = self._store.write_recorded(
                AdvanceCursors(tuple(advances)), lambda ok: events if ok else [], seal
            )
            if not moved:  # another runner got there first: its cursors stand
                log.info("detector cursors moved elsewhere; reloading them")
                return 0
            self._seqs = dict.fromkeys(seqs, last)
            self.recorded += len(events)
            return len(records)

    def catch_up(self) -> int:
        """Step until the detectors have read the whole log; events read."""
        total = 0
        while (read := self.step()) > 0:
            total += read
        return total

    def lag(self) -> dict[str, int]:
        """Per detector: the last sequence number in the log minus its stored cursor."""
        last = self._store.last_event()
        head = last.seq if last is not None else 0
        cursors = {c.detector: c.seq for c in self._store.list_cursors()}
        return {name: max(0, head - cursors.get(name, 0)) for name in self.names}

    # the background thread
    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="zerolane-detection", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current step (committed or not: both are safe)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        backoff = self._poll
        while not self._stop.is_set():
            try:
                read = self.step()
                for follow in self._then:
                    follow()
            except Exception:
                self.failures += 1
                log.exception("a detection step failed; retrying in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = self._poll
            if read < self._batch:
                self._stop.wait(self._poll)
