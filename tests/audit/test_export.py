"""Exporting the log by sequence number: in order, from ``after``, following it, never
stepping over a missing event."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.audit.conftest import FixedClock, build_chain
from zerolane.audit.events import SYSTEM
from zerolane.audit.export import export, line_of
from zerolane.audit.log import AuditLog, event_json
from zerolane.audit.ocsf import to_ocsf
from zerolane.errors import Unavailable
from zerolane.store.open import open_stores
from zerolane.store.ports import Stores
from zerolane.store.records import AuditRecord
from zerolane.types import Outcome


@pytest.fixture
def stores() -> Iterator[Stores]:
    opened = open_stores("memory://")
    yield opened
    opened.close()


def append(stores: Stores, count: int) -> None:
    log = AuditLog(stores, FixedClock())
    for n in range(count):
        log.record("policy.reloaded", actor=SYSTEM, subject=f"v{n}", outcome=Outcome.SUCCESS)


def seqs(lines: list[str]) -> list[int]:
    return [json.loads(line)["seq"] for line in lines]


def test_every_event_after_the_start_is_written_once_in_order(stores: Stores) -> None:
    append(stores, 7)
    lines: list[str] = []
    assert export(stores, lines.append, event_json, after=2, page=2) == 7
    assert seqs(lines) == [3, 4, 5, 6, 7]  # across pages of 2: nothing repeated or lost
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert export(stores, lines.append, event_json, after=7) == 7  # nothing after the end


def test_an_ocsf_line_is_the_mapped_event(stores: Stores) -> None:
    append(stores, 1)
    [record] = stores.read_events(0, 10)
    line = line_of(record, to_ocsf)
    assert json.loads(line) == json.loads(json.dumps(to_ocsf(record)))
    assert line == line_of(record, to_ocsf)  # the same event is the same line


def test_following_writes_what_is_appended_meanwhile_and_stops_when_told(
    stores: Stores,
) -> None:
    append(stores, 3)
    lines: list[str] = []
    stop = threading.Event()
    result: list[int] = []
    follower = threading.Thread(
        target=lambda: result.append(
            export(stores, lines.append, event_json, follow=True, poll=0.01, stop=stop, page=4)
        )
    )
    follower.start()
    for _ in range(5):
        append(stores, 3)
    deadline = threading.Event()
    for _ in range(500):
        if len(lines) >= 18:
            break
        deadline.wait(0.01)
    stop.set()
    follower.join(5)
    assert not follower.is_alive()
    assert seqs(lines) == list(range(1, 19))
    assert result == [18]


class Holed:
    """A store whose reads miss event 3 until ``filled``."""

    def __init__(self) -> None:
        self.records = build_chain(5)
        self.filled = False
        self.reads = 0

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        self.reads += 1
        shown = [r for r in self.records if self.filled or r.seq != 3]
        return [r for r in shown if r.seq > after_seq][:limit]


def test_a_missing_event_is_never_stepped_over() -> None:
    store = Holed()
    lines: list[str] = []
    with pytest.raises(Unavailable) as raised:
        export(store, lines.append, event_json, gap_grace=0.0)  # type: ignore[arg-type]
    assert raised.value.reason == "audit.sequence_gap"
    assert "event 3 is missing" in raised.value.message
    assert seqs(lines) == [1, 2]


def test_a_missing_event_that_shows_up_within_the_grace_is_exported_in_its_place() -> None:
    store = Holed()
    lines: list[str] = []
    stop = threading.Event()

    def write(line: str) -> None:
        lines.append(line)

    def fill_later() -> None:
        while store.reads < 3:
            stop.wait(0.005)
        store.filled = True

    filler = threading.Thread(target=fill_later)
    filler.start()
    last = export(store, write, event_json, poll=0.01, gap_grace=30.0)  # type: ignore[arg-type]
    filler.join(5)
    assert last == 5
    assert seqs(lines) == [1, 2, 3, 4, 5]


def test_an_unreadable_event_fails_with_its_sequence_number() -> None:
    [record] = build_chain(1)
    broken = replace(record, body="{not json")
    with pytest.raises(Unavailable) as raised:
        line_of(broken, event_json)
    assert raised.value.reason == "audit.unreadable"
    assert "audit event 1" in raised.value.message
