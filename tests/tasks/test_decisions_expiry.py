"""Time only moves forward for a task: a decision that finds a task past its window
records the expiry, so a clock stepped back, here or in another process, or a restart,
cannot bring it back to life."""

from __future__ import annotations

import asyncio

from tests.identity.attestors.cases import FixedClock
from tests.tasks.conftest import Agent, World
from tests.tasks.sqlite_world import (  # the fixtures: agent, mode, world
    READ,
    agent_fixture,  # noqa: F401
    mode_fixture,  # noqa: F401
    sqlite_world_fixture,  # noqa: F401
)
from tests.tasks.sqlite_world import READ_URL as URL
from zerolane.server.deployment import Deployment
from zerolane.tasks.decisions import Decision
from zerolane.tokens.rfc9449 import make_proof
from zerolane.types import TaskState


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
