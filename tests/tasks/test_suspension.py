"""Suspending and resuming tasks by hand (``TaskLifecycle.suspend`` / ``resume``): the
whole live subtree is denied until resumed, every transition is audited and announced on
the revocation bus, and the task's window never moves. Each refusal has its twin."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tasks.conftest import ADMIN, AGENT, PEER, Agent, World, details
from tests.tasks.test_exchange import HELPER, exchange, team
from zerolane.errors import Conflict, Forbidden, InvalidInput, NotFound, ZerolaneError
from zerolane.store.records import RevocationEvent, RevocationKind
from zerolane.tasks.lifecycle import OpenedTask
from zerolane.tasks.views import effective_state
from zerolane.types import TaskState

__all__ = ["team"]  # the fixture, re-used


def refused(kind: type[ZerolaneError], reason: str, call: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(kind) as caught:
        call(*args, **kw)
    assert caught.value.reason == reason, caught.value


@pytest.fixture
def heard(world: World) -> list[RevocationEvent]:
    """Every event the world's revocation bus carries from now on."""
    events: list[RevocationEvent] = []
    world.deployment.bus.subscribe(events.append)
    return events


def family(world: World, agent: Agent) -> tuple[OpenedTask, Agent, Any, Agent, Any]:
    """root (agent) -> child (helper) -> grandchild (peer), on the delegable playbook."""
    helper, peer = world.agent(HELPER), world.agent(PEER)
    root = world.open(agent, details(actions=["read", "write"]), playbook="team", max_calls=20)
    child = exchange(world, agent, root.token, helper, max_calls=6)
    grand = exchange(world, helper, child.token, peer, max_calls=2)
    return root, helper, child, peer, grand


def test_a_suspended_task_is_denied_until_resumed_and_each_turn_is_audited(
    world: World, agent: Agent, heard: list[RevocationEvent]
) -> None:
    lifecycle = world.deployment.lifecycle
    opened, other = world.open(agent, ttl=300), world.open(agent)
    task_id = opened.task.task_id
    assert world.ask(agent, opened.token).allowed  # cached by the decider
    [suspended] = lifecycle.suspend(task_id, actor=ADMIN, reason="probing seen")
    assert (suspended.state, suspended.end_reason, suspended.ended_at) == (
        TaskState.SUSPENDED,
        "probing seen",
        None,
    )
    assert suspended.expires_at == opened.task.expires_at  # the window does not move
    denied = world.ask(agent, opened.token)
    assert (denied.allowed, denied.reasons) == (False, ("task.suspended",))
    assert world.ask(agent, other.token).allowed  # the twin: another task goes on
    assert heard[-1].kind is RevocationKind.SUSPENDED
    assert (heard[-1].task_ids, heard[-1].reason) == ((task_id,), "probing seen")

    [resumed] = lifecycle.resume(task_id, actor=ADMIN, reason="false positive")
    assert (resumed.state, resumed.end_reason) == (TaskState.ACTIVE, None)
    assert resumed.expires_at == opened.task.expires_at
    assert (heard[-1].kind, heard[-1].task_ids) == (RevocationKind.RESUMED, (task_id,))
    assert world.ask(agent, opened.token).allowed
    assert world.task(task_id).calls_used == 2  # the suspended request spent nothing

    [off] = world.events("task.suspended")
    [on] = world.events("task.resumed")
    assert (off["actor"], off["subject"], off["reason"]) == (
        {"type": "admin", "id": "test"},
        task_id,
        "probing seen",
    )
    assert off["details"]["owner"] == AGENT
    assert (on["actor"]["type"], on["subject"]) == ("admin", task_id)
    assert on["reason"] == "false positive"


def test_suspension_cascades_to_delegated_children_and_resume_brings_them_back(
    team: World, agent: Agent, heard: list[RevocationEvent]
) -> None:
    root, helper, child, peer, grand = family(team, agent)
    assert team.ask(peer, grand.token).allowed
    suspended = team.deployment.lifecycle.suspend(root.task.task_id, actor=ADMIN)
    ids = [root.task.task_id, child.task.task_id, grand.task.task_id]
    assert [t.task_id for t in suspended] == ids
    # one event per reason: the root's, then its descendants' (parent.suspended)
    assert [(e.kind, e.task_ids) for e in heard] == [
        (RevocationKind.SUSPENDED, tuple(ids[:1])),
        (RevocationKind.SUSPENDED, tuple(ids[1:])),
    ]
    for holder, token in ((agent, root.token), (helper, child.token), (peer, grand.token)):
        assert team.ask(holder, token).reasons == ("task.suspended",)
    below = team.events("task.suspended")[1:]
    assert [e["reason"] for e in below] == ["parent.suspended"] * 2
    assert {e["details"]["suspended_with"] for e in below} == {root.task.task_id}

    resumed = team.deployment.lifecycle.resume(root.task.task_id, actor=ADMIN)
    assert [t.task_id for t in resumed] == ids
    for holder, token in ((agent, root.token), (helper, child.token), (peer, grand.token)):
        assert team.ask(holder, token).allowed
    assert [e["reason"] for e in team.events("task.resumed")] == [
        "resumed",
        "parent.resumed",
        "parent.resumed",
    ]


