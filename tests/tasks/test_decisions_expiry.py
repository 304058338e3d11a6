"""Time only moves forward for a task: a decision that finds a task past its window
records the expiry, so a clock stepped back, here or in another process, or a restart,
cannot bring it back to life."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.identity.attestors.cases import FixedClock
from tests.tasks.conftest import AGENT, FINANCE, Agent, World, build_world
from zerolane.server.deployment import Deployment
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tokens.rfc9449 import make_proof
from zerolane.types import TaskState

URL = f"https://{FINANCE}/finance/q3"
READ = DecideInput(
    method="GET",
    url=URL,
    action="read",
    resource="finance/q3",
    destination=FINANCE,
    sensitivity="internal",
)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home", "sqlite:///zerolane.db")
    yield built
    built.deployment.close()


@pytest.fixture
def agent(world: World) -> Agent:
    return world.agent(AGENT)


def _ask(
    deployment: Deployment, clock: FixedClock, agent: Agent, token: str, mode: str
) -> Decision:
    proof = make_proof(agent.key, method="GET", url=URL, access_token=token, iat=int(clock.now()))
    if mode == "async":
        return asyncio.run(deployment.decider.decide_async(token, proof, READ))
    return deployment.decider.decide(token, proof, READ)


def test_an_expiry_a_decision_saw_outlives_the_clock(world: World, agent: Agent, mode: str) -> None:
    expiring = world.open(agent, ttl=60)
    other = world.open(agent, ttl=600)
    clock = world.clock
    assert _ask(world.deployment, clock, agent, expiring.token, mode).allowed

    clock.t = expiring.task.expires_at + 1
    denied = _ask(world.deployment, clock, agent, expiring.token, mode)
    assert denied.reasons == ("task.expired",)
    stored = world.task(expiring.task.task_id)
    assert stored.state is TaskState.EXPIRED  # recorded, with its event
    assert [e["subject"] for e in world.events("task.expired")] == [expiring.task.task_id]

    clock.t = expiring.task.expires_at - 10  # the clock steps back
    assert _ask(world.deployment, clock, agent, expiring.token, mode).reasons == ("task.expired",)
    # another process with an earlier clock (or this one restarted) sees it expired too
    earlier = FixedClock(expiring.task.expires_at - 10)
    elsewhere = Deployment.open(world.deployment.home, earlier)
    try:
        refused = _ask(elsewhere, earlier, agent, expiring.token, mode)
        assert refused.reasons == ("task.expired",)
        # the twin: a task whose window is not over is still allowed there
        assert _ask(elsewhere, earlier, agent, other.token, mode).allowed
    finally:
        elsewhere.close()
