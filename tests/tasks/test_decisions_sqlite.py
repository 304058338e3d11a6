"""Decisions over SQLite: an allow's spend and its audit event are one durable write."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import zerolane.audit.chain as chain
import zerolane.audit.decision_log as decision_log
import zerolane.tasks.decision_core as decision_core
from tests.store.test_group_commit import WAIT, holding, in_thread, queued
from tests.tasks.conftest import AGENT, FINANCE, SLACK, Agent, World, build_world
from zerolane.audit.log import AuditLog
from zerolane.config import CONFIG_NAME, AuditConfig, load_config, render_config
from zerolane.errors import Refusal
from zerolane.fsutil import write_private
from zerolane.server.deployment import Deployment
from zerolane.store.sqlite import SqliteStores
from zerolane.tasks.decisions import DecideInput, Decider


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home", "sqlite:///zerolane.db")
    yield built
    built.deployment.close()


@pytest.fixture
def agent(world: World) -> Agent:
    return world.agent(AGENT)


def sqlite(world: World) -> SqliteStores:
    stores = world.deployment.stores
    assert isinstance(stores, SqliteStores)
    return stores


def test_an_allow_is_one_write_holding_the_spend_and_its_event(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    before = sqlite(world).writer_stats().ops
    allowed = world.ask(agent, opened.token)
    assert allowed.allowed
    assert sqlite(world).writer_stats().ops == before + 1
    assert world.task(opened.task.task_id).calls_used == 1
    event = world.events("decision")[-1]
    assert (event["outcome"], event["details"]["decision_id"]) == ("success", allowed.decision_id)
    assert world.deployment.audit.verify()[1] is None  # the chain links through it

    # the twin: a deny spends nothing and is still its own event
    denied = world.ask(agent, opened.token, action="delete")
    assert (denied.allowed, denied.reasons) == (False, ("scope.action",))
    assert world.task(opened.task.task_id).calls_used == 1
    assert world.events("decision")[-1]["details"]["decision_id"] == denied.decision_id


def test_an_event_that_cannot_be_stored_undoes_the_spend_and_denies(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = world.open(agent)

    def broken(*args: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(decision_log, "seal", broken)
    denied = world.ask(agent, opened.token)
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("audit.write",),
        Refusal.UNAVAILABLE,
    )
    assert world.task(opened.task.task_id).calls_used == 0  # the spend was undone with it
    monkeypatch.undo()
    assert world.ask(agent, opened.token).allowed
    assert world.task(opened.task.task_id).calls_used == 1


def test_concurrent_allows_spend_the_budget_exactly_and_audit_each(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent, max_calls=5)
    url = f"https://{FINANCE}/finance/q3"
    proofs = [world.proof(agent.key, "GET", url, opened.token) for _ in range(12)]
    start = threading.Barrier(len(proofs))
    allowed: list[str] = []

    def one(proof: str) -> None:
        start.wait()
        decision = world.ask(agent, opened.token, proof=proof)
        if decision.allowed:
            allowed.append(decision.decision_id)

    threads = [threading.Thread(target=one, args=(p,)) for p in proofs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 5
    assert world.task(opened.task.task_id).calls_used == 5
    events = world.events("decision")
    assert sorted(e["details"]["decision_id"] for e in events if e["outcome"] == "success") == (
        sorted(allowed)
    )
    assert [e["reason"] for e in events if e["outcome"] == "denied"] == [
        "task.budget_exhausted"
    ] * 7


def test_a_stale_cached_task_never_lets_a_request_through(world: World, agent: Agent) -> None:
    """Another process (here: a second decider over the same database) spends a
    confidential read; this decider's cached record is stale, its compare-and-set fails,
    and the re-read sees the read: the egress is denied."""
    opened = world.open(agent)
    assert world.ask(agent, opened.token).allowed  # cached here with touched=internal
    deployment = world.deployment
    other = Decider(
        authenticator=deployment.authenticator,
        tasks=deployment.stores,
        decisions=decision_log.decision_log(
            AuditLog(deployment.stores, world.clock), deployment.stores
        ),
        engine=deployment.policies.get,
        clock=world.clock,
        internal_destinations=("example.org", "*.example.org"),
    )
    url = f"https://{FINANCE}/finance/q3"
    proof = world.proof(agent.key, "GET", url, opened.token)
    read = other.decide(
        opened.token,
        proof,
        DecideInput(
            "GET",
            url,
            action="read",
            resource="finance/q3",
            destination=FINANCE,
            sensitivity="confidential",
        ),
    )
    assert read.allowed
    egress = world.ask(
        agent, opened.token, action="write", resource="wiki/status", destination=SLACK
    )
    assert (egress.allowed, egress.reasons) == (False, ("flow.egress_after_sensitive_read",))

    # the twin: a task without the confidential read may post
    fresh = world.open(agent)
    assert world.ask(
        agent, fresh.token, action="write", resource="wiki/status", destination=SLACK
    ).allowed


def test_a_policy_on_the_budget_sees_a_carve_made_elsewhere(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decider caches the task; a child carved out of it (lowering ``max_calls``)
    by another process must be seen by budget-reading policies, not the cached value."""
    opened = world.open(agent, max_calls=6)
    assert world.ask(agent, opened.token).allowed  # cached with max_calls 6
    parent = world.task(opened.task.task_id)
    child = dataclasses.replace(
        parent,
        task_id="tsk_carved_elsewhere",
        token_jti="jti-carved",
        parent_id=parent.task_id,
        depth=1,
        max_calls=4,
        calls_used=0,
    )
    assert world.any_stores.add_child_task(child, now=world.clock.now()) is not None
    seen: list[int] = []
    task_facts = decision_core.task_facts

    def spy(task: Any, state: Any) -> Any:
        seen.append(task.max_calls)
        return task_facts(task, state)

    monkeypatch.setattr(decision_core, "task_facts", spy)
    assert world.ask(agent, opened.token).allowed
    assert seen == [6, 2]  # the stale guess lost its spend; decided again on 6 - 4
    assert world.task(opened.task.task_id).calls_used == 2


