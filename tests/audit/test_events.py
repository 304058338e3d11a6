"""The versioned audit event schema."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from tests.audit.conftest import NOW, make_event
from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SCHEMA_VERSION, SYSTEM, Actor, Event, rfc3339, uuid4_hex
from zerolane.audit.log import event_json
from zerolane.audit.masking import mask_value
from zerolane.store.ports import GENESIS_HASH
from zerolane.types import Outcome

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UNSEALED_MEMBERS = {
    "schema_version",
    "event_id",
    "time",
    "kind",
    "actor",
    "subject",
    "outcome",
    "reason",
    "details",
}


def test_unsealed_event_has_exactly_the_schema_members() -> None:
    event = Event(
        kind="attestation",
        actor=Actor("workload", "spiffe://example.org/agent"),
        subject="spiffe://example.org/agent",
        outcome=Outcome.DENIED,
        reason="join_token.used",
        time=NOW,
        details={"method": "join_token"},
    )
    body = event.unsealed()
    assert set(body) == UNSEALED_MEMBERS
    assert body["schema_version"] == SCHEMA_VERSION == 2
    assert body["kind"] == "attestation"
    assert body["actor"] == {"type": "workload", "id": "spiffe://example.org/agent"}
    assert body["subject"] == "spiffe://example.org/agent"
    assert body["outcome"] == "denied"
    assert body["reason"] == "join_token.used"
    assert body["details"] == {"method": "join_token"}
    assert body["event_id"] == event.event_id


def test_sealed_event_json_adds_seq_prev_hash_and_hash() -> None:
    record = seal(make_event(1).unsealed(), 1, GENESIS_HASH)
    full = event_json(record)
    assert set(full) == {*UNSEALED_MEMBERS, "seq", "prev_hash", "hash"}
    assert (full["seq"], full["prev_hash"], full["hash"]) == (1, GENESIS_HASH, record.hash)


@pytest.mark.parametrize("outcome", ["success", "denied", None, True])
def test_event_with_a_non_outcome_outcome_is_refused(outcome: object) -> None:
    event = Event(
        kind="attestation",
        actor=SYSTEM,
        subject="x",
        outcome=outcome,  # type: ignore[arg-type]
        reason="ok",
        time=NOW,
    )
    with pytest.raises(TypeError):
        event.unsealed()


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_is_accepted(outcome: Outcome) -> None:
    assert make_event(1, outcome=outcome).unsealed()["outcome"] == outcome.value


def test_outcome_has_no_default() -> None:
    with pytest.raises(TypeError):
        Event(kind="x", actor=SYSTEM, subject="x", reason="ok", time=NOW)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_800_000_000.0, "2027-01-15T08:00:00.000Z"),
        (1_800_000_000.25, "2027-01-15T08:00:00.250Z"),
        (951_782_400.5, "2000-02-29T00:00:00.500Z"),
    ],
)
def test_time_is_rfc3339_utc_with_milliseconds(timestamp: float, expected: str) -> None:
    assert rfc3339(timestamp) == expected
    assert RFC3339_Z.match(expected)
    parsed = dt.datetime.fromisoformat(expected.replace("Z", "+00:00"))
    assert parsed.timestamp() == pytest.approx(timestamp, abs=0.001)


def test_event_time_uses_rfc3339() -> None:
    body = make_event(0).unsealed()
    assert body["time"] == rfc3339(NOW) == "2027-01-15T08:00:00.000Z"


def test_event_ids_are_unique_hex() -> None:
    ids = {make_event(1).event_id for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_event_ids_are_random_uuid4s() -> None:
    """What ``uuid.uuid4().hex`` gives: version 4, RFC 4122 variant, 122 random bits."""
    ids = [uuid.UUID(hex=uuid4_hex()) for _ in range(256)]
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i.hex) for i in ids)
    fixed = (0xC000 << 48) | (0xF000 << 64)  # the version and variant bits
    ones = zeros = 0
    for i in ids:
        ones |= i.int
        zeros |= ~i.int & ((1 << 128) - 1)
    assert ones & zeros == ((1 << 128) - 1) & ~fixed  # every other bit takes both values


def test_details_are_masked() -> None:
    event = Event(
        kind="join_token.created",
        actor=SYSTEM,
        subject="spiffe://example.org/agent",
        outcome=Outcome.SUCCESS,
        reason="ok",
        time=NOW,
        details={"join_token": "zljt_secret", "token_id": "sha256:abc", "owner": "ops"},
    )
    assert event.unsealed()["details"] == {
        "join_token": mask_value("zljt_secret"),
        "token_id": "sha256:abc",
        "owner": "ops",
    }


def test_a_secret_echoed_as_subject_is_masked() -> None:
    jwt_like = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    event = Event(
        kind="attestation",
        actor=SYSTEM,
        subject=jwt_like,
        outcome=Outcome.DENIED,
        reason="attestation.no_workload",
        time=NOW,
    )
    assert event.unsealed()["subject"] == mask_value(jwt_like)
    assert make_event(1).unsealed()["subject"] == "spiffe://example.org/w1"


def test_a_chain_of_version_1_events_then_version_2_events_verifies_as_one() -> None:
    """Version 2 changes what masking stores, not the members or the hash: a home that
    recorded version 1 events before an upgrade keeps one verifiable chain."""
    older = make_event(1).unsealed() | {
        "schema_version": 1,
        "details": {"requested": {"subject_token_type": mask_value("urn:x")}},
    }
    first = seal(older, 1, GENESIS_HASH)
    second = seal(make_event(2).unsealed(), 2, first.hash)
    assert (event_json(first)["schema_version"], event_json(second)["schema_version"]) == (1, 2)
    assert verify([first, second]) == (2, None)
    edited = seal(older | {"details": {}}, 1, GENESIS_HASH)
    assert verify([edited, second])[1] is not None  # the twin: an edit still breaks it