def test_a_child_suspended_on_its_own_stays_suspended_when_its_parent_resumes(
    team: World, agent: Agent
) -> None:
    lifecycle = team.deployment.lifecycle
    root, helper, child, peer, grand = family(team, agent)
    lifecycle.suspend(child.task.task_id, actor=ADMIN, reason="lateral movement")
    assert team.ask(agent, root.token).allowed  # the parent is not touched
    [alone] = lifecycle.suspend(root.task.task_id, actor=ADMIN)
    assert alone.task_id == root.task.task_id  # the rest was suspended already
    refused(Conflict, "task.parent_suspended", lifecycle.resume, child.task.task_id, actor=ADMIN)
    assert [t.task_id for t in lifecycle.resume(root.task.task_id, actor=ADMIN)] == [
        root.task.task_id
    ]
    assert team.ask(agent, root.token).allowed
    assert team.ask(helper, child.token).reasons == ("task.suspended",)
    assert team.ask(peer, grand.token).reasons == ("task.suspended",)
    lifecycle.resume(child.task.task_id, actor=ADMIN)  # then the child, on its own
    assert team.ask(helper, child.token).allowed
    assert team.ask(peer, grand.token).allowed


def test_a_suspended_task_delegates_nothing_and_its_owner_cannot_complete_it(
    team: World, agent: Agent
) -> None:
    lifecycle = team.deployment.lifecycle
    helper = team.agent(HELPER)
    root = team.open(agent, details(actions=["read"]), playbook="team", max_calls=10)
    lifecycle.suspend(root.task.task_id, actor=ADMIN)
    refused(Forbidden, "task.suspended", exchange, team, agent, root.token, helper, max_calls=2)
    task_id = root.task.task_id
    refused(Forbidden, "task.suspended", lifecycle.complete, task_id, AGENT, task_id)
    lifecycle.resume(task_id, actor=ADMIN)
    assert exchange(team, agent, root.token, helper, max_calls=2).task.state is TaskState.ACTIVE
    assert lifecycle.complete(task_id, AGENT, task_id).state is TaskState.COMPLETED


def test_refusals_name_why(world: World, agent: Agent) -> None:
    lifecycle = world.deployment.lifecycle
    refused(NotFound, "task.unknown", lifecycle.suspend, "tsk_nobody", actor=ADMIN)
    refused(NotFound, "task.unknown", lifecycle.resume, "tsk_nobody", actor=ADMIN)
    task_id = world.open(agent).task.task_id
    refused(Conflict, "task.not_suspended", lifecycle.resume, task_id, actor=ADMIN)
    for bad in ("", " ", "x" * 257, "parent.suspended", "line\nbreak"):
        with pytest.raises(InvalidInput) as caught:
            lifecycle.suspend(task_id, actor=ADMIN, reason=bad)
        assert caught.value.reason == "task.reason"
    lifecycle.suspend(task_id, actor=ADMIN)
    refused(Conflict, "task.already_suspended", lifecycle.suspend, task_id, actor=ADMIN)
    lifecycle.revoke(task_id, actor=ADMIN)  # a suspended task can still be revoked
    refused(Conflict, "task.ended", lifecycle.resume, task_id, actor=ADMIN)
    refused(Conflict, "task.ended", lifecycle.suspend, task_id, actor=ADMIN)
    completed = world.open(agent).task.task_id
    lifecycle.complete(completed, AGENT, completed)
    refused(Conflict, "task.ended", lifecycle.suspend, completed, actor=ADMIN)
    assert len(world.events("task.suspended")) == 1  # refusals write nothing


