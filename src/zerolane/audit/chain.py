"""The hash chain: sealing events and verifying a stored sequence of them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from zerolane.store.ports import GENESIS_HASH
from zerolane.store.records import AuditRecord

#: ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, built
#: once: ``dumps`` makes the same encoder anew on every call, inside the writer's turn
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(obj: object) -> str:
    """The hashed form: keys sorted, no spaces, UTF-8 as is (never change it: stored
    chains are verified against these exact bytes)."""
    return _CANONICAL.encode(obj)


def seal(unsealed: dict[str, object], seq: int, prev_hash: str) -> AuditRecord:
    """Give ``unsealed`` its place in the chain and its hash."""
    body_obj = {**unsealed, "seq": seq, "prev_hash": prev_hash}
    body = canonical(body_obj)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return AuditRecord(
        seq=seq,
        event_id=str(unsealed["event_id"]),
        time=str(unsealed["time"]),
        kind=str(unsealed["kind"]),
        outcome=str(unsealed["outcome"]),
        body=body,
        prev_hash=prev_hash,
        hash=digest,
    )


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken link: the event at ``seq`` and what is wrong with it."""

    seq: int
    event_id: str
    problem: str


def _check(record: AuditRecord, expected_seq: int, expected_prev: str) -> str | None:
    if record.seq != expected_seq:
        return f"expected event {expected_seq} here, found {record.seq} (removed or reordered)"
    if record.prev_hash != expected_prev:
        return "does not link to the event before it (removed, inserted or reordered)"
    if hashlib.sha256(record.body.encode("utf-8")).hexdigest() != record.hash:
        return "its content does not match its hash (edited)"
    try:
        body = json.loads(record.body)
    except ValueError:
        return "its body is not JSON (edited)"
    columns = {
        "seq": record.seq,
        "event_id": record.event_id,
        "time": record.time,
        "kind": record.kind,
        "outcome": record.outcome,
        "prev_hash": record.prev_hash,
    }
    for name, value in columns.items():
        if body.get(name) != value:
            return f"its '{name}' column differs from the hashed body (edited)"
    return None


def verify(records: Iterable[AuditRecord]) -> tuple[int, Break | None]:
    """Walk the chain from the start; return how many verified and the first break."""
    expected_seq, expected_prev, count = 1, GENESIS_HASH, 0
    for record in records:
        problem = _check(record, expected_seq, expected_prev)
        if problem is not None:
            return count, Break(record.seq, record.event_id, problem)
        count += 1
        expected_seq, expected_prev = record.seq + 1, record.hash
    return count, None
