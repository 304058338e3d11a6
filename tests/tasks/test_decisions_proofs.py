"""A DPoP proof is usable once, everywhere, across restarts: every process of a
deployment (the control plane, a standalone gateway, forward-auth) and every restart of
one share the proofs spent in the store, so a captured request replayed at another
enforcement point, or after a crash, is refused while a fresh proof is allowed."""

from __future__ import annotations

import asyncio

import pytest

from tests.identity.attestors.cases import FixedClock
from tests.tasks.conftest import Agent, World
from tests.tasks.sqlite_world import (  # the fixtures: agent, mode, world
    READ,
    agent_fixture,  # noqa: F401
    mode_fixture,  # noqa: F401
    sqlite_world_fixture,  # noqa: F401
)
from tests.tasks.sqlite_world import READ_URL as URL
from zerolane.errors import Refusal
from zerolane.server.deployment import Deployment
from zerolane.tasks.decisions import Decision
from zerolane.tokens.rfc9449 import make_proof


def _decide(deployment: Deployment, mode: str, token: str, proof: str) -> Decision:
    if mode == "async":
        return asyncio.run(deployment.decider.decide_async(token, proof, READ))
    return deployment.decider.decide(token, proof, READ)


def _other_process(world: World) -> Deployment:
    """The same home opened again: another process of the deployment, or this one
    after a restart (nothing in memory is shared)."""
    return Deployment.open(world.deployment.home, world.clock)


def test_a_proof_spent_before_a_restart_is_refused_after_it(
    world: World, agent: Agent, mode: str
) -> None:
    opened = world.open(agent)
    proof = world.proof(agent.key, "GET", URL, opened.token)
    assert _decide(world.deployment, mode, opened.token, proof).allowed
    world.deployment.close()  # the process stops (its replay cache is gone)

    restarted = _other_process(world)
    try:
        replayed = _decide(restarted, mode, opened.token, proof)
        assert (replayed.allowed, replayed.reasons, replayed.refusal) == (
            False,
            ("dpop.replayed",),
            Refusal.UNAUTHENTICATED,
        )
        task = restarted.stores.get_task(opened.task.task_id)
        assert task is not None
        assert task.calls_used == 1  # the replay spent nothing
        # the legitimate twin: the same request with a fresh proof is allowed
        fresh = world.proof(agent.key, "GET", URL, opened.token)
        assert _decide(restarted, mode, opened.token, fresh).allowed
    finally:
        restarted.close()
        world.deployment = Deployment.open(world.deployment.home, world.clock)


def test_a_proof_spent_at_one_enforcement_point_is_refused_at_another(
    world: World, agent: Agent, mode: str
) -> None:
    gateway = _other_process(world)  # e.g. `zerolane gateway run` beside `zerolane up`
    try:
        opened = world.open(agent)
        proof = world.proof(agent.key, "GET", URL, opened.token)
        assert _decide(gateway, mode, opened.token, proof).allowed
        replayed = _decide(world.deployment, mode, opened.token, proof)
        assert replayed.reasons == ("dpop.replayed",)
        assert not replayed.allowed
        fresh = world.proof(agent.key, "GET", URL, opened.token)
        assert _decide(world.deployment, mode, opened.token, fresh).allowed
        refused = [e for e in world.events("decision") if e["reason"] == "dpop.replayed"]
        assert len(refused) == 1  # the refusal is audited
    finally:
        gateway.close()


class _FailingEngine:
    """A policy engine that errors (the deny is ``policy.error``, never an allow)."""

    version = "failing"

    def decide(self, request: object) -> object:
        raise RuntimeError("the engine failed")

    def stop(self) -> None:
        return None


def test_a_refused_proof_is_spent_everywhere_too(
    world: World, agent: Agent, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proof whose request was refused cannot be tried again at another point,
    where the refusal's cause may not hold (an engine that failed, a bus out of reach)."""
    gateway = _other_process(world)
    try:
        monkeypatch.setattr(gateway.policies, "_engine", _FailingEngine())
        opened = world.open(agent)
        proof = world.proof(agent.key, "GET", URL, opened.token)
        assert _decide(gateway, mode, opened.token, proof).reasons == ("policy.error",)

        replayed = _decide(world.deployment, mode, opened.token, proof)  # would allow it
        assert (replayed.allowed, replayed.reasons) == (False, ("dpop.replayed",))
        fresh = world.proof(agent.key, "GET", URL, opened.token)
        assert _decide(world.deployment, mode, opened.token, fresh).allowed
    finally:
        gateway.close()


def test_a_replay_within_one_process_never_reaches_the_store(
    world: World, agent: Agent, mode: str
) -> None:
    opened = world.open(agent)
    proof = world.proof(agent.key, "GET", URL, opened.token)
    assert _decide(world.deployment, mode, opened.token, proof).allowed
    assert _decide(world.deployment, mode, opened.token, proof).reasons == ("dpop.replayed",)
    task = world.deployment.stores.get_task(opened.task.task_id)
    assert task is not None
    assert task.calls_used == 1


def test_a_proof_forgotten_by_a_clock_ahead_is_refused_by_one_behind(
    world: World, agent: Agent, mode: str
) -> None:
    """Review finding (clock stepper): a proof purged once its window was over stays
    refused by a process whose clock is behind the purger's (the clock stepped back
    40 s, then a restart), while a fresh proof made at that clock is allowed."""
    opened = world.open(agent)
    start = world.clock.now()
    captured = world.proof(agent.key, "GET", URL, opened.token)
    assert _decide(world.deployment, mode, opened.token, captured).allowed
    world.clock.t = start + 61  # the captured proof's window is over: the next write purges
    later = world.proof(agent.key, "GET", URL, opened.token)
    assert _decide(world.deployment, mode, opened.token, later).allowed
    world.deployment.close()

    stepped_back = FixedClock(start + 21)
    restarted = Deployment.open(world.deployment.home, stepped_back)
    try:
        replayed = _decide(restarted, mode, opened.token, captured)
        assert (replayed.allowed, replayed.reasons) == (False, ("dpop.replayed",))
        fresh = make_proof(
            agent.key, method="GET", url=URL, access_token=opened.token, iat=int(start + 21)
        )
        assert _decide(restarted, mode, opened.token, fresh).allowed
    finally:
        restarted.close()
        world.deployment = Deployment.open(world.deployment.home, world.clock)
