"""RevocationWatch: what an enforcement point knows of revocations, failing closed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from tests.identity.attestors.cases import FixedClock
from tests.tasks.conftest import ADMIN, AGENT, Agent, World
from zerolane.errors import Unavailable
from zerolane.store.memory.bus import MemoryRevocationBus
from zerolane.store.ports import RevocationCallback
from zerolane.store.records import BusHealth, RevocationEvent, RevocationKind
from zerolane.tasks.revocation import RevocationPublisher, RevocationWatch, events_for
from zerolane.types import TaskState


class FakeBus:
    """A network bus as a subscriber sees it: it may disconnect and go silent."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.connected = True
        self.last_seen: float | None = clock.now()
        self.callbacks: list[RevocationCallback] = []
        self.sequence = 0
        self.refuse = False

    def publish(self, event: RevocationEvent) -> RevocationEvent:
        if self.refuse:
            raise Unavailable("bus.down", "the bus is down")
        self.sequence += 1
        return self.deliver(event, self.sequence)

    def deliver(self, event: RevocationEvent, sequence: int) -> RevocationEvent:
        sent = RevocationEvent(event.task_ids, event.kind, event.reason, event.at, sequence)
        self.last_seen = self.clock.now()
        for callback in list(self.callbacks):
            callback(sent)
        return sent

    def subscribe(self, callback: RevocationCallback) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def health(self) -> BusHealth:
        if self.connected:
            self.last_seen = self.clock.now()  # heartbeats arrive while connected
        return BusHealth(self.connected, self.last_seen)

    def disconnect(self) -> None:
        self.health()
        self.connected = False


def event(*task_ids: str, kind: RevocationKind = RevocationKind.REVOKED) -> RevocationEvent:
    return RevocationEvent(tuple(task_ids), kind, "test", 0.0)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def bus(clock: FixedClock) -> FakeBus:
    return FakeBus(clock)


@pytest.fixture
def watch(bus: FakeBus, clock: FixedClock) -> RevocationWatch:
    return RevocationWatch(bus, clock, grace_seconds=5)


def test_a_revoked_task_is_known_and_another_is_not(bus: FakeBus, watch: RevocationWatch) -> None:
    bus.publish(event("tsk_a"))
    heard = watch.check("tsk_a")
    assert heard is not None
    assert heard.kind is RevocationKind.REVOKED
    assert watch.check("tsk_b") is None  # the twin: nothing heard, bus reachable


def test_check_all_covers_the_ancestors(bus: FakeBus, watch: RevocationWatch) -> None:
    bus.publish(event("tsk_parent"))
    assert watch.check_all(["tsk_child", "tsk_parent"]) is not None
    assert watch.check_all(["tsk_child", "tsk_other"]) is None


def test_disconnected_within_the_grace_window_still_answers(
    bus: FakeBus, watch: RevocationWatch, clock: FixedClock
) -> None:
    bus.disconnect()
    clock.t += 5  # exactly the grace window
    assert watch.check("tsk_a") is None


def test_disconnected_past_the_grace_window_fails_closed(
    bus: FakeBus, watch: RevocationWatch, clock: FixedClock
) -> None:
    bus.disconnect()
    clock.t += 5.5
    with pytest.raises(Unavailable) as caught:
        watch.check("tsk_a")
    assert caught.value.reason == "revocation.unreachable"
    assert "disconnected" in caught.value.message
    assert not watch.status().reachable


def test_connected_but_silent_past_the_grace_window_fails_closed(
    bus: FakeBus, clock: FixedClock
) -> None:
    class SilentBus(FakeBus):
        def health(self) -> BusHealth:  # connected, but no heartbeat comes
            return BusHealth(True, self.last_seen)

    silent = SilentBus(clock)
    watch = RevocationWatch(silent, clock, grace_seconds=5)
    clock.t += 6
    with pytest.raises(Unavailable) as caught:
        watch.check("tsk_a")
    assert "silent" in caught.value.message


def test_a_bus_never_reached_fails_closed_at_once(bus: FakeBus, clock: FixedClock) -> None:
    bus.connected = False
    bus.last_seen = None
    watch = RevocationWatch(bus, clock, grace_seconds=5)
    with pytest.raises(Unavailable) as caught:
        watch.ensure_reachable()
    assert caught.value.reason == "revocation.unreachable"
    assert watch.status().silent_for is None


def test_reconnecting_ends_the_fail_closed_state(
    bus: FakeBus, watch: RevocationWatch, clock: FixedClock
) -> None:
    bus.disconnect()
    clock.t += 60
    with pytest.raises(Unavailable):
        watch.check("tsk_a")
    bus.connected = True
    assert watch.check("tsk_a") is None


def test_a_known_revocation_is_answered_even_while_unreachable(
    bus: FakeBus, watch: RevocationWatch, clock: FixedClock
) -> None:
    bus.publish(event("tsk_a"))
    bus.disconnect()
    clock.t += 60
    heard = watch.check("tsk_a")
    assert heard is not None
    assert heard.task_ids == ("tsk_a",)


def test_zero_grace_fails_closed_on_any_silence(bus: FakeBus, clock: FixedClock) -> None:
    watch = RevocationWatch(bus, clock, grace_seconds=0)
    assert watch.check("tsk_a") is None
    bus.disconnect()
    clock.t += 0.001
    with pytest.raises(Unavailable):
        watch.check("tsk_a")


