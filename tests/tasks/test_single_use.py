"""Single-use tasks (``one_shot`` playbooks): a token good for exactly one allowed request.

The one call is guaranteed by the budget (``max_calls`` 1, spent by compare-and-set);
the lifecycle then ends the task (``completed``, ``task.single_use``) when the decider
tells it of the allowed call (``TaskLifecycle.after_allowed``), so a replay of the token,
even with a fresh proof, is refused as ``task.completed``. Attack rows with twins.
"""

from __future__ import annotations

import contextlib
import json
import threading

import pytest

from tests.tasks.conftest import ADMIN, PLAYBOOK_DOC, Agent, World
from zerolane.errors import Conflict, Forbidden, InvalidInput
from zerolane.tasks.lifecycle import SINGLE_USE
from zerolane.tasks.playbooks import parse_playbook, playbook_from_json, playbook_to_json
from zerolane.types import TaskState

ONE_SHOT = {**PLAYBOOK_DOC, "name": "one-shot", "max_calls": 1, "one_shot": True}


@pytest.fixture
def one_shot(world: World) -> str:
    world.deployment.playbooks.apply(parse_playbook(ONE_SHOT, "tests"), ADMIN)
    return "one-shot"


# the playbook option
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"max_calls": 2}, "playbook.one_shot"),
        ({"delegable": True, "max_depth": 1}, "playbook.one_shot"),
        ({"one_shot": "yes"}, "playbook.field"),
    ],
    ids=["more than one call", "delegable", "not a boolean"],
)
def test_one_shot_playbook_rules(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_playbook({**ONE_SHOT, **changes}, "tests")
    assert refused.value.reason == reason
    assert parse_playbook(ONE_SHOT, "tests").one_shot  # the twin


def test_one_shot_is_canonical_and_absent_by_default() -> None:
    single = parse_playbook(ONE_SHOT, "tests")
    assert json.loads(playbook_to_json(single))["one_shot"] is True
    assert playbook_from_json(playbook_to_json(single), "t") == single
    plain = parse_playbook(PLAYBOOK_DOC, "tests")
    assert not plain.one_shot
    assert "one_shot" not in json.loads(playbook_to_json(plain))  # older JSON unchanged


def test_a_one_shot_task_has_one_call(world: World, agent: Agent, one_shot: str) -> None:
    assert world.open(agent, playbook=one_shot).task.max_calls == 1
    with pytest.raises(Forbidden) as refused:
        world.open(agent, playbook=one_shot, max_calls=2)
    assert refused.value.reason == "scope.max_calls"


# the attack and its twin
def test_used_twice_the_second_is_refused(world: World, agent: Agent, one_shot: str) -> None:
    opened = world.open(agent, playbook=one_shot)
    first = world.ask(agent, opened.token)
    assert first.allowed  # once: allowed
    # what the decider's hook does after an allowed call (a no-op if it already did)
    world.deployment.lifecycle.after_allowed(world.task(opened.task.task_id))
    ended = world.task(opened.task.task_id)
    assert (ended.state, ended.end_reason) == (TaskState.COMPLETED, SINGLE_USE)
    replay = world.ask(agent, opened.token)  # the same token, a fresh proof
    assert (replay.allowed, replay.reasons) == (False, ("task.completed",))
    events = [e for e in world.events("task.completed") if e["subject"] == opened.task.task_id]
    assert [e["reason"] for e in events] == [SINGLE_USE]


def test_concurrent_uses_allow_exactly_one(world: World, agent: Agent, one_shot: str) -> None:
    """The spend (compare-and-set on a budget of one) is the guarantee, not the end."""
    opened = world.open(agent, playbook=one_shot)
    url = "https://finance.example.org/finance/q3"
    proofs = [world.proof(agent.key, "GET", url, opened.token) for _ in range(12)]
    start = threading.Barrier(len(proofs))
    allowed: list[bool] = []
    lock = threading.Lock()

    def run(proof: str) -> None:
        start.wait()
        decision = world.ask(agent, opened.token, proof=proof)
        with lock:
            allowed.append(decision.allowed)

    threads = [threading.Thread(target=run, args=(p,)) for p in proofs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1
    assert world.task(opened.task.task_id).calls_used == 1


def test_after_allowed_leaves_other_tasks_alone(world: World, agent: Agent, one_shot: str) -> None:
    lifecycle = world.deployment.lifecycle
    fresh = world.open(agent, playbook=one_shot)  # not used yet
    assert lifecycle.after_allowed(world.task(fresh.task.task_id)) is None
    plain = world.open(agent, max_calls=1)  # one call, but not a one-shot playbook
    assert world.ask(agent, plain.token).allowed
    assert lifecycle.after_allowed(world.task(plain.task.task_id)) is None
    assert world.task(plain.task.task_id).state is TaskState.ACTIVE
    used = world.open(agent, playbook=one_shot)
    assert world.ask(agent, used.token).allowed
    spent = world.task(used.task.task_id)
    with contextlib.suppress(Conflict):  # ended meanwhile (or already by the hook)
        lifecycle.revoke(used.task.task_id, actor=ADMIN)
    assert lifecycle.after_allowed(spent) is None  # nothing to do, nothing raised


def test_single_use_through_the_decider(world: World, agent: Agent, one_shot: str) -> None:
    """The full path: the decider tells the lifecycle of its allowed call (its hook)."""
    opened = world.open(agent, playbook=one_shot)
    assert world.ask(agent, opened.token).allowed
    task = world.task(opened.task.task_id)
    assert (task.state, task.end_reason) == (TaskState.COMPLETED, SINGLE_USE)
    assert world.ask(agent, opened.token).reasons == ("task.completed",)
