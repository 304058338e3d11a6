"""Tasks held for human approval (a response rule's ``require_approval``): a detection
about a task makes each of its requests the policies allow need an approval, the
approved identical request runs once, an unaffected task's twin runs as before, a
release lifts it, and a hold that cannot be read refuses (fail closed)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conformance.test_task_tree import task
from tests.tasks.conftest import ADMIN, AGENT, EVIL, FINANCE, Agent, World
from tests.tasks.test_approvals import ASK_WIKI_WRITES, approve, write
from zerolane.audit.events import Actor
from zerolane.detection.response import Responder
from zerolane.errors import InvalidInput, NotFound, Unavailable
from zerolane.settings.response import ResponseRule, ResponseSettings
from zerolane.store.records import ApprovalStatus
from zerolane.tasks import holds as holds_module
from zerolane.tasks.approvals import body_digest
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tasks.holds import Holds
from zerolane.types import Outcome

RULE = ResponseRule(
    name="hold-probers", detectors=("scope_probing",), actions=("require_approval",)
)
APPROVER = "alice@example.org"


def respond_to_probing(world: World, task_id: str) -> Responder:
    """Record a scope_probing detection about ``task_id`` and run the deployment's
    responder with :data:`RULE` over it."""
    deployment = world.deployment
    deployment.config = dataclasses.replace(
        deployment.config, response=ResponseSettings(rules=(RULE,))
    )
    deployment.audit.record(
        "detection",
        actor=Actor("detector", "scope_probing"),
        subject=task_id,
        outcome=Outcome.FAILURE,
        reason="detection.scope_probing",
        details={
            "detector": "scope_probing",
            "severity": "medium",
            "summary": "many denied resources",
            "task_id": task_id,
            "workload": AGENT,
            "evidence": [],
            "evidence_total": 0,
        },
    )
    responder = deployment.responder
    responder.catch_up()
    return responder


def read(world: World, agent: Agent, token: str, *, digest: str | None = None) -> Decision:
    url = f"https://{FINANCE}/finance/q3"
    return world.deployment.decider.decide(
        token,
        world.proof(agent.key, "GET", url, token),
        DecideInput(
            method="GET",
            url=url,
            action="read",
            resource="finance/q3",
            destination=FINANCE,
            sensitivity="internal",
            digest=body_digest(b"") if digest is None else digest,
        ),
    )


def test_a_detection_holds_its_task_and_each_request_then_needs_an_approval(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent)
    token = opened.token
    other = world.open(agent)  # the same workload's other task: not held
    assert read(world, agent, token).allowed  # before the detection

    respond_to_probing(world, opened.task.task_id)
    [event] = world.events("task.held")
    assert event["subject"] == opened.task.task_id
    assert event["actor"] == {"type": "system", "id": "response:hold-probers"}
    assert event["details"]["detector"] == "scope_probing"
    [response] = world.events("response")
    assert response["details"]["actions"] == {"require_approval": "done"}

    asked = read(world, agent, token)
    assert (asked.allowed, asked.reasons) == (False, ("approval.required",))
    assert "response:hold-probers" in asked.policies
    assert asked.approval_id is not None
    assert read(world, agent, other.token).allowed  # the unaffected twin

    approval = world.deployment.approvals.get(asked.approval_id)
    assert approval.policies == ("response:hold-probers",)
    world.deployment.approvals.approve(asked.approval_id, approver=APPROVER, actor=ADMIN)
    assert read(world, agent, token).allowed  # the identical request, once
    assert world.deployment.approvals.get(asked.approval_id).status is ApprovalStatus.USED
    again = read(world, agent, token)
    assert again.reasons == ("approval.required",)
    assert again.approval_id != asked.approval_id
    # changed arguments: not the approved request
    world.deployment.approvals.approve(str(again.approval_id), approver=APPROVER, actor=ADMIN)
    changed = read(world, agent, token, digest=body_digest(b"other"))
    assert changed.reasons == ("approval.required",)


def test_a_held_task_is_still_refused_what_the_policies_refuse(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    respond_to_probing(world, opened.task.task_id)
    outside = world.ask(agent, opened.token, "read", "x", EVIL)
    assert not outside.allowed
    assert outside.approval_id is None  # no approval could make it allowed
    assert "approval.required" not in outside.reasons


def test_a_second_detection_holds_nothing_twice_and_a_release_lifts_the_hold(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent)
    respond_to_probing(world, opened.task.task_id)
    respond_to_probing(world, opened.task.task_id)
    responses = world.events("response")
    assert [r["details"]["actions"] for r in responses] == [
        {"require_approval": "done"},
        {"require_approval": "already"},
    ]
    holds = world.deployment.holds
    assert [h.task_id for h in holds.list()] == [opened.task.task_id]
    with pytest.raises(InvalidInput) as bad:
        holds.clear(opened.task.task_id, actor=ADMIN, reason="\x1b[2J")
    assert bad.value.reason == "hold.reason"
    cleared = holds.clear(opened.task.task_id, actor=ADMIN, reason="looked into it")
    assert cleared.rule == "hold-probers"
    assert read(world, agent, opened.token).allowed
    [released] = world.events("task.released")
    assert (released["actor"], released["reason"]) == (
        {"type": "admin", "id": ADMIN.id},
        "looked into it",
    )
    with pytest.raises(NotFound) as gone:
        holds.clear(opened.task.task_id, actor=ADMIN)
    assert gone.value.reason == "hold.unknown"
    with pytest.raises(NotFound):
        holds.get(opened.task.task_id)


def test_every_task_delegated_below_a_held_task_is_held_too(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain root > child > grandchild: holding the root holds the grandchild (its
    ancestors are looked up), a task outside the chain is not held; an ancestor that
    cannot be read refuses (fail closed)."""
    stores = world.deployment.stores
    root = task("tsk_root")
    child = task("tsk_child", parent=root)
    grandchild = task("tsk_grandchild", parent=child)
    for record in (root, child, grandchild, task("tsk_other")):
        stores.add_task(record)
    holds = world.deployment.holds
    assert holds.held("tsk_grandchild", "tsk_child") is None  # nothing held: no lookup
    holds.place("tsk_root", rule="r", detector="d", detection="evt", actor=ADMIN)
    found = holds.held("tsk_grandchild", "tsk_child")
    assert found is not None
    assert found.task_id == "tsk_root"
    assert holds.held("tsk_child", "tsk_root") is not None
    assert holds.held("tsk_other") is None  # the twin outside the chain
    assert holds.held("tsk_orphan", "tsk_gone") is None  # an ancestor not stored: a root

    fresh = Holds(stores, world.deployment.audit, world.clock)
    fresh.held("tsk_other")  # reads the holds

    def broken(task_id: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(stores, "get_task", broken)
    with pytest.raises(Unavailable) as refused:
        fresh.held("tsk_grandchild", "tsk_child")
    assert refused.value.reason == "hold.unavailable"
    monkeypatch.undo()
    assert fresh.held("tsk_grandchild", "tsk_child") is not None


def test_a_hold_placed_by_another_process_is_seen_within_the_refresh(
    world: World, agent: Agent
) -> None:
    deployment = world.deployment
    elsewhere = Holds(deployment.stores, deployment.audit, world.clock, refresh=5)
    opened = world.open(agent)
    assert elsewhere.held(opened.task.task_id) is None  # read now: none
    deployment.holds.place(
        opened.task.task_id, rule="r", detector="d", detection="evt", actor=ADMIN
    )
    assert deployment.holds.held(opened.task.task_id) is not None  # this process: at once
    world.clock.t += 5
    assert elsewhere.held(opened.task.task_id) is not None  # another: after its refresh
    with pytest.raises(NotFound):
        deployment.holds.place("tsk_nope", rule="r", detector="d", detection="e", actor=ADMIN)


def test_holds_that_cannot_be_read_refuse_every_request(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = world.open(agent)
    assert read(world, agent, opened.token).allowed
    stores = world.deployment.stores

    def broken(limit: int = 10_000) -> list[object]:
        raise OSError("disk gone")

    monkeypatch.setattr(stores, "list_holds", broken)
    world.clock.t += 2  # past the refresh: read again, and it fails
    refused = read(world, agent, opened.token)
    assert (refused.allowed, refused.reasons) == (False, ("hold.unavailable",))
    monkeypatch.undo()
    world.clock.t += 2
    assert read(world, agent, opened.token).allowed  # the twin, once it reads again


def test_the_held_event_names_the_detection(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    respond_to_probing(world, opened.task.task_id)
    [detection] = world.events("detection")
    [held] = world.events("task.held")
    assert held["details"]["detection"] == detection["event_id"]
    stored = world.deployment.holds.get(opened.task.task_id)
    assert stored.detection == detection["event_id"]


def test_more_holds_than_are_read_refuse_rather_than_drop_one(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holds are never released by themselves (not even when their task ends): past
    the number read, a newer hold would be left out and its task let through. Refused
    instead, until some are released; below it, every hold counts."""
    monkeypatch.setattr(holds_module, "MAX_HOLDS", 2)
    deployment = world.deployment
    first, second, third = world.open(agent), world.open(agent), world.open(agent)
    for opened in (first, second):
        deployment.holds.place(
            opened.task.task_id, rule="r", detector="d", detection="e", actor=ADMIN
        )
    elsewhere = Holds(deployment.stores, deployment.audit, world.clock, refresh=1)
    assert elsewhere.held(second.task.task_id) is not None  # two: read whole
    assert elsewhere.held(third.task.task_id) is None
    deployment.holds.place(third.task.task_id, rule="r", detector="d", detection="e", actor=ADMIN)
    world.clock.t += 1
    with pytest.raises(Unavailable) as refused:
        elsewhere.held(third.task.task_id)
    assert refused.value.reason == "hold.unavailable"
    deployment.holds.clear(first.task.task_id, actor=ADMIN)
    world.clock.t += 1
    assert elsewhere.held(third.task.task_id) is not None  # read whole again
    assert elsewhere.held(first.task.task_id) is None


def test_an_approval_asked_before_the_hold_does_not_pass_it(world: World, agent: Agent) -> None:
    """A write a policy asks approval for, asked before a detection held the task and
    approved after: its approver was not shown the hold, so under the hold the write
    asks again (response:<rule> named); once released, the earlier approval is used."""
    folder = world.deployment.home / world.deployment.config.policy_dir
    (folder / "approval.cedar").write_text(ASK_WIKI_WRITES)
    world.deployment.reload_policies(ADMIN)
    opened = world.open(agent)
    before = write(world, agent, opened.token)
    assert before.reasons == ("approval.required",)
    assert before.policies == ("approval.wiki_write",)
    respond_to_probing(world, opened.task.task_id)
    approve(world, before.approval_id)  # approved now, as asked then
    held = write(world, agent, opened.token)
    assert (held.allowed, held.reasons) == (False, ("approval.required",))
    assert held.policies == ("approval.wiki_write", "response:hold-probers")
    assert held.approval_id not in (None, before.approval_id)
    assert world.deployment.approvals.get(str(before.approval_id)).status is (
        ApprovalStatus.APPROVED  # not spent
    )
    approve(world, held.approval_id)  # the twin: the approval asked under the hold
    assert write(world, agent, opened.token).allowed
    world.deployment.holds.clear(opened.task.task_id, actor=ADMIN)
    assert write(world, agent, opened.token).allowed  # the earlier one, as it was asked
    assert world.deployment.approvals.get(str(before.approval_id)).status is ApprovalStatus.USED


def test_a_held_task_that_ends_is_released_and_an_ended_task_is_never_held(
    world: World, agent: Agent
) -> None:
    """Holds outlive nothing: kept for ended tasks they would pile up toward MAX_HOLDS
    (and then refuse every request)."""
    opened = world.open(agent)
    respond_to_probing(world, opened.task.task_id)
    holds = world.deployment.holds
    assert [h.task_id for h in holds.list()] == [opened.task.task_id]
    world.deployment.lifecycle.revoke(opened.task.task_id, actor=ADMIN, reason="looked")
    assert holds.list() == []
    [released] = world.events("task.released")
    assert (released["actor"], released["reason"]) == (
        {"type": "system", "id": "task-ended"},
        "task revoked",
    )
    respond_to_probing(world, opened.task.task_id)  # a late detection of the ended task
    assert holds.list() == []
    other = world.open(agent)  # the twin: a live task is held as before
    respond_to_probing(world, other.task.task_id)
    assert [h.task_id for h in holds.list()] == [other.task.task_id]
    assert not read(world, agent, other.token).allowed
