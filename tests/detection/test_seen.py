"""What a detector sees of an audit event, and the details of a detection."""

from __future__ import annotations

import dataclasses

from tests.detection.recorded import Recorder
from zerolane.detection.seen import MAX_EVIDENCE, Detection, Evidence, Seen


def test_an_event_is_read_once_into_its_members() -> None:
    log = Recorder()
    record = log.decision(5, reason="dpop.replayed")
    seen = Seen.of(record)
    assert (seen.seq, seen.kind, seen.outcome, seen.reason) == (
        1,
        "decision",
        "denied",
        "dpop.replayed",
    )
    assert seen.task_id == "tsk_1"
    assert seen.workload == "spiffe://example.org/agents/a1"
    assert seen.time == 1_700_000_005.0
    assert seen.reasons == ("dpop.replayed",)


def test_a_malformed_record_reads_as_empty_members() -> None:
    record = Recorder().add("decision", 0)
    broken = dataclasses.replace(record, body="not json", time="yesterday")
    seen = Seen.of(broken)
    assert (seen.reason, seen.subject, seen.time, seen.details) == ("", "", 0.0, {})
    assert seen.task_id is None
    assert seen.workload is None
    odd = dataclasses.replace(record, body='{"actor": "x", "details": [], "reason": 3}')
    assert Seen.of(odd).reasons == ("",)


def test_an_unauthenticated_actor_is_no_workload() -> None:
    record = Recorder().add("decision", 0, actor="unauthenticated", subject="unknown")
    assert Seen.of(record).workload is None
    assert Seen.of(record).task_id is None


def test_evidence_is_capped_and_counted() -> None:
    many = tuple(Evidence(n, f"e{n}") for n in range(MAX_EVIDENCE + 5))
    details = Detection("replay", "high", "s", None, "spiffe://x/y", many).details()
    assert len(details["evidence"]) == MAX_EVIDENCE  # type: ignore[arg-type]
    assert details["evidence_total"] == MAX_EVIDENCE + 5


def test_a_refusal_without_a_subject_may_name_its_task_in_its_details() -> None:
    log = Recorder()
    named = log.add("decision", 0, subject="unknown", details={"task_id": "tsk_9"})
    blank = log.add("decision", 1, subject="unknown", details={"task_id": ""})
    assert Seen.of(named).task_id == "tsk_9"
    assert Seen.of(blank).task_id is None