def test_a_gap_in_the_sequence_bumps_the_epoch(bus: FakeBus, watch: RevocationWatch) -> None:
    bus.deliver(event("tsk_a"), 1)
    before = watch.epoch
    bus.deliver(event("tsk_b"), 2)
    assert watch.epoch == before
    bus.deliver(event("tsk_c"), 5)  # 3 and 4 never arrived
    assert watch.epoch == before + 1
    status = watch.status()
    assert (status.gaps, status.last_sequence) == (1, 5)


def test_suspension_is_lifted_by_a_later_resume_but_an_end_is_final(
    bus: FakeBus, watch: RevocationWatch
) -> None:
    bus.publish(event("tsk_s", kind=RevocationKind.SUSPENDED))
    assert watch.check("tsk_s") is not None
    bus.publish(event("tsk_s", kind=RevocationKind.RESUMED))
    assert watch.check("tsk_s") is None
    bus.publish(event("tsk_e", kind=RevocationKind.ENDED))
    bus.publish(event("tsk_e", kind=RevocationKind.RESUMED))
    heard = watch.check("tsk_e")
    assert heard is not None
    assert heard.kind is RevocationKind.ENDED


def test_an_older_event_never_overrides_a_newer_one(bus: FakeBus, watch: RevocationWatch) -> None:
    bus.deliver(event("tsk_s", kind=RevocationKind.SUSPENDED), 10)
    bus.deliver(event("tsk_s", kind=RevocationKind.RESUMED), 9)  # late, out of order
    assert watch.check("tsk_s") is not None


def test_the_set_is_bounded_and_forgetting_bumps_the_epoch(bus: FakeBus, clock: FixedClock) -> None:
    watch = RevocationWatch(bus, clock, capacity=3)
    for n in range(3):
        bus.publish(event(f"tsk_{n}"))
    before = watch.epoch
    bus.publish(event("tsk_3"))
    assert watch.check("tsk_0") is None  # the oldest was forgotten ...
    assert watch.check("tsk_3") is not None
    assert watch.epoch == before + 1  # ... and caches are told
    assert watch.status().tracked == 3
    assert watch.status().forgotten == 1


def test_entries_older_than_the_retention_are_dropped(bus: FakeBus, clock: FixedClock) -> None:
    watch = RevocationWatch(bus, clock, retention=60)
    bus.publish(event("tsk_old"))
    clock.t += 61
    bus.publish(event("tsk_new"))  # its ``at`` (the publisher's clock) does not matter
    assert watch.check("tsk_old") is None
    assert watch.check("tsk_new") is not None
    assert watch.epoch == 0  # expiring is not forgetting: no token lives that long


def test_close_unsubscribes(bus: FakeBus, watch: RevocationWatch) -> None:
    watch.close()
    watch.close()
    bus.publish(event("tsk_a"))
    assert watch.check("tsk_a") is None


def test_bad_settings_are_refused(bus: FakeBus, clock: FixedClock) -> None:
    with pytest.raises(ValueError, match="grace"):
        RevocationWatch(bus, clock, grace_seconds=-1)


# the publisher and the deployment's wiring


def test_events_group_tasks_by_kind_and_reason(world: World, agent: Agent) -> None:
    first = world.open(agent).task
    second = world.open(agent).task
    done = world.deployment.lifecycle.complete(first.task_id, AGENT, first.task_id)
    revoked = world.deployment.lifecycle.revoke(second.task_id, actor=ADMIN)
    events = events_for([done, revoked, first], world.clock.now())
    assert [(e.kind, e.reason, e.task_ids) for e in events] == [
        (RevocationKind.ENDED, "completed", (first.task_id,)),
        (RevocationKind.REVOKED, "revoked", (second.task_id,)),
    ]  # an active record (``first`` as opened) announces nothing


def test_a_bus_that_refuses_is_counted_not_raised(clock: FixedClock, world: World) -> None:
    bus = FakeBus(clock)
    bus.refuse = True
    publisher = RevocationPublisher(bus, clock)
    task = world.open(world.agent(AGENT)).task
    ended = world.deployment.lifecycle.revoke(task.task_id, actor=ADMIN)
    publisher([ended])
    assert publisher.failures == 1


def test_completing_a_task_reaches_the_deployment_watch_at_once(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    watch = world.deployment.revocations
    assert watch.check(opened.task.task_id) is None
    world.deployment.lifecycle.complete(opened.task.task_id, AGENT, opened.task.task_id)
    heard = watch.check(opened.task.task_id)
    assert heard is not None
    assert heard.kind is RevocationKind.ENDED
    assert isinstance(world.deployment.bus, MemoryRevocationBus)


def test_revoking_a_parent_announces_its_descendants(world: World, agent: Agent) -> None:
    parent = world.open(agent).task
    child = dataclasses.replace(
        parent, task_id="tsk_child", parent_id=parent.task_id, depth=1, max_calls=1
    )
    assert world.stores.add_child_task(child, now=world.clock.now()) is not None
    world.deployment.lifecycle.revoke(parent.task_id, actor=ADMIN)
    watch = world.deployment.revocations
    for task_id, reason in ((parent.task_id, "revoked"), ("tsk_child", "parent.revoked")):
        heard = watch.check(task_id)
        assert heard is not None
        assert (heard.kind, heard.reason) == (RevocationKind.REVOKED, reason)
    assert world.task("tsk_child").state is TaskState.REVOKED
