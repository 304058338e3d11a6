"""The in-process revocation bus and the event's wire format."""

from __future__ import annotations

import json

import pytest

from tests.identity.attestors.cases import FixedClock
from zerolane.errors import InvalidInput
from zerolane.store.memory.bus import MemoryRevocationBus
from zerolane.store.records import RevocationEvent, RevocationKind

EVENT = RevocationEvent(("tsk_a", "tsk_b"), RevocationKind.REVOKED, "admin", 1_800_000_000.5)


def test_publish_numbers_events_and_reaches_every_subscriber_in_order() -> None:
    bus = MemoryRevocationBus(FixedClock())
    first: list[RevocationEvent] = []
    second: list[RevocationEvent] = []
    bus.subscribe(first.append)
    bus.subscribe(second.append)
    one = bus.publish(EVENT)
    two = bus.publish(EVENT)
    assert (one.sequence, two.sequence) == (1, 2)
    assert first == second == [one, two]
    assert bus.sequence == 2


def test_unsubscribed_callbacks_hear_nothing_more() -> None:
    bus = MemoryRevocationBus(FixedClock())
    heard: list[RevocationEvent] = []
    unsubscribe = bus.subscribe(heard.append)
    bus.publish(EVENT)
    unsubscribe()
    unsubscribe()  # twice is harmless
    bus.publish(EVENT)
    assert len(heard) == 1


def test_a_failing_subscriber_does_not_starve_the_others() -> None:
    bus = MemoryRevocationBus(FixedClock())
    heard: list[RevocationEvent] = []

    def broken(_: RevocationEvent) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(heard.append)
    bus.publish(EVENT)
    assert len(heard) == 1
    assert bus.delivery_errors == 1


def test_a_subscriber_may_publish_a_cascade_from_its_callback() -> None:
    bus = MemoryRevocationBus(FixedClock())
    heard: list[int] = []

    def cascade(event: RevocationEvent) -> None:
        heard.append(event.sequence)
        if event.task_ids == ("tsk_parent",):
            bus.publish(RevocationEvent(("tsk_child",), RevocationKind.REVOKED, "parent", 1.0))

    bus.subscribe(cascade)
    bus.publish(RevocationEvent(("tsk_parent",), RevocationKind.REVOKED, "admin", 1.0))
    assert heard == [1, 2]


def test_the_in_process_bus_is_always_reachable() -> None:
    clock = FixedClock()
    health = MemoryRevocationBus(clock).health()
    assert health.connected
    assert health.last_seen == clock.now()


def test_events_round_trip_through_json() -> None:
    published = RevocationEvent(("tsk_a",), RevocationKind.SUSPENDED, "risk.high", 12.25, 7)
    assert RevocationEvent.from_json(published.to_json()) == published
    assert RevocationEvent.from_json(published.to_json().encode()) == published


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "[]",
        {"v": 2, "seq": 1, "kind": "ended", "tasks": ["t"], "reason": "", "at": 1},
        {"v": 1, "seq": 1, "kind": "gone", "tasks": ["t"], "reason": "", "at": 1},
        {"v": 1, "seq": 1, "kind": "ended", "tasks": [], "reason": "", "at": 1},
        {"v": 1, "seq": 1, "kind": "ended", "tasks": [1], "reason": "", "at": 1},
        {"v": 1, "seq": 1, "kind": "ended", "tasks": ["t" * 300], "reason": "", "at": 1},
        {"v": 1, "seq": 1, "kind": "ended", "tasks": ["t"] * 1001, "reason": "", "at": 1},
        {"v": 1, "seq": -1, "kind": "ended", "tasks": ["t"], "reason": "", "at": 1},
        {"v": 1, "seq": True, "kind": "ended", "tasks": ["t"], "reason": "", "at": 1},
        {"v": 1, "seq": 1, "kind": "ended", "tasks": ["t"], "reason": "", "at": "now"},
        {"v": 1, "seq": 1, "kind": "ended", "tasks": ["t"], "reason": 5, "at": 1},
        {"v": 1, "seq": 1, "kind": "ended", "tasks": ["t"], "at": 1},
    ],
)
def test_malformed_events_are_refused(doc: object) -> None:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(InvalidInput) as caught:
        RevocationEvent.from_json(text)
    assert caught.value.reason == "revocation.malformed"