def test_a_task_whose_window_ends_while_suspended_expires_and_is_never_resumed(
    world: World, agent: Agent, heard: list[RevocationEvent]
) -> None:
    lifecycle = world.deployment.lifecycle
    opened = world.open(agent, ttl=60)
    lifecycle.suspend(opened.task.task_id, actor=ADMIN)
    world.clock.t += 61
    assert effective_state(world.task(opened.task.task_id), world.clock.now()) is TaskState.EXPIRED
    assert world.ask(agent, opened.token).reasons == ("task.expired",)
    refused(Conflict, "task.ended", lifecycle.resume, opened.task.task_id, actor=ADMIN)
    assert world.task(opened.task.task_id).state is TaskState.EXPIRED  # recorded
    assert heard[-1].kind is RevocationKind.ENDED
    assert world.events("task.resumed") == []


def test_listing_expired_tasks_records_the_suspended_ones_past_their_window(
    world: World, agent: Agent
) -> None:
    lifecycle = world.deployment.lifecycle
    short, long = world.open(agent, ttl=60), world.open(agent, ttl=600)
    for opened in (short, long):
        lifecycle.suspend(opened.task.task_id, actor=ADMIN)
    world.clock.t += 61
    assert [t.task_id for t in lifecycle.list(state=TaskState.EXPIRED)] == [short.task.task_id]
    assert [t.task_id for t in lifecycle.list(state=TaskState.SUSPENDED)] == [long.task.task_id]


def test_disabling_a_workload_revokes_its_suspended_tasks_too(world: World, agent: Agent) -> None:
    deployment = world.deployment
    suspended, active = world.open(agent), world.open(agent)
    deployment.lifecycle.suspend(suspended.task.task_id, actor=ADMIN)
    deployment.disable_workload(AGENT, ADMIN)
    for opened in (suspended, active):
        record = world.task(opened.task.task_id)
        assert (record.state, record.end_reason) == (TaskState.REVOKED, "workload.disabled")


def test_a_suspension_heard_before_the_store_resumes_is_denied_as_suspended(
    world: World, agent: Agent
) -> None:
    """The bus said suspended; the store already says active (its resume is not heard
    yet): the decider denies as heard, and allows once the resume is heard."""
    opened = world.open(agent)
    task_id = opened.task.task_id
    bus = world.deployment.bus
    bus.publish(RevocationEvent((task_id,), RevocationKind.SUSPENDED, "risk", 0.0))
    assert world.ask(agent, opened.token).reasons == ("task.suspended",)
    bus.publish(RevocationEvent((task_id,), RevocationKind.RESUMED, "resumed", 0.0))
    assert world.ask(agent, opened.token).allowed


def test_the_hooks_failing_never_undo_a_resume(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifecycle = world.deployment.lifecycle
    opened = world.open(agent)
    lifecycle.suspend(opened.task.task_id, actor=ADMIN)

    def broken(_: object) -> None:
        raise RuntimeError("the bus is gone")

    monkeypatch.setattr(lifecycle, "_on_resumed", broken)
    [resumed] = lifecycle.resume(opened.task.task_id, actor=ADMIN)
    assert world.task(resumed.task_id).state is TaskState.ACTIVE


def test_a_transition_lost_to_a_concurrent_change_asks_to_try_again(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store wrote nothing although the task looked right when read (another
    change came first): a conflict that says so, and nothing announced."""
    lifecycle = world.deployment.lifecycle
    opened = world.open(agent)
    monkeypatch.setattr(world.stores, "write_recorded", lambda *_: [])
    refused(Conflict, "task.changed", lifecycle.suspend, opened.task.task_id, actor=ADMIN)
    monkeypatch.undo()
    lifecycle.suspend(opened.task.task_id, actor=ADMIN)  # the twin
    assert world.task(opened.task.task_id).state is TaskState.SUSPENDED


def test_a_suspended_task_gets_no_grant(world: World, agent: Agent) -> None:
    """Refused as suspended (not as ended) and audited; once resumed the request gets
    past the task check (to the playbook, which names no broker here)."""
    lifecycle, grants = world.deployment.lifecycle, world.deployment.task_grants
    task_id = world.open(agent).task.task_id
    lifecycle.suspend(task_id, actor=ADMIN)
    ask = {"holder_sub": AGENT, "holder_task": task_id}
    refused(Forbidden, "task.suspended", grants.issue, task_id, "pg", **ask)
    assert world.events("grant.issue")[-1]["reason"] == "task.suspended"
    lifecycle.resume(task_id, actor=ADMIN)
    with pytest.raises(ZerolaneError) as caught:
        grants.issue(task_id, "pg", **ask)
    assert caught.value.reason != "task.suspended"
