"""The hash chain: an intact chain verifies; each kind of tampering names the first break."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from tests.audit.conftest import build_chain, make_event
from zerolane.audit.chain import canonical, seal, verify
from zerolane.store.ports import GENESIS_HASH
from zerolane.store.records import AuditRecord


def rehash(record: AuditRecord, body: str) -> AuditRecord:
    """What a careful forger does: change the body and recompute its hash."""
    digest = hashlib.sha256(body.encode()).hexdigest()
    return dataclasses.replace(record, body=body, hash=digest)


def edited_body(record: AuditRecord, **changes: object) -> str:
    body = json.loads(record.body)
    body.update(changes)
    return canonical(body)


def test_intact_chain_verifies() -> None:
    assert verify(build_chain(6)) == (6, None)


def test_empty_chain_verifies() -> None:
    assert verify([]) == (0, None)


def test_seal_hashes_the_canonical_body_with_its_place() -> None:
    event = make_event(1).unsealed()
    record = seal(event, 7, "ab" * 32)
    body = json.loads(record.body)
    assert body == {**event, "seq": 7, "prev_hash": "ab" * 32}
    assert record.body == canonical(body)
    assert record.hash == hashlib.sha256(record.body.encode()).hexdigest()
    assert (record.seq, record.prev_hash, record.event_id) == (7, "ab" * 32, event["event_id"])


def test_first_event_links_to_genesis() -> None:
    chain = build_chain(2)
    assert chain[0].prev_hash == GENESIS_HASH == "0" * 64


def test_edited_body_is_caught_at_that_event() -> None:
    chain = build_chain(5)
    chain[2] = dataclasses.replace(chain[2], body=edited_body(chain[2], reason="forged"))
    count, broken = verify(chain)
    assert count == 2
    assert broken is not None
    assert (broken.seq, broken.event_id) == (3, chain[2].event_id)
    assert "edited" in broken.problem


def test_edited_and_rehashed_body_is_caught_at_the_next_event() -> None:
    chain = build_chain(5)
    chain[2] = rehash(chain[2], edited_body(chain[2], reason="forged"))
    count, broken = verify(chain)
    assert count == 3
    assert broken is not None
    assert broken.seq == 4
    assert "link" in broken.problem


def test_body_that_is_not_json_is_caught() -> None:
    chain = build_chain(3)
    chain[1] = rehash(chain[1], "not json at all")
    count, broken = verify(chain)
    assert count == 1
    assert broken is not None
    assert broken.seq == 2
    assert "JSON" in broken.problem


def test_edited_column_is_caught() -> None:
    chain = build_chain(5)
    chain[3] = dataclasses.replace(chain[3], outcome="denied")
    count, broken = verify(chain)
    assert count == 3
    assert broken is not None
    assert broken.seq == 4
    assert "'outcome' column" in broken.problem


def test_each_column_is_covered_by_the_hash() -> None:
    for column, value in [
        ("event_id", "f" * 32),
        ("time", "2000-01-01T00:00:00.000Z"),
        ("kind", "svid.issued"),
        ("outcome", "failure"),
    ]:
        chain = build_chain(3)
        changed: dict[str, Any] = {column: value}
        chain[1] = dataclasses.replace(chain[1], **changed)
        count, broken = verify(chain)
        assert count == 1, column
        assert broken is not None
        assert broken.seq == 2, column


def test_removed_event_is_caught_where_it_is_missing() -> None:
    chain = build_chain(5)
    removed = chain.pop(2)
    count, broken = verify(chain)
    assert count == 2
    assert broken is not None
    assert broken.seq == 4  # found where event 3 should be
    assert broken.event_id == chain[2].event_id != removed.event_id
    assert "expected event 3" in broken.problem


def test_removed_first_event_is_caught() -> None:
    chain = build_chain(3)[1:]
    count, broken = verify(chain)
    assert count == 0
    assert broken is not None
    assert broken.seq == 2


def test_removed_event_with_renumbered_successors_is_caught() -> None:
    original = build_chain(5)
    chain = [*original[:2], *(dataclasses.replace(r, seq=r.seq - 1) for r in original[3:])]
    count, broken = verify(chain)
    assert count == 2
    assert broken is not None
    assert (broken.seq, broken.event_id) == (3, original[3].event_id)
    assert "link" in broken.problem


def test_swapped_events_are_caught() -> None:
    chain = build_chain(5)
    chain[2], chain[3] = chain[3], chain[2]
    count, broken = verify(chain)
    assert count == 2
    assert broken is not None
    assert broken.seq == 4
    assert broken.event_id == chain[2].event_id


def test_inserted_event_is_caught() -> None:
    original = build_chain(5)
    # a forged event that links correctly to event 2 and takes place 3
    forged = seal(make_event(99).unsealed(), 3, original[1].hash)
    chain = [*original[:2], forged, *original[2:]]
    count, broken = verify(chain)
    assert count == 3  # events 1, 2 and the forgery itself link up
    assert broken is not None
    # the original event 3, now in fourth place
    assert (broken.seq, broken.event_id) == (3, original[2].event_id)


def test_inserted_event_with_renumbered_successors_is_caught() -> None:
    original = build_chain(5)
    forged = seal(make_event(99).unsealed(), 3, original[1].hash)
    renumbered = [dataclasses.replace(r, seq=r.seq + 1) for r in original[2:]]
    count, broken = verify([*original[:2], forged, *renumbered])
    assert count == 3
    assert broken is not None
    assert (broken.seq, broken.event_id) == (4, original[2].event_id)
    assert "link" in broken.problem


def test_the_hashed_bytes_are_those_of_json_dumps_so_stored_chains_still_verify() -> None:
    """``canonical`` reuses one encoder; its bytes (and so every stored hash) must stay
    exactly ``json.dumps(sort_keys, compact separators, ensure_ascii=False)``."""
    event: dict[str, object] = {
        "schema_version": 1,
        "event_id": "0" * 32,
        "time": "2027-01-15T08:00:00.000Z",
        "kind": "decision",
        "actor": {"type": "workload", "id": "spiffe://example.org/agent"},
        "subject": "tsk_a",
        "outcome": "success",
        "reason": "ok",
        "details": {
            "url": "http://gw/ünïcode/✓",
            "reasons": [],
            "n": 3,
            "ratio": 0.5,
            "flag": True,
            "none": None,
            "quote": 'a"b\\c\n\u2028',
        },
    }
    record = seal(event, 7, "ab" * 32)
    as_before = json.dumps(
        {**event, "seq": 7, "prev_hash": "ab" * 32},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert record.body == as_before
    # sealed by the code before the encoder was reused: a stored chain's hash
    assert record.hash == "57e13f840b4d261350a9a06988357dbb374b645c6bfc9a6990e4780e030643f8"
    assert verify([seal(event, 1, GENESIS_HASH)]) == (1, None)
