"""Opening, completing and revoking tasks: what is granted, what is refused, what is audited."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jwt
import pytest

from tests.tasks.conftest import (
    ADMIN,
    AGENT,
    FINANCE,
    ISSUER,
    OUTSIDER,
    PEER,
    PLAYBOOK,
    PLAYBOOK_DOC,
    Agent,
    World,
    details,
)
from zerolane.audit.events import Actor
from zerolane.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from zerolane.policy.engine import PolicyRequest, PolicyResult
from zerolane.tasks.lifecycle import MAX_INTENT, OpenRequest, effective_state
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tasks.scope import Scope
from zerolane.tokens.rfc9068 import verify_task_token
from zerolane.types import Sensitivity, TaskState

INTENT = "Summarize Q3 results for the wiki"


def test_open_grants_an_active_task_and_audits_intent_and_scope(world: World, agent: Agent) -> None:
    now = world.clock.now()
    opened = world.open(
        agent,
        details(actions=["read"], identifier="finance/q3", datatypes=["internal"]),
        intent=INTENT,
        ttl=120,
        max_calls=7,
        on_behalf_of="alice@example.org",
    )
    task = opened.task
    scope = Scope(("read",), ("finance/q3",), PLAYBOOK.destinations, Sensitivity.INTERNAL)
    assert task.state is TaskState.ACTIVE
    assert task.owner == AGENT
    assert task.intent == INTENT
    assert Scope.from_json(task.scope) == scope
    assert (task.max_calls, task.calls_used, task.touched) == (7, 0, -1)
    assert task.expires_at == int(now) + 120
    assert task.jkt == agent.jkt
    assert task.on_behalf_of == "alice@example.org"
    assert world.stores.get_task(task.task_id) == task

    [event] = world.events("task.opened")
    assert event["outcome"] == "success"
    assert event["subject"] == task.task_id
    assert event["actor"]["id"] == AGENT
    assert event["details"]["intent"] == INTENT
    assert Scope.from_json(event["details"]["scope"]) == scope
    assert event["details"]["playbook"] == "reports"
    assert event["details"]["max_calls"] == 7
    assert event["details"]["jkt"] == agent.jkt
    assert event["details"]["token_id"] == task.token_jti
    assert event["details"]["on_behalf_of"] == "alice@example.org"


def test_the_task_token_is_an_at_jwt_bound_to_the_workloads_key(world: World, agent: Agent) -> None:
    opened = world.open(agent, details(actions=["read"], datatypes=["internal"]))
    task = opened.task
    header = jwt.get_unverified_header(opened.token)
    claims = jwt.decode(opened.token, options={"verify_signature": False})
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["iss"] == ISSUER
    assert claims["sub"] == AGENT
    assert claims["aud"] == [ISSUER]
    assert claims["cnf"] == {"jkt": agent.jkt}
    assert claims["task"] == task.task_id
    assert claims["jti"] == task.token_jti
    assert claims["authorization_details"] == json.loads(task.authorization_details)
    assert claims["authorization_details"] == Scope.from_json(task.scope).authorization_details()
    assert claims["authorization_details"][0]["actions"] == ["read"]
    assert claims["authorization_details"][0]["datatypes"] == ["public", "internal"]
    assert claims["nbf"] == claims["iat"] <= world.clock.now()
    assert claims["exp"] <= task.expires_at
    assert "act" not in claims  # a root task has no delegation chain

    verified = verify_task_token(
        opened.token,
        world.deployment.keyring.public_keys(),
        issuer=ISSUER,
        audience=ISSUER,
        now=world.clock.now(),
    )
    assert verified.task_id == task.task_id
    assert verified.act is None


def test_an_extra_audience_is_added_to_the_control_planes(world: World, agent: Agent) -> None:
    opened = world.open(agent, audience=["https://gw.example.org", ISSUER])
    assert opened.task.audience == (ISSUER, "https://gw.example.org")
    claims = jwt.decode(opened.token, options={"verify_signature": False})
    assert claims["aud"] == [ISSUER, "https://gw.example.org"]


def test_each_open_is_a_new_task_with_its_own_token(world: World, agent: Agent) -> None:
    first, second = world.open(agent), world.open(agent)
    assert first.task.task_id != second.task.task_id
    assert first.task.token_jti != second.task.token_jti
    assert first.token != second.token


def _intent(text: str) -> dict[str, Any]:
    return {"intent": text}


REFUSALS = [
    pytest.param({"details": details(actions=["delete"])}, Forbidden, "scope.action", id="action"),
    pytest.param({"details": details(locations=["evil.example.net"])}, Forbidden,
                 "scope.destination", id="destination"),
    pytest.param({"details": details(identifier="finance/**")}, Forbidden, "scope.resource",
                 id="resource"),
    pytest.param({"details": details(datatypes=["restricted"])}, Forbidden, "scope.sensitivity",
                 id="sensitivity"),
    pytest.param({"ttl": 901}, Forbidden, "scope.ttl", id="ttl"),
    pytest.param({"max_calls": 21}, Forbidden, "scope.max_calls", id="max_calls"),
    pytest.param({"details": details() * 2}, InvalidInput, "authorization_details.count",
                 id="two-entries"),
    pytest.param({"playbook": "payroll"}, NotFound, "playbook.unknown", id="unknown-playbook"),
    pytest.param(_intent("   "), InvalidInput, "task.intent", id="blank-intent"),
    pytest.param(_intent("x" * (MAX_INTENT + 1)), InvalidInput, "task.intent", id="long-intent"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "error", "reason"), REFUSALS)
def test_a_refused_open_is_audited_with_its_reason_and_grants_nothing(
    world: World, agent: Agent, options: dict[str, Any], error: type[Exception], reason: str
) -> None:
    options = dict(options)
    with pytest.raises(error) as refused:
        world.open(agent, options.pop("details", None), **options)
    assert getattr(refused.value, "reason", None) == reason
    assert world.stores.list_tasks(owner=AGENT) == []
    assert world.events("task.opened") == []
    [event] = world.events("task.open")
    assert event["outcome"] == "denied"
    assert event["reason"] == reason
    assert event["actor"]["id"] == AGENT
    assert event["details"]["playbook"] == options.get("playbook", "reports")

    twin = world.open(agent)  # the same workload, asking within the playbook
    assert twin.task.state is TaskState.ACTIVE


def test_a_workload_that_is_not_an_opener_is_refused_and_an_opener_granted(
    world: World,
) -> None:
    outsider = world.agent(OUTSIDER)
    with pytest.raises(Forbidden) as refused:
        world.open(outsider)
    # grant.opener is the only permit for open_task: no match is a default deny, which
    # reports no policy id; the service names it grant.no_permit (docs/policies.md)
    assert refused.value.reason == "grant.no_permit"
    [event] = world.events("task.open")
    assert (event["outcome"], event["reason"]) == ("denied", "grant.no_permit")
    assert event["actor"]["id"] == OUTSIDER
    assert world.stores.list_tasks(owner=OUTSIDER) == []

    opener = world.agent(PEER)
    assert world.open(opener).task.owner == PEER


def test_an_opener_lacking_a_required_selector_is_refused(world: World) -> None:
    doc = {
        **PLAYBOOK_DOC,
        "name": "prod-reports",
        "openers": {"spiffe_ids": ["spiffe://example.org/agents/*"], "selectors": ["env:prod"]},
    }
    world.deployment.playbooks.apply(parse_playbook(doc, "test"), ADMIN)
    staging = world.agent(PEER, selectors=("env:staging",))
    with pytest.raises(Forbidden) as refused:
        world.open(staging, playbook="prod-reports")
    assert refused.value.reason == "grant.no_permit"

    prod = world.agent(AGENT, selectors=("env:prod", "team:finance"))
    assert world.open(prod, playbook="prod-reports").task.playbook == "prod-reports"


@pytest.mark.parametrize("allowed", [False, True])
def test_a_grant_policy_that_errors_refuses_the_open(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch, allowed: bool
) -> None:
    """Regression (allowed=True): an engine reporting errors alongside an allow used to
    grant the task; errors now refuse whatever the engine says beside them."""
    engine = world.deployment.engine

    def erroring(request: PolicyRequest) -> PolicyResult:
        return PolicyResult(allowed, ("grant.opener",), ("evaluation error",))

    monkeypatch.setattr(engine, "decide", erroring)
    with pytest.raises(Forbidden) as refused:
        world.open(agent)
    assert refused.value.reason == "policy.error"
    assert world.events("task.open")[0]["reason"] == "policy.error"
    monkeypatch.undo()
    assert world.open(agent).task.state is TaskState.ACTIVE


def test_a_grant_policy_that_raises_refuses_the_open_and_is_audited(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: an engine raising used to escape ``open`` unaudited (a 500)."""
    engine = world.deployment.engine

    def raising(request: PolicyRequest) -> PolicyResult:
        raise RuntimeError("engine crashed")

    monkeypatch.setattr(engine, "decide", raising)
    with pytest.raises(Forbidden) as refused:
        world.open(agent)
    assert refused.value.reason == "policy.error"
    [event] = world.events("task.open")
    assert (event["outcome"], event["reason"]) == ("denied", "policy.error")
    assert world.stores.list_tasks(owner=AGENT) == []
    monkeypatch.undo()
    assert world.open(agent).task.state is TaskState.ACTIVE


