"""Shadow mode through the full Decider: a route (the enforcement point's), a playbook
or the policy set in shadow lets through what the policies deny, audited as a
would-deny and spending a call; everything else stays refused. Each with its twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.identity.attestors.cases import FixedClock
from tests.tasks.conftest import (
    ADMIN,
    AGENT,
    FINANCE,
    PEER,
    PLAYBOOK_DOC,
    SLACK,
    TD,
    WIKI,
    Agent,
    World,
    details,
)
from tests.tasks.test_approvals import ASK_WIKI_WRITES, write
from tests.tasks.test_exchange import exchange
from zerolane.config import CONFIG_NAME, Config, TasksConfig, render_config
from zerolane.decision import Shadow
from zerolane.detection.risk import RiskScores
from zerolane.errors import InvalidInput, Refusal
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.identity.keyring import Keyring
from zerolane.policy.defaults import install_defaults
from zerolane.server.deployment import Deployment
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tasks.playbooks import parse_playbook
from zerolane.types import Outcome

ROUTE = "route:finance GET /finance/{id}"
DELETE = {"action": "delete"}  # outside the task's scope: the policies forbid it


def ask(
    world: World,
    agent: Agent,
    token: str,
    action: str = "read",
    *,
    shadow: str | None = ROUTE,
    bound_to: str | None = None,
    url: str | None = None,
) -> Decision:
    """One request of ``token`` (a read of finance/q3, or ``action``), in ``shadow``."""
    method = "GET" if action == "read" else "POST"
    url = url or f"https://{FINANCE}/finance/q3"
    return world.deployment.decider.decide(
        token,
        world.proof(agent.key, method, url, token),
        DecideInput(
            method=method,
            url=url,
            action=action,
            resource="finance/q3" if "%" not in url else None,
            destination=FINANCE,
            sensitivity="internal",
            task_id=bound_to,
            shadow=shadow,
        ),
    )


def decisions(world: World) -> list[dict[str, Any]]:
    return world.events("decision")


def test_a_route_in_shadow_lets_a_policy_deny_through_and_audits_it(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent)
    task_id = opened.task.task_id
    let = ask(world, agent, opened.token, "delete")
    assert let.allowed
    assert let.outcome == "shadow"
    assert let.shadow == Shadow(("scope.action",), (ROUTE,))
    assert let.reasons == ()
    assert let.policies == ("scope.action",)
    assert world.task(task_id).calls_used == 1  # it spends a call like an allow
    event = decisions(world)[-1]
    assert (event["outcome"], event["reason"]) == (Outcome.SUCCESS, "shadow")
    details = event["details"]
    assert details["decision"] == "shadow"
    assert details["would_deny"] == ["scope.action"]
    assert details["shadow"] == [ROUTE]
    assert details["playbook"] == "reports"
    assert details["action"] == "delete"

    # the twin: the same request with the route enforced is denied, and spends nothing
    denied = ask(world, agent, opened.token, "delete", shadow=None)
    assert not denied.allowed
    assert denied.outcome == "deny"
    assert denied.shadow is None
    assert denied.reasons == ("scope.action",)
    assert world.task(task_id).calls_used == 1
    assert decisions(world)[-1]["details"]["decision"] == "deny"
    # and an allowed request in shadow is a plain allow
    plain = ask(world, agent, opened.token)
    assert (plain.outcome, plain.shadow) == ("allow", None)
    assert decisions(world)[-1]["reason"] == "ok"
    assert "would_deny" not in decisions(world)[-1]["details"]


def test_what_is_checked_in_code_stays_refused_in_shadow(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    other = world.open(agent)
    # the credentials: an SVID is no task token
    assert ask(world, agent, agent.svid, "delete").reasons == ("token.typ",)
    # the binding to another task
    bound = ask(world, agent, opened.token, "delete", bound_to=other.task.task_id)
    assert (bound.allowed, bound.reasons) == (False, ("task.binding",))
    # a path that cannot be decided as sent
    unsafe = ask(world, agent, opened.token, url=f"https://{FINANCE}/finance/q%2e3")
    assert (unsafe.allowed, unsafe.refusal) == (False, Refusal.INVALID)
    # a task that ended
    world.deployment.lifecycle.complete(other.task.task_id, AGENT, other.task.task_id)
    ended = ask(world, agent, other.token, "delete")
    assert (ended.allowed, ended.reasons) == (False, ("task.completed",))
    assert all(e["details"]["decision"] == "deny" for e in decisions(world))
    # the twin: the live task's same request is let through in shadow
    assert ask(world, agent, opened.token, "delete").outcome == "shadow"


def test_a_budget_spent_by_shadow_allows_is_spent(world: World, agent: Agent) -> None:
    opened = world.open(agent, max_calls=2)
    assert ask(world, agent, opened.token, "delete").outcome == "shadow"
    assert ask(world, agent, opened.token).outcome == "allow"
    exhausted = ask(world, agent, opened.token, "delete")
    assert (exhausted.allowed, exhausted.reasons) == (False, ("task.budget_exhausted",))


def test_an_approval_asked_in_shadow_is_a_would_require_approval(
    world: World, agent: Agent
) -> None:
    folder = world.deployment.home / world.deployment.config.policy_dir
    (folder / "approval.cedar").write_text(ASK_WIKI_WRITES)
    world.deployment.reload_policies(ADMIN)
    token = world.open(agent).token
    url = f"https://{WIKI}/wiki/q3"
    let = world.deployment.decider.decide(
        token,
        world.proof(agent.key, "POST", url, token),
        DecideInput(
            method="POST",
            url=url,
            action="write",
            resource="wiki/q3",
            destination=WIKI,
            sensitivity="internal",
            digest="0" * 64,
            shadow=ROUTE,
        ),
    )
    assert let.outcome == "shadow"
    assert let.shadow == Shadow(("approval.required",), (ROUTE,))
    assert let.approval_id is None
    assert world.deployment.approvals.list() == []  # nothing asked of any person
    # the twin: enforced, the approval is asked for
    asked = write(world, agent, token)
    assert asked.reasons == ("approval.required",)
    assert asked.approval_id is not None


def test_a_playbook_in_shadow(world: World, agent: Agent) -> None:
    deployment = world.deployment
    doc = {**PLAYBOOK_DOC, "name": "trial", "mode": "shadow"}
    deployment.playbooks.apply(parse_playbook(doc, "trial.yaml"), ADMIN)
    trial = world.open(agent, playbook="trial")
    let = ask(world, agent, trial.token, "delete", shadow=None)
    assert let.shadow == Shadow(("scope.action",), ("playbook:trial",))
    assert decisions(world)[-1]["details"]["shadow"] == ["playbook:trial"]
    # a child task delegated from it runs in shadow too: its scope says so
    assert '"shadow":true' in world.task(trial.task.task_id).scope

    # the twin: the playbook enforced again; a task opened from it is denied
    enforced = {**PLAYBOOK_DOC, "name": "trial"}
    deployment.playbooks.apply(parse_playbook(enforced, "trial.yaml"), ADMIN)
    now_enforced = world.open(agent, playbook="trial")
    denied = ask(world, agent, now_enforced.token, "delete", shadow=None)
    assert (denied.allowed, denied.reasons) == (False, ("scope.action",))
    assert '"shadow"' not in world.task(now_enforced.task.task_id).scope
    # a task keeps the mode it was opened under, until it ends
    assert ask(world, agent, trial.token, "delete", shadow=None).outcome == "shadow"


@pytest.fixture
def shadow_world(tmp_path: Path) -> Iterator[World]:
    """A home whose whole policy set runs in shadow mode (``policy_mode``)."""
    home, clock = tmp_path / "home", FixedClock()
    ensure_private_dir(home)
    Keyring(home / "keys", clock).create()
    config = Config(
        trust_domain=TD,
        store_url="memory://",
        policy_mode="shadow",
        tasks=TasksConfig(internal_destinations=(TD, f"*.{TD}")),
    )
    install_defaults(home / config.policy_dir)
    write_private(home / CONFIG_NAME, render_config(config).encode())
    deployment = Deployment.open(home, clock)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK_DOC, "reports.yaml"), ADMIN)
    yield World(deployment, clock)
    deployment.close()


def test_a_policy_set_in_shadow(shadow_world: World) -> None:
    agent = shadow_world.agent(AGENT)
    opened = shadow_world.open(agent)
    let = ask(shadow_world, agent, opened.token, "delete", shadow=None)
    assert let.shadow == Shadow(("scope.action",), ("policies",))
    assert 'policy_mode = "shadow"' in (shadow_world.deployment.home / CONFIG_NAME).read_text()
    # the twin: what the policies allow is a plain allow there too
    assert ask(shadow_world, agent, opened.token, shadow=None).outcome == "allow"


def test_a_shadow_allow_that_cannot_be_audited_is_denied(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = world.open(agent)
    task_id = opened.task.task_id

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("audit sink unreachable")

    monkeypatch.setattr(world.stores, "append_events", down)
    denied = ask(world, agent, opened.token, "delete")
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("audit.write",),
        Refusal.UNAVAILABLE,
    )
    assert (denied.outcome, denied.shadow) == ("deny", None)  # never a shadow deny
    assert world.task(task_id).calls_used == 0  # nothing of the shadow allow stored
    # the twin: once the audit log takes events, the same request is a shadow allow
    monkeypatch.undo()
    let = ask(world, agent, opened.token, "delete")
    assert let.outcome == "shadow"
    assert world.task(task_id).calls_used == 1
    assert decisions(world)[-1]["details"]["would_deny"] == ["scope.action"]


def test_a_hold_is_never_relaxed_by_a_route_in_shadow(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    task_id = opened.task.task_id
    holds = world.deployment.holds
    holds.place(task_id, rule="r", detector="d", detection="evt", actor=ADMIN)
    # what the policies deny stays denied, what they allow needs a person's approval
    denied = ask(world, agent, opened.token, "delete")
    assert (denied.allowed, denied.reasons, denied.shadow) == (False, ("scope.action",), None)
    asked = ask(world, agent, opened.token)  # (no digest to bind an approval to)
    assert (asked.allowed, asked.reasons, asked.shadow) == (False, ("approval.unbound",), None)
    assert world.task(task_id).calls_used == 0
    assert all(e["details"]["decision"] == "deny" for e in decisions(world))
    # the twin: released, the same requests are a shadow allow and a plain allow
    holds.clear(task_id, actor=ADMIN)
    assert ask(world, agent, opened.token, "delete").outcome == "shadow"
    assert ask(world, agent, opened.token).outcome == "allow"


SHADOW_ASKED = [{**details()[0], "shadow": True}]


def test_an_agent_cannot_open_or_delegate_itself_into_shadow(world: World, agent: Agent) -> None:
    """Shadow mode comes only from the playbook an admin applied (a child's from its
    parent's task): an agent asking for it in its authorization_details is refused."""
    team = {**PLAYBOOK_DOC, "name": "team", "delegable": True, "max_depth": 2}
    world.deployment.playbooks.apply(parse_playbook(team, "team.yaml"), ADMIN)
    with pytest.raises(InvalidInput) as caught:
        world.open(agent, SHADOW_ASKED, playbook="team")
    assert caught.value.reason == "authorization_details.unknown_field"
    parent = world.open(agent, details(), playbook="team", max_calls=10)
    assert '"shadow"' not in world.task(parent.task.task_id).scope
    helper = world.agent(PEER)
    with pytest.raises(InvalidInput) as caught:
        exchange(world, agent, parent.token, helper, SHADOW_ASKED, max_calls=1)
    assert caught.value.reason == "authorization_details.unknown_field"
    # the twin: the child it may have is enforced like its parent
    child = exchange(world, agent, parent.token, helper, details(), max_calls=1)
    denied = ask(world, helper, child.token, "delete", shadow=None)
    assert (denied.allowed, denied.reasons) == (False, ("scope.action",))


def test_a_child_of_a_task_in_shadow_is_in_shadow(world: World, agent: Agent) -> None:
    trial = {**PLAYBOOK_DOC, "name": "trial", "delegable": True, "max_depth": 2, "mode": "shadow"}
    world.deployment.playbooks.apply(parse_playbook(trial, "trial.yaml"), ADMIN)
    parent = world.open(agent, playbook="trial", max_calls=10)
    helper = world.agent(PEER)
    child = exchange(world, agent, parent.token, helper, max_calls=1)
    let = ask(world, helper, child.token, "delete", shadow=None)
    assert let.shadow == Shadow(("scope.action",), ("playbook:trial",))
    assert decisions(world)[-1]["subject"] == child.task.task_id


def test_a_playbook_in_shadow_never_relaxes_the_safety_rules(world: World, agent: Agent) -> None:
    """Trying a playbook in shadow relaxes its scope, not the shipped safety rules (each
    a forbid annotated @shadow("never")): no egress after a sensitive read, a risky task
    kept off sensitive data and the outside."""
    deployment = world.deployment
    doc = {**PLAYBOOK_DOC, "name": "trial", "mode": "shadow"}
    deployment.playbooks.apply(parse_playbook(doc, "trial.yaml"), ADMIN)
    trial = world.open(agent, playbook="trial")
    task_id = trial.task.task_id
    read = world.ask(agent, trial.token, sensitivity="confidential")
    assert read.outcome == "allow"
    post = world.ask(agent, trial.token, "write", "wiki/status", SLACK)
    assert (post.allowed, post.outcome, post.shadow) == (False, "deny", None)
    assert post.reasons == ("flow.egress_after_sensitive_read",)
    assert decisions(world)[-1]["details"]["decision"] == "deny"
    # the twin: a request of the same task denied by its scope alone is a shadow allow
    let = world.ask(agent, trial.token, "delete")
    assert let.shadow == Shadow(("scope.action",), ("playbook:trial",))
    assert world.task(task_id).calls_used == 2  # the read and the shadow allow

    # risk.high: a detection scores another task of the trial at 60
    risky = world.open(agent, playbook="trial")
    scores = RiskScores(half_life=3600)
    scores.add(risky.task.task_id, None, 60, world.clock.now())
    deployment.risk.put(scores, 10**9)
    kept = world.ask(agent, risky.token, "write", "wiki/status", SLACK)
    assert (kept.allowed, kept.reasons, kept.shadow) == (False, ("risk.high",), None)
    # the twin: the same task's scope deny is a shadow allow, its internal read allowed
    assert world.ask(agent, risky.token, "delete").outcome == "shadow"
    assert world.ask(agent, risky.token).outcome == "allow"
    # and a task of the trial with no detection posts outside
    calm = world.open(agent, playbook="trial")
    assert world.ask(agent, calm.token, "write", "wiki/status", SLACK).outcome == "allow"
