"""The replay detector: refused replays fire; other refusals and allows do not."""

from __future__ import annotations

from tests.detection.recorded import AGENT, Recorder, run, seqs
from zerolane.detection.replay import ReplayDetector
from zerolane.settings.detection import ReplaySettings
from zerolane.types import Outcome


def test_a_reused_proof_fires_at_once_naming_its_event() -> None:
    log = Recorder()
    log.decision(0, allowed=True, reason="ok")
    log.decision(1, reason="dpop.replayed", action=None)
    found = run(ReplayDetector(ReplaySettings()), log.records)
    assert len(found) == 1
    assert found[0].detector == "replay"
    assert found[0].severity == "high"
    assert found[0].task_id == "tsk_1"
    assert found[0].workload == AGENT
    assert seqs(found[0]) == [2]
    assert found[0].details()["reasons"] == ["dpop.replayed"]


def test_the_near_miss_other_refusals_and_allows_do_not_fire() -> None:
    log = Recorder()
    log.decision(0, allowed=True, reason="ok")
    log.decision(1, reason="dpop.htu", action=None)  # a proof for another URL: no replay
    log.decision(2, reason="token.expired", action=None)
    log.decision(3, reason="policy.denied")
    assert run(ReplayDetector(ReplaySettings()), log.records) == []


def test_a_wrong_key_certificate_or_reused_refresh_token_is_a_replay_too() -> None:
    log = Recorder()
    log.decision(0, reason="dpop.key_mismatch", action=None)
    log.decision(1, task="tsk_2", reason="mtls.cert_mismatch", action=None)
    log.add("oauth.refresh_reused", 2, subject="unknown", reason="oauth.refresh_reused")
    found = run(ReplayDetector(ReplaySettings()), log.records)
    assert [(d.task_id, seqs(d)) for d in found] == [("tsk_1", [1]), ("tsk_2", [2]), (None, [3])]
    assert found[2].subject == "spiffe://example.org/agents/a1"


def test_a_reason_listed_after_the_first_counts() -> None:
    log = Recorder()
    log.add(
        "decision", 0, reason="task.ended", details={"reasons": ["task.ended", "dpop.replayed"]}
    )
    assert len(run(ReplayDetector(ReplaySettings()), log.records)) == 1


def test_a_threshold_counts_within_its_window_only() -> None:
    settings = ReplaySettings(threshold=3, window_seconds=10)
    near = Recorder()  # three, but spread over more than the window
    for at in (0, 6, 12):
        near.decision(at, reason="dpop.replayed", action=None)
    assert run(ReplayDetector(settings), near.records) == []
    fires = Recorder()
    for at in (0, 4, 8, 9):
        fires.decision(at, reason="dpop.replayed", action=None)
    found = run(ReplayDetector(settings), fires.records)
    assert [seqs(d) for d in found] == [[1, 2, 3]]  # the fourth starts a new count
    assert found[0].details()["count"] == 3


def test_an_unauthenticated_refusal_is_counted_under_unknown() -> None:
    log = Recorder()
    log.add("decision", 0, subject="unknown", actor="unauthenticated", reason="dpop.replayed")
    (found,) = run(ReplayDetector(ReplaySettings()), log.records)
    assert found.task_id is None
    assert found.workload is None
    assert found.subject == "unknown"


def test_its_state_survives_a_restart() -> None:
    settings = ReplaySettings(threshold=2)
    log = Recorder()
    log.decision(0, reason="dpop.replayed", action=None)
    log.decision(1, reason="dpop.replayed", action=None, allowed=False)
    first = ReplayDetector(settings)
    assert run(first, log.records[:1]) == []
    second = ReplayDetector(settings)
    second.restore(first.state())
    (found,) = run(second, log.records[1:])
    assert seqs(found) == [1, 2]
    assert Outcome.DENIED.value == log.records[1].outcome
