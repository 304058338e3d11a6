"""The detection stream: read by cursor, committed with its detections, resumed after a
restart without repeating a detection, never losing an event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.detection.recorded import AGENT, T0
from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.detection.detectors import build_detectors
from zerolane.detection.replay import ReplayDetector
from zerolane.detection.runner import DetectionRunner, DetectionStore
from zerolane.errors import Unavailable
from zerolane.settings.detection import DelegationFanoutSettings, DetectionSettings, ReplaySettings
from zerolane.store.changes import AdvanceCursors, CursorAdvance
from zerolane.store.memory import MemoryStores
from zerolane.store.sqlite import SqliteStores
from zerolane.types import Outcome


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> float:
        return self.at


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DetectionStore]:
    opened = MemoryStores() if request.param == "memory" else SqliteStores(tmp_path / "z.db")
    yield opened
    opened.close()


def replayed(audit: AuditLog, task: str = "tsk_1") -> int:
    record = audit.record(
        "decision",
        actor=Actor("workload", AGENT),
        subject=task,
        outcome=Outcome.DENIED,
        reason="dpop.replayed",
        details={"decision": "deny", "reasons": ["dpop.replayed"]},
    )
    assert record is not None
    return record.seq


def allowed(audit: AuditLog) -> None:
    audit.record(
        "decision", actor=Actor("workload", AGENT), subject="tsk_1", outcome=Outcome.SUCCESS
    )


def later(lag: int) -> dict[str, int]:
    """The lag of the detectors on by default besides the first three."""
    names = ("lateral_movement", "toxic_chains", "privilege_reuse", "dormant")
    return dict.fromkeys(names, lag)


def detections(store: DetectionStore) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in store.read_events(0, 10_000) if r.kind == "detection"]


def runner(store: DetectionStore, audit: AuditLog, **kw: Any) -> DetectionRunner:
    detectors = build_detectors(DetectionSettings(replay=ReplaySettings(threshold=2)))
    return DetectionRunner(store, audit, detectors, Clock(), **kw)


def test_a_detection_is_recorded_once_with_its_evidence(store: DetectionStore) -> None:
    audit = AuditLog(store, Clock())
    allowed(audit)
    first, second = replayed(audit), replayed(audit)
    stream = runner(store, audit, batch_size=2)
    assert stream.lag() == {"replay": 3, "scope_probing": 3, "delegation_fanout": 3, **later(3)}
    assert stream.catch_up() == 4  # three events, and the detection it recorded
    (found,) = detections(store)
    assert found["reason"] == "detection.replay"
    assert found["actor"] == {"type": "detector", "id": "replay"}
    assert found["subject"] == "tsk_1"
    assert found["outcome"] == "failure"
    assert [e["seq"] for e in found["details"]["evidence"]] == [first, second]
    assert stream.lag() == {"replay": 0, "scope_probing": 0, "delegation_fanout": 0, **later(0)}
    assert stream.recorded == 1
    assert stream.catch_up() == 0
    assert len(detections(store)) == 1  # nothing found twice
    assert AuditLog(store, Clock()).verify() == (4, None)


def test_a_restarted_runner_resumes_from_its_cursor(tmp_path: Path) -> None:
    path = tmp_path / "z.db"
    store = SqliteStores(path)
    audit = AuditLog(store, Clock())
    first = replayed(audit)
    before = runner(store, audit)
    assert before.catch_up() == 1  # one replay: below the threshold of two
    store.close()
    store = SqliteStores(path)  # a restart: a new process, the same database
    audit = AuditLog(store, Clock())
    second = replayed(audit)
    after = runner(store, audit)
    assert after.catch_up() == 2
    (found,) = detections(store)
    # the window held across the restart: the first replay is part of the evidence
    assert [e["seq"] for e in found["details"]["evidence"]] == [first, second]
    assert after.catch_up() == 0
    assert runner(store, audit).catch_up() == 0  # a third start finds nothing new
    assert len(detections(store)) == 1
    store.close()


class FailOnce(MemoryStores):
    """A store whose next recorded write fails (a crash between read and commit)."""

    fail = True

    def write_recorded(self, change: Any, events: Any, seal: Any) -> Any:
        if self.fail and isinstance(change, AdvanceCursors):
            self.fail = False
            raise Unavailable("store.write", "the database could not be written")
        return super().write_recorded(change, events, seal)


def test_a_failed_commit_loses_nothing_and_repeats_nothing() -> None:
    store = FailOnce()
    audit = AuditLog(store, Clock())
    replayed(audit)
    replayed(audit)
    stream = runner(store, audit)
    with pytest.raises(Unavailable):
        stream.step()
    assert detections(store) == []
    assert store.list_cursors() == []
    assert stream.catch_up() == 3
    assert len(detections(store)) == 1


def test_a_runner_that_lost_the_race_reloads_and_repeats_nothing() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    slow, fast = runner(store, audit), runner(store, audit)
    assert slow.step() == 0  # it has loaded its cursors (none yet)
    replayed(audit)
    replayed(audit)
    assert fast.catch_up() == 3  # two replays and its detection
    assert slow.step() == 0  # it expected cursors the fast one moved: nothing written
    assert slow.catch_up() == 0  # reloaded: nothing new
    assert len(detections(store)) == 1


def test_an_unreadable_stored_state_starts_afresh() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    replayed(audit)
    bad = CursorAdvance("replay", 0, 0, '{"windows": {"k": [[1]]}}', T0)
    assert store.write_recorded(AdvanceCursors((bad,)), lambda _: [], seal)
    stream = runner(store, audit)
    assert stream.catch_up() == 1
    assert detections(store) == []
    assert store.get_cursor("replay") is not None


def test_detector_names_are_unique() -> None:
    store = MemoryStores()
    twice = [ReplayDetector(ReplaySettings()), ReplayDetector(ReplaySettings())]
    with pytest.raises(ValueError, match="unique"):
        DetectionRunner(store, AuditLog(store, Clock()), twice, Clock())


def test_no_detector_reads_nothing() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    replayed(audit)
    assert DetectionRunner(store, audit, [], Clock()).catch_up() == 0


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_thread_catches_up_retries_failures_and_stops() -> None:
    store = FailOnce()
    audit = AuditLog(store, Clock())
    stream = runner(store, audit, poll_interval=0.01, batch_size=1)
    stream.start()
    stream.start()  # a second start is no second thread
    try:
        for _ in range(2):
            replayed(audit)
        wait_for(lambda: len(detections(store)) == 1)
        wait_for(lambda: max(stream.lag().values()) == 0)
        assert stream.failures == 1  # the failed step was retried, nothing skipped
    finally:
        stream.stop()
    replayed(audit)
    time.sleep(0.05)
    assert max(stream.lag().values()) == 1  # stopped: it reads no more
    stream.stop()  # stopping twice is harmless


def test_a_detector_added_later_reads_the_whole_log_and_the_others_go_on() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    replayed(audit)
    replayed(audit)
    scope_only = DetectionSettings(
        replay=ReplaySettings(enabled=False),
        delegation_fanout=DelegationFanoutSettings(enabled=False),
    )
    first = DetectionRunner(store, audit, build_detectors(scope_only), Clock())
    assert first.catch_up() == 2
    allowed(audit)
    both = runner(store, audit)
    assert both.lag() == {"replay": 3, "scope_probing": 1, "delegation_fanout": 3, **later(1)}
    assert both.catch_up() == 4  # from the start for the new ones, and their detection
    assert len(detections(store)) == 1
    assert set(both.lag().values()) == {0}


def stored(store: DetectionStore) -> dict[str, int]:
    return {c.detector: c.seq for c in store.list_cursors()}


def test_a_busy_log_is_written_once_caught_up_not_per_batch(store: DetectionStore) -> None:
    audit = AuditLog(store, Clock())
    for _ in range(4):
        allowed(audit)
    stream = runner(store, audit, batch_size=2, commit_seconds=3600)
    assert stream.step() == 2
    assert stream.step() == 2
    assert stored(store) == {}  # read, not written yet: nothing was found
    assert stream.lag()["replay"] == 0  # the lag is where it has read to
    assert stream.step() == 0  # the log is quiet: what was read is written
    assert set(stored(store).values()) == {4}


def test_a_backlog_holds_its_detections_until_its_write_and_loses_none(
    store: DetectionStore,
) -> None:
    audit = AuditLog(store, Clock())
    first, second = replayed(audit), replayed(audit)
    allowed(audit)
    stream = runner(store, audit, batch_size=1, commit_seconds=3600)
    assert [stream.step() for _ in range(3)] == [1, 1, 1]  # each batch full: a backlog
    assert detections(store) == []  # found, held with the cursors not yet written
    assert stream.recorded == 0
    assert stream.step() == 0  # caught up: one write, the cursors and the detection
    (found,) = detections(store)
    assert [e["seq"] for e in found["details"]["evidence"]] == [first, second]
    assert set(stored(store).values()) == {3}
    assert stream.catch_up() == 1  # its own detection, read past
    assert len(detections(store)) == 1


def test_a_runner_stopped_before_its_write_finds_the_same_again_once(tmp_path: Path) -> None:
    path = tmp_path / "z.db"
    store = SqliteStores(path)
    audit = AuditLog(store, Clock())
    replayed(audit)
    replayed(audit)
    crashed = runner(store, audit, batch_size=1, commit_seconds=3600)
    assert crashed.step() + crashed.step() == 2  # found, never written: a crash now
    store.close()
    store = SqliteStores(path)
    audit = AuditLog(store, Clock())
    assert detections(store) == []
    assert runner(store, audit).catch_up() == 3
    assert len(detections(store)) == 1
    assert runner(store, audit).catch_up() == 0
    assert len(detections(store)) == 1
    store.close()


def test_a_long_backlog_is_written_every_max_uncommitted_events() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    for _ in range(5):
        allowed(audit)
    stream = runner(store, audit, batch_size=2, commit_seconds=3600, max_uncommitted=4)
    assert stream.step() == 2
    assert stored(store) == {}
    assert stream.step() == 2  # four read: written though the backlog goes on
    assert set(stored(store).values()) == {4}


def test_a_flush_writes_what_was_read_and_a_second_is_harmless() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    stream = runner(store, audit, commit_seconds=3600)
    stream.flush()  # nothing read yet: nothing to write
    assert stored(store) == {}
    replayed(audit)
    replayed(audit)
    allowed(audit)
    assert stream.step() == 3  # the detection is written at once: caught up
    assert len(detections(store)) == 1
    allowed(audit)
    assert stream.step() == 2  # its detection and one event: kept
    assert set(stored(store).values()) == {3}
    stream.flush()
    assert set(stored(store).values()) == {5}
    stream.flush()
    assert set(stored(store).values()) == {5}


def test_stopping_the_thread_writes_what_it_read() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    allowed(audit)
    stream = runner(store, audit, poll_interval=60, commit_seconds=3600)
    stream.start()
    try:
        wait_for(lambda: stream.lag()["replay"] == 0)
    finally:
        stream.stop()
    assert set(stored(store).values()) == {1}


def test_a_failed_write_on_stopping_is_logged_and_read_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FailOnce()
    audit = AuditLog(store, Clock())
    replayed(audit)
    stream = runner(store, audit, poll_interval=60, commit_seconds=3600)
    stream.start()
    try:
        wait_for(lambda: stream.lag()["replay"] == 0)  # read, kept for a later write
    finally:
        stream.stop()  # its write fails: logged, nothing raised
    assert "writing the detectors' cursors on stopping failed" in caplog.text
    assert store.list_cursors() == []
    replayed(audit)
    assert runner(store, audit).catch_up() == 3  # read again: both replays, a detection
    assert len(detections(store)) == 1


def test_a_flush_that_lost_the_race_writes_nothing_and_reloads() -> None:
    store = MemoryStores()
    audit = AuditLog(store, Clock())
    replayed(audit)
    slow = runner(store, audit, commit_seconds=3600, batch_size=1)
    assert slow.step() == 1  # a full batch: kept
    replayed(audit)
    assert runner(store, audit).catch_up() == 3  # another runner found the pair first
    slow.flush()  # its cursors moved elsewhere: nothing written
    assert slow.catch_up() == 0  # reloaded from them: nothing new, nothing twice
    assert len(detections(store)) == 1