def test_an_open_that_cannot_be_audited_leaves_no_live_task(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = world.caller(agent)  # authenticate (and audit nothing) before the outage
    stores = world.stores

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(stores, "append_events", down)
    with pytest.raises(Unavailable) as refused:
        world.deployment.lifecycle.open(caller, OpenRequest(intent=INTENT, playbook="reports"))
    assert refused.value.reason == "audit.write"
    assert stores.list_tasks(owner=AGENT) == []  # stored with its event, or not at all
    monkeypatch.undo()
    assert world.open(agent).task.state is TaskState.ACTIVE


# ending a task


def test_the_owner_completes_its_task_and_it_is_audited(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    world.clock.t += 30
    ended = world.deployment.lifecycle.complete(opened.task.task_id, AGENT, opened.task.task_id)
    assert ended.state is TaskState.COMPLETED
    assert ended.ended_at == world.clock.now()
    assert world.stores.get_task(opened.task.task_id) == ended
    [event] = world.events("task.completed")
    assert event["subject"] == opened.task.task_id
    assert event["actor"] == {"type": "workload", "id": AGENT}
    assert event["outcome"] == "success"


def test_a_non_owner_cannot_complete_a_task(world: World, agent: Agent) -> None:
    mine = world.open(agent)
    peer = world.agent(PEER)
    theirs = world.open(peer)
    lifecycle = world.deployment.lifecycle
    task_id = mine.task.task_id
    # the peer, holding its own task's token, names mine
    with pytest.raises(Forbidden) as refused:
        lifecycle.complete(task_id, PEER, theirs.task.task_id)
    assert refused.value.reason == "task.not_yours"
    # a token claiming my task id but another subject
    with pytest.raises(Forbidden) as impostor:
        lifecycle.complete(task_id, PEER, task_id)
    assert impostor.value.reason == "task.not_yours"
    # my token of another task of mine does not end this one either
    other = world.open(agent)
    with pytest.raises(Forbidden) as crossed:
        lifecycle.complete(task_id, AGENT, other.task.task_id)
    assert crossed.value.reason == "task.not_yours"
    assert world.task(task_id).state is TaskState.ACTIVE

    assert lifecycle.complete(task_id, AGENT, task_id).state is TaskState.COMPLETED


def test_completing_an_unknown_task_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as missing:
        world.deployment.lifecycle.complete("tsk_nope", AGENT, "tsk_nope")
    assert missing.value.reason == "task.unknown"


def test_completing_twice_is_a_conflict(world: World, agent: Agent) -> None:
    task_id = world.open(agent).task.task_id
    lifecycle = world.deployment.lifecycle
    lifecycle.complete(task_id, AGENT, task_id)
    with pytest.raises(Conflict) as twice:
        lifecycle.complete(task_id, AGENT, task_id)
    assert twice.value.reason == "task.ended"
    with pytest.raises(Conflict) as revoke_after:
        lifecycle.revoke(task_id, actor=ADMIN)
    assert revoke_after.value.reason == "task.ended"
    assert len(world.events("task.completed")) == 1
    assert world.events("task.revoked") == []
    assert world.task(task_id).state is TaskState.COMPLETED


def test_revoke_ends_a_task_with_its_reason_once(world: World, agent: Agent) -> None:
    task_id = world.open(agent).task.task_id
    lifecycle = world.deployment.lifecycle
    revoked = lifecycle.revoke(task_id, actor=Actor("admin", "oncall"), reason="incident-42")
    assert revoked.state is TaskState.REVOKED
    assert revoked.end_reason == "incident-42"
    [event] = world.events("task.revoked")
    assert (event["reason"], event["actor"]["id"]) == ("incident-42", "oncall")
    with pytest.raises(Conflict) as twice:
        lifecycle.revoke(task_id, actor=ADMIN)
    assert twice.value.reason == "task.ended"
    with pytest.raises(Conflict):
        lifecycle.complete(task_id, AGENT, task_id)


def test_list_and_get(world: World, agent: Agent) -> None:
    first, second = world.open(agent), world.open(agent)
    lifecycle = world.deployment.lifecycle
    lifecycle.revoke(first.task.task_id, actor=ADMIN)
    assert lifecycle.get(second.task.task_id) == second.task
    active = lifecycle.list(owner=AGENT, state=TaskState.ACTIVE)
    assert [t.task_id for t in active] == [second.task.task_id]
    assert {t.task_id for t in lifecycle.list(owner=AGENT)} == {
        first.task.task_id,
        second.task.task_id,
    }
    with pytest.raises(NotFound):
        lifecycle.get("tsk_missing")


def test_effective_state_expires_an_active_task_at_its_window_end(
    world: World, agent: Agent
) -> None:
    task = world.open(agent, ttl=60).task
    assert effective_state(task, task.expires_at - 0.001) is TaskState.ACTIVE
    assert effective_state(task, task.expires_at) is TaskState.EXPIRED
    assert task.state is TaskState.ACTIVE  # the record read before: computed from the window
    ended = world.deployment.lifecycle.revoke(task.task_id, actor=ADMIN)
    assert effective_state(ended, task.expires_at + 10) is TaskState.REVOKED


# time only moves forward for a task


def test_a_task_seen_expired_is_recorded_expired_with_its_event(world: World, agent: Agent) -> None:
    task = world.open(agent, ttl=60).task
    lifecycle = world.deployment.lifecycle
    # the twin: inside its window, reading it records nothing
    world.clock.t = task.expires_at - 1
    assert lifecycle.get(task.task_id).state is TaskState.ACTIVE
    assert world.events("task.expired") == []
    world.clock.t = task.expires_at + 5
    seen = lifecycle.get(task.task_id)
    assert (seen.state, seen.end_reason, seen.ended_at) == (
        TaskState.EXPIRED,
        "expired",
        task.expires_at,
    )
    assert world.task(task.task_id) == seen
    [event] = world.events("task.expired")
    assert (event["subject"], event["outcome"], event["actor"]["type"]) == (
        task.task_id,
        "success",
        "system",
    )
    assert event["details"]["expires_at"] == task.expires_at
    lifecycle.get(task.task_id)  # recorded once
    assert len(world.events("task.expired")) == 1


def test_an_expired_task_stays_expired_when_the_clock_steps_back(
    world: World, agent: Agent
) -> None:
    """Regression: expiry was only compared with the clock, so a task seen expired came
    back to life when the server's clock stepped back a few seconds."""
    opened = world.open(agent, ttl=60)
    task = opened.task
    assert world.ask(agent, opened.token).allowed  # the twin: inside the window
    world.clock.t = task.expires_at + 2
    denied = world.ask(agent, opened.token)
    assert denied.reasons == ("task.expired",)
    world.deployment.lifecycle.mark_expired(world.task(task.task_id))  # as a decision does
    world.clock.t = task.expires_at - 3  # the clock steps back inside the window
    again = world.ask(agent, opened.token)
    assert not again.allowed
    assert again.reasons == ("task.expired",)
    with pytest.raises(Conflict) as completed:
        world.deployment.lifecycle.complete(task.task_id, AGENT, task.task_id)
    assert completed.value.reason == "task.ended"
    assert world.task(task.task_id).state is TaskState.EXPIRED


def test_mark_expired_records_nothing_inside_the_window_and_never_raises(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = world.open(agent, ttl=60).task
    lifecycle = world.deployment.lifecycle
    assert lifecycle.mark_expired(task, now=task.expires_at - 0.5) == task
    assert world.events("task.expired") == []

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(world.stores, "append_events", down)
    # the audit sink is down: nothing is recorded, the task is still expired by its window
    unrecorded = lifecycle.mark_expired(task, now=task.expires_at)
    assert unrecorded.state is TaskState.ACTIVE
    assert effective_state(unrecorded, task.expires_at) is TaskState.EXPIRED
    monkeypatch.undo()
    assert lifecycle.mark_expired(task, now=task.expires_at).state is TaskState.EXPIRED


def test_an_expiry_expires_the_tree_and_tells_the_hook(world: World, agent: Agent) -> None:
    task = world.open(agent, ttl=60).task
    child = dataclasses.replace(
        task,
        task_id="tsk_child",
        token_jti="jti-child",
        parent_id=task.task_id,
        depth=1,
        max_calls=1,
        expires_at=task.expires_at - 10,
    )
    assert world.stores.add_child_task(child, now=world.clock.now()) is not None
    heard: list[str] = []
    lifecycle = world.deployment.lifecycle
    lifecycle._on_ended = lambda ended: heard.extend(t.task_id for t in ended)
    expired = lifecycle.mark_expired(task, now=task.expires_at)
    assert expired.state is TaskState.EXPIRED
    assert world.task("tsk_child").state is TaskState.EXPIRED
    assert heard == [task.task_id, "tsk_child"]
    kids = world.events("task.expired")
    assert [e["subject"] for e in kids] == [task.task_id, "tsk_child"]
    assert kids[1]["details"]["ended_with"] == task.task_id


def test_listing_records_expiries_so_an_expired_task_is_never_listed_active(
    world: World, agent: Agent
) -> None:
    old = world.open(agent, ttl=60).task
    world.clock.t += 30
    young = world.open(agent, ttl=600).task
    world.clock.t = old.expires_at + 1
    lifecycle = world.deployment.lifecycle
    assert [t.task_id for t in lifecycle.list(owner=AGENT, state=TaskState.ACTIVE)] == [
        young.task_id
    ]
    assert [t.task_id for t in lifecycle.list(owner=AGENT, state=TaskState.EXPIRED)] == [
        old.task_id
    ]
    world.clock.t = old.expires_at - 10  # stepped back: the record holds
    assert [t.task_id for t in lifecycle.list(owner=AGENT, state=TaskState.ACTIVE)] == [
        young.task_id
    ]
    states = {t.task_id: t.state for t in lifecycle.list(owner=AGENT)}
    assert states == {old.task_id: TaskState.EXPIRED, young.task_id: TaskState.ACTIVE}


def test_an_open_request_must_name_a_known_playbook_for_any_scope(
    world: World, agent: Agent
) -> None:
    with pytest.raises(NotFound):
        world.open(agent, details(actions=["read"]), playbook="nope")
    assert world.open(agent, details(actions=["read"], locations=[FINANCE])).task
