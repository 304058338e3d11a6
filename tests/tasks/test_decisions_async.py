"""``Decider.decide_async``: the same decisions as ``decide``, made on an event loop that
is never held while an allow's write commits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import zerolane.audit.decision_log as decision_log
from tests.store.test_group_commit import WAIT, holding, queued
from tests.tasks.conftest import ADMIN, AGENT, FINANCE, Agent, World, build_world
from tests.tasks.test_single_use import ONE_SHOT
from zerolane.errors import Refusal
from zerolane.store.records import TaskRecord
from zerolane.store.sqlite import SqliteStores
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tasks.playbooks import parse_playbook
from zerolane.types import TaskState

URL = f"https://{FINANCE}/finance/q3"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home", "sqlite:///zerolane.db")
    yield built
    built.deployment.close()


@pytest.fixture
def agent(world: World) -> Agent:
    return world.agent(AGENT)


def request(action: str = "read") -> DecideInput:
    return DecideInput(
        method="GET",
        url=URL,
        action=action,
        resource="finance/q3",
        destination=FINANCE,
        sensitivity="internal",
    )


async def ask(
    world: World, agent: Agent, token: str, action: str = "read", proof: str | None = None
) -> Decision:
    proof = proof or world.proof(agent.key, "GET", URL, token)
    return await world.deployment.decider.decide_async(token, proof, request(action))


def test_an_allow_and_its_twin_deny_are_decided_and_audited(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    allowed = asyncio.run(ask(world, agent, opened.token))
    assert allowed.allowed
    assert world.task(opened.task.task_id).calls_used == 1
    denied = asyncio.run(ask(world, agent, opened.token, action="delete"))
    assert (denied.allowed, denied.reasons) == (False, ("scope.action",))
    assert world.task(opened.task.task_id).calls_used == 1
    events = world.events("decision")
    assert [(e["outcome"], e["details"]["decision_id"]) for e in events[-2:]] == [
        ("success", allowed.decision_id),
        ("denied", denied.decision_id),
    ]
    assert world.deployment.audit.verify()[1] is None


def test_a_bad_credential_is_a_401_and_audited(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    refused = asyncio.run(ask(world, agent, opened.token, proof="not-a-proof"))
    assert (refused.allowed, refused.refusal) == (False, Refusal.UNAUTHENTICATED)
    assert world.events("decision")[-1]["details"]["decision_id"] == refused.decision_id


def test_concurrent_requests_on_one_loop_spend_the_budget_exactly(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent, max_calls=5)

    async def twelve() -> list[Decision]:
        return list(await asyncio.gather(*(ask(world, agent, opened.token) for _ in range(12))))

    answers = asyncio.run(twelve())
    assert sum(a.allowed for a in answers) == 5
    assert {a.reasons for a in answers if not a.allowed} == {("task.budget_exhausted",)}
    assert world.task(opened.task.task_id).calls_used == 5
    successes = [e for e in world.events("decision") if e["outcome"] == "success"]
    assert sorted(e["details"]["decision_id"] for e in successes) == sorted(
        a.decision_id for a in answers if a.allowed
    )
    assert world.deployment.audit.verify()[1] is None


def test_the_loop_goes_on_while_an_allow_commits(world: World, agent: Agent) -> None:
    """With the writer held inside a batch, the allow waits for its commit but the loop
    keeps running other work; released, the allow completes (and only then)."""
    opened = world.open(agent)
    stores = world.deployment.stores
    assert isinstance(stores, SqliteStores)

    async def scenario() -> tuple[int, bool, Decision]:
        with holding(stores) as release:
            decision = asyncio.ensure_future(ask(world, agent, opened.token))
            ticks = 0
            for _ in range(int(WAIT / 0.001)):  # the loop turns while the write waits
                await asyncio.sleep(0.001)
                ticks += 1
                if len(stores._writer._items) >= 1 and ticks >= 20:
                    break
            queued(stores, 1)
            pending = not decision.done()
            release.set()
            return ticks, pending, await decision

    ticks, pending, decision = asyncio.run(scenario())
    assert ticks >= 20
    assert pending  # not answered before its write committed
    assert decision.allowed
    assert world.task(opened.task.task_id).calls_used == 1


def test_an_event_that_cannot_be_stored_undoes_the_spend_and_denies(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = world.open(agent)

    def broken(*args: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(decision_log, "seal", broken)
    denied = asyncio.run(ask(world, agent, opened.token))
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("audit.write",),
        Refusal.UNAVAILABLE,
    )
    assert world.task(opened.task.task_id).calls_used == 0
    monkeypatch.undo()
    assert asyncio.run(ask(world, agent, opened.token)).allowed
    assert world.task(opened.task.task_id).calls_used == 1


def test_over_the_memory_store_the_same_decisions_are_made(tmp_path: Path) -> None:
    """Memory stores commit a decision when it is handed over: the same one path."""
    memory = build_world(tmp_path / "memory")
    try:
        agent = memory.agent(AGENT)
        opened = memory.open(agent)
        assert asyncio.run(ask(memory, agent, opened.token)).allowed
        denied = asyncio.run(ask(memory, agent, opened.token, action="delete"))
        assert denied.reasons == ("scope.action",)
        assert memory.task(opened.task.task_id).calls_used == 1
    finally:
        memory.deployment.close()


def test_a_deny_on_the_guess_reads_the_task_off_the_loop(world: World, agent: Agent) -> None:
    """The store is slow (its writer held for a second): the task's last call is being
    committed and the next request, refused on the guessed record, must be decided again
    on the stored task. That read waits for the commit, on a worker thread: the loop
    keeps turning meanwhile (before, it stood still for as long as the commit took)."""
    opened = world.open(agent, max_calls=1)
    stores = world.deployment.stores
    assert isinstance(stores, SqliteStores)

    async def scenario() -> tuple[float, Decision, Decision]:
        with holding(stores) as release:
            first = asyncio.ensure_future(ask(world, agent, opened.token))
            for _ in range(int(WAIT / 0.005)):
                if stores._writer._items:
                    break
                await asyncio.sleep(0.005)
            threading.Timer(1.0, release.set).start()
            gaps: list[float] = []

            async def ticker() -> None:
                last = time.monotonic()
                for _ in range(60):
                    await asyncio.sleep(0.01)
                    gaps.append(time.monotonic() - last)
                    last = time.monotonic()

            ticking = asyncio.ensure_future(ticker())
            second = await ask(world, agent, opened.token)
            await ticking
            return max(gaps), await first, second

    worst, first, second = asyncio.run(scenario())
    assert worst < 0.5, f"the loop stood still for {worst:.2f} s"
    assert first.allowed
    assert (second.allowed, second.reasons) == (False, ("task.budget_exhausted",))


def test_a_one_shot_task_ends_off_the_loop(world: World, agent: Agent) -> None:
    """Ending a task (its tree's write, grant revocations, audit events) is told to the
    hook on a worker thread, never on the loop; the allow still waits for it."""
    world.deployment.playbooks.apply(parse_playbook(ONE_SHOT, "tests"), ADMIN)
    opened = world.open(agent, playbook="one-shot")
    decider = world.deployment.decider
    hook = decider._on_last_call
    assert hook is not None
    on_loop: list[bool] = []

    def spy(task: TaskRecord) -> object:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return hook(task)

    decider._on_last_call = spy
    assert asyncio.run(ask(world, agent, opened.token)).allowed
    assert on_loop == [False]
    assert world.task(opened.task.task_id).state is TaskState.COMPLETED
    replay = asyncio.run(ask(world, agent, opened.token))
    assert (replay.allowed, replay.reasons) == (False, ("task.completed",))


def test_a_task_lock_held_by_a_worker_thread_is_waited_for_off_the_loop(
    world: World, agent: Agent
) -> None:
    """A thread (a synchronous ``decide``) holds the task's lock: the request waits for
    it on a worker thread, the loop keeps turning, and the request is then decided."""
    opened = world.open(agent)
    lock = world.deployment.decider._locks.of(opened.task.task_id)
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait(WAIT)

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(WAIT)

    async def scenario() -> tuple[int, bool, Decision]:
        decision = asyncio.ensure_future(ask(world, agent, opened.token))
        ticks = 0
        while ticks < 30:  # the loop turns while the lock is held elsewhere
            await asyncio.sleep(0.005)
            ticks += 1
        waiting = not decision.done()
        release.set()
        return ticks, waiting, await decision

    ticks, waiting, decision = asyncio.run(scenario())
    assert (ticks, waiting) == (30, True)
    assert decision.allowed
    assert world.task(opened.task.task_id).calls_used == 1
