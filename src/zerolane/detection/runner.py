"""The detection stream: the audit log read by sequence number, from each detector's
stored cursor, off the decision path.

A step reads the events after the slowest cursor (``batch_size`` at most), parses each
once (:class:`~zerolane.detection.seen.Seen`, one view handed to every detector) and
feeds each detector the events past its own cursor, in order. A write
(:class:`~zerolane.store.changes.AdvanceCursors` through ``write_recorded``) commits,
in one transaction, every detector's new cursor and state, compare-and-set, with the
``detection`` events they found. It is made when the runner has caught up (a batch
short of ``batch_size``) and found something (recorded at once), when a read comes back
empty (the log is quiet), and otherwise at the latest ``commit_seconds`` (1 s) or
``max_uncommitted`` (10,000 events) after the last write; so a busy log costs about
one write a second, not one per batch, and a backlog is read in pages without writing
each. A crash before that write loses nothing (the events are read again, and the
detectors' state is the stored one); after it, nothing is found twice. When another
runner moved a cursor first, nothing is written and this one reloads from the store.

The runner thread (:meth:`DetectionRunner.start`) steps while there is a backlog
(yielding the interpreter between batches, so the decisions of the same process do not
wait for it) and sleeps ``poll_interval`` once it has caught up; a decision never waits
for it. When it falls behind it catches up batch by batch; its lag (the last sequence
number in the log minus where it has read to) is :meth:`DetectionRunner.lag`. A failing
step is retried (with a growing pause), never skipped; stopping writes what was read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
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
#: a step that found nothing is written at the latest this many seconds after the last
#: write (or when the runner catches up, or after ``MAX_UNCOMMITTED`` events)
COMMIT_SECONDS = 1.0
#: events read at most without a write (a restart reads them again, finding nothing new)
MAX_UNCOMMITTED = 10_000


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


def _state_text(detector: Detector) -> str:
    """The detector's state as JSON text (its own ``state_text()`` when it has one:
    see :class:`~zerolane.detection.detector.Detector`)."""
    text = getattr(detector, "state_text", None)
    if callable(text):
        return str(text())
    return json.dumps(detector.state(), separators=(",", ":"))


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
        commit_seconds: float = COMMIT_SECONDS,
        max_uncommitted: int = MAX_UNCOMMITTED,
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
        self._commit_seconds = commit_seconds
        self._max_uncommitted = max_uncommitted
        self._seqs: dict[str, int] | None = None  # where each has read to; None: load first
        self._stored: dict[str, int] = {}  # the cursors as stored (compare-and-set)
        self._found: list[Detection] = []  # found in what was read, not written yet
        self._committed_at = 0.0  # time.monotonic() of the last write
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
        self._stored = dict(seqs)
        self._found = []
        self._committed_at = time.monotonic()
        return seqs

    def step(self) -> int:
        """Read and process one batch; how many events it read (0: caught up). Written
        when it is due (see the module doc), else kept for a later write."""
        with self._lock:
            seqs = self._seqs if self._seqs is not None else self._load()
            self._seqs = None  # until this step is done, the store is the truth
            if not self._detectors:
                self._seqs = seqs
                return 0
            records = self._store.read_events(min(seqs.values()), self._batch)
            found = self._found
            if records:
                seen = [Seen.of(r) for r in records if r.kind != DETECTION]
                for detector in self._detectors:
                    start, observe = seqs[detector.name], detector.observe
                    for event in seen:
                        if event.seq > start and (hits := observe(event)):
                            found.extend(hits)
                seqs = dict.fromkeys(seqs, records[-1].seq)
            if self._due(seqs, found, len(records)):
                if not self._commit(seqs, found):
                    return 0  # another runner got there first: reload from its cursors
                found.clear()
            self._seqs = seqs
            return len(records)

    def _due(self, seqs: dict[str, int], found: list[Detection], read: int) -> bool:
        """Whether to write now (see the module doc)."""
        if seqs == self._stored:
            return False  # nothing read since the last write (so nothing found)
        if read == 0 or (found and read < self._batch):
            return True  # caught up: what it found is recorded at once
        return (
            min(seqs.values()) - min(self._stored.values()) >= self._max_uncommitted
            or time.monotonic() - self._committed_at >= self._commit_seconds
        )

    def _commit(self, seqs: dict[str, int], found: list[Detection]) -> bool:
        """One write: the cursor and state of every detector that read on, with the
        detections found; False when a cursor had moved elsewhere (nothing written)."""
        now = self._clock.now()
        advances = tuple(
            CursorAdvance(
                d.name,
                self._stored[d.name],
                seqs[d.name],
                _state_text(d),
                now,
            )
            for d in self._detectors
            if seqs[d.name] != self._stored[d.name]
        )
        events = [detection_event(self._audit, d) for d in found]
        moved = self._store.write_recorded(
            AdvanceCursors(advances), lambda ok: events if ok else [], seal
        )
        if not moved:
            log.info("detector cursors moved elsewhere; reloading them")
            return False
        self._stored = dict(seqs)
        self._committed_at = time.monotonic()
        self.recorded += len(events)
        return True

    def flush(self) -> None:
        """Write what was read but not written yet (the thread does when it stops)."""
        with self._lock:
            seqs, self._seqs = self._seqs, None
            if seqs is None or seqs == self._stored:
                self._seqs = seqs
                return
            if self._commit(seqs, self._found):
                self._found.clear()
                self._seqs = seqs

    def catch_up(self) -> int:
        """Step until the detectors have read the whole log (and written it); events
        read."""
        total = 0
        while (read := self.step()) > 0:
            total += read
        return total

    def lag(self) -> dict[str, int]:
        """Per detector: the last sequence number in the log minus where it has read
        to (its stored cursor until this runner has read)."""
        last = self._store.last_event()
        head = last.seq if last is not None else 0
        cursors = self._seqs
        if cursors is None:
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
            else:
                time.sleep(0)  # a backlog: let waiting decisions have the interpreter
        try:
            self.flush()
        except Exception:  # safe: what was not written is read again
            log.exception("writing the detectors' cursors on stopping failed")
