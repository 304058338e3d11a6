"""The decider listens to the revocation bus, and fails closed when it is out of reach."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tasks.conftest import ADMIN, AGENT, Agent, World, build_world
from tests.tasks.test_revocation import FakeBus, event
from zerolane.audit.decision_log import decision_log
from zerolane.errors import Refusal
from zerolane.store.records import RevocationEvent, RevocationKind
from zerolane.tasks.decisions import Decider
from zerolane.tasks.revocation import RevocationWatch

GRACE = 5.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home")
    yield built
    built.deployment.close()


@pytest.fixture
def agent(world: World) -> Agent:
    return world.agent(AGENT)


@pytest.fixture
def bus(world: World) -> FakeBus:
    return FakeBus(world.clock)


@pytest.fixture
def decider(world: World, bus: FakeBus) -> Decider:
    """The world's decider, rebuilt over a bus that can go away."""
    deployment = world.deployment
    decider = Decider(
        authenticator=deployment.authenticator,
        tasks=deployment.stores,
        engine=deployment.policies.get,
        decisions=decision_log(deployment.audit, deployment.stores),
        clock=world.clock,
        internal_destinations=deployment.config.tasks.internal_destinations,
        revocations=RevocationWatch(bus, world.clock, grace_seconds=GRACE),
    )
    deployment.decider = decider  # World.ask decides through deployment.decider
    return decider


def test_a_revocation_heard_on_the_bus_denies_before_the_store_knows(
    world: World, agent: Agent, bus: FakeBus, decider: Decider
) -> None:
    revoked, other = world.open(agent), world.open(agent)
    assert world.ask(agent, revoked.token).allowed  # now cached by the decider
    bus.publish(event(revoked.task.task_id))
    denied = world.ask(agent, revoked.token)
    assert (denied.allowed, denied.reasons) == (False, ("task.revoked",))
    assert world.task(revoked.task.task_id).calls_used == 1  # nothing spent
    assert world.ask(agent, other.token).allowed  # the twin: another task goes on


def test_a_child_is_denied_when_its_parents_revocation_is_heard(
    world: World, agent: Agent, bus: FakeBus, decider: Decider
) -> None:
    opened = world.open(agent)
    # a parent the store does not know ended yet: only the bus has said so
    parent_id = "tsk_parent_heard_on_the_bus"
    stores = world.stores
    with stores._lock:  # test set-up: graft the task under a parent
        task = stores._tasks[opened.task.task_id]
        stores._tasks[task.task_id] = dataclasses.replace(task, parent_id=parent_id)
    assert world.ask(agent, opened.token).allowed
    bus.publish(RevocationEvent((parent_id,), RevocationKind.REVOKED, "parent.revoked", 0.0))
    assert world.ask(agent, opened.token).reasons == ("task.revoked",)


def test_an_ended_task_heard_on_the_bus_is_denied_with_the_stored_reason(
    world: World, agent: Agent, bus: FakeBus, decider: Decider
) -> None:
    opened = world.open(agent)
    assert world.ask(agent, opened.token).allowed
    world.deployment.lifecycle.revoke(opened.task.task_id, actor=ADMIN)
    bus.publish(event(opened.task.task_id))
    assert world.ask(agent, opened.token).reasons == ("task.revoked",)


def test_an_unreachable_bus_fails_closed_after_its_grace_window(
    world: World, agent: Agent, bus: FakeBus, decider: Decider
) -> None:
    opened = world.open(agent)
    bus.disconnect()
    world.clock.t += GRACE - 1
    assert world.ask(agent, opened.token).allowed  # within the grace window
    world.clock.t += 2
    denied = world.ask(agent, opened.token)
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("revocation.unreachable",),
        Refusal.UNAVAILABLE,
    )
    bus.connected = True  # back: requests go through again
    assert world.ask(agent, opened.token).allowed


def test_a_gap_on_the_bus_empties_the_cache(
    world: World, agent: Agent, bus: FakeBus, decider: Decider, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = world.open(agent)
    bus.publish(event("tsk_elsewhere"))  # the watch has heard sequence 1
    reads: list[str] = []
    get_task = world.stores.get_task

    def counted(task_id: str) -> object:
        reads.append(task_id)
        return get_task(task_id)

    monkeypatch.setattr(world.stores, "get_task", counted)
    assert world.ask(agent, opened.token).allowed
    assert world.ask(agent, opened.token).allowed
    assert len(reads) == 1  # the second decision used the cached record
    bus.deliver(event("tsk_elsewhere"), bus.sequence + 5)  # four events were missed
    assert world.ask(agent, opened.token).allowed
    assert len(reads) == 2  # the cache was emptied: decided on a fresh read