def test_requests_of_one_task_queue_their_spends_behind_one_in_flight(
    world: World, agent: Agent
) -> None:
    """While one allow's write waits for its commit, the task's next requests are
    decided on the record as it will be and queued behind it: the three writes are
    queued together (before, each waited for the one ahead to commit), and all three
    commit in one batch with the budget and the audit chain exact."""
    opened = world.open(agent, max_calls=3)
    url = f"https://{FINANCE}/finance/q3"
    proofs = [world.proof(agent.key, "GET", url, opened.token) for _ in range(4)]
    store = sqlite(world)
    with holding(store):
        asks = [in_thread(partial(world.ask, agent, opened.token, proof=p)) for p in proofs[:3]]
        queued(store, 3)
        assert not any(ask.done() for ask in asks)  # nothing answered before its commit
    assert all(ask.result(WAIT).allowed for ask in asks)
    assert world.task(opened.task.task_id).calls_used == 3
    successes = [e for e in world.events("decision") if e["outcome"] == "success"]
    assert len(successes) == 3
    assert world.deployment.audit.verify()[1] is None
    # the budget still holds: the fourth is refused
    last = world.ask(agent, opened.token, proof=proofs[3])
    assert (last.allowed, last.reasons) == (False, ("task.budget_exhausted",))


def test_a_request_queued_behind_a_write_that_fails_is_decided_again(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first allow's event cannot be stored (its write is undone: 503); the second
    request, decided on the record as the first would have left it, loses its
    compare-and-set and is decided again on what is stored: allowed, one call spent."""
    opened = world.open(agent)
    url = f"https://{FINANCE}/finance/q3"
    first_proof, second_proof = (world.proof(agent.key, "GET", url, opened.token) for _ in "12")
    calls = [0]
    real_seal = chain.seal

    def seal_failing_once(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise OSError("disk full")
        return real_seal(*args)

    monkeypatch.setattr(decision_log, "seal", seal_failing_once)
    store = sqlite(world)
    with holding(store):
        first = in_thread(lambda: world.ask(agent, opened.token, proof=first_proof))
        queued(store, 1)
        second = in_thread(lambda: world.ask(agent, opened.token, proof=second_proof))
        queued(store, 2)  # decided on the first's outcome, before it is known
    failed, allowed = first.result(WAIT), second.result(WAIT)
    assert (failed.allowed, failed.reasons, failed.refusal) == (
        False,
        ("audit.write",),
        Refusal.UNAVAILABLE,
    )
    assert allowed.allowed
    assert world.task(opened.task.task_id).calls_used == 1
    [success] = [e for e in world.events("decision") if e["outcome"] == "success"]
    assert success["details"]["decision_id"] == allowed.decision_id
    assert world.deployment.audit.verify()[1] is None


def test_in_the_async_audit_mode_an_allow_waits_for_its_spend_and_its_event_follows(
    world: World, agent: Agent
) -> None:
    """``[audit] mode = "async"``: the decider is given the queued decision log when the
    deployment opens; an allow (on a thread or on a loop) is answered once its spend is
    durable, its event queued behind it. The budget stays exact and every decision is
    still recorded, in a chain that verifies."""
    home = world.deployment.home
    world.deployment.close()
    config = load_config(home)
    write_private(
        home / CONFIG_NAME,
        render_config(dataclasses.replace(config, audit=AuditConfig(mode="async"))).encode(),
    )
    world.deployment = Deployment.open(home, world.clock)
    assert world.deployment.audit.mode == "async"
    opened = world.open(agent, max_calls=2)
    url = f"https://{FINANCE}/finance/q3"
    first = world.ask(agent, opened.token)
    request = DecideInput(
        "GET",
        url,
        action="read",
        resource="finance/q3",
        destination=FINANCE,
        sensitivity="internal",
    )
    proof = world.proof(agent.key, "GET", url, opened.token)
    second = asyncio.run(world.deployment.decider.decide_async(opened.token, proof, request))
    assert first.allowed
    assert second.allowed
    assert world.task(opened.task.task_id).calls_used == 2  # durable before the answers
    third = world.ask(agent, opened.token)
    assert (third.allowed, third.reasons) == (False, ("task.budget_exhausted",))
    world.deployment.close()  # commits the queued events
    world.deployment = Deployment.open(home, world.clock)
    events = world.events("decision")
    assert [(e["outcome"], e["details"]["decision_id"]) for e in events[-3:]] == [
        ("success", first.decision_id),
        ("success", second.decision_id),
        ("denied", third.decision_id),
    ]
    assert world.deployment.audit.verify()[1] is None
    assert world.deployment.audit.lost_events == 0
