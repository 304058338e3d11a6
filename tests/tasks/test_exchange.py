"""Token exchange (RFC 8693) in the tasks core: delegation and tasks for a verified person.

The attack table of issue 5: every attack is refused with its reason, and its
legitimate twin (the same exchange or request with the one fact put right) is granted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.identity.attestors.cases import FixedClock
from tests.tasks.conftest import (
    ADMIN,
    AGENT,
    FINANCE,
    ISSUER,
    OUTSIDER,
    PEER,
    PLAYBOOK_DOC,
    SLACK,
    TD,
    WIKI,
    Agent,
    World,
    details,
)
from zerolane.config import (
    CONFIG_NAME,
    Config,
    JwtIssuerConfig,
    TasksConfig,
    UsersConfig,
    render_config,
)
from zerolane.errors import (
    Forbidden,
    InvalidInput,
    Refusal,
    Unauthenticated,
    Unavailable,
    ZerolaneError,
)
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.identity.keyring import Keyring
from zerolane.policy.defaults import DEFAULT_POLICY_DIR, install_defaults
from zerolane.server.deployment import Deployment
from zerolane.store.records import TaskRecord
from zerolane.tasks.exchange import Exchanged
from zerolane.tasks.lifecycle import TaskLifecycle
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc8693 import (
    ACCESS_TOKEN_TYPE,
    GRANT_TYPE,
    ID_TOKEN_TYPE,
    JWT_TYPE,
    ExchangeRequest,
    parse_exchange_form,
)
from zerolane.tokens.rfc9068 import verify_task_token
from zerolane.types import TaskState, WorkloadStatus

TOKEN_URL = f"https://cp.{TD}/v1/token"
HELPER = f"spiffe://{TD}/agents/helper"
IDP = "https://idp.example.org"
ID_AUDIENCE = "zerolane-prod"

TEAM_DOC: dict[str, Any] = {**PLAYBOOK_DOC, "name": "team", "delegable": True, "max_depth": 2}


@pytest.fixture
def team(world: World) -> World:
    """The world with the delegable ``team`` playbook (max_depth 2)."""
    world.deployment.playbooks.apply(parse_playbook(TEAM_DOC, "tests/tasks"), ADMIN)
    return world


def exchange(
    world: World,
    parent: Agent,
    parent_token: str,
    delegate: Agent,
    asked: list[Any] | None = None,
    *,
    proof_key: ec.EllipticCurvePrivateKey | None = None,
    proof: str | None = "fresh",
    **options: Any,
) -> Exchanged:
    """``parent`` delegates part of the task of ``parent_token`` to ``delegate``, proving
    possession of ``proof_key`` (by default the parent's own key)."""
    request = ExchangeRequest(
        subject_token=parent_token,
        subject_token_type=ACCESS_TOKEN_TYPE,
        actor_token=delegate.svid,
        actor_token_type=JWT_TYPE,
        authorization_details=asked,
        **options,
    )
    if proof == "fresh":
        proof = world.proof(proof_key or parent.key, "POST", TOKEN_URL, parent_token)
    return world.deployment.exchange.exchange(request, proof, url=TOKEN_URL)


def refused(kind: type[ZerolaneError], reason: str, call: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(kind) as caught:
        call(*args, **kw)
    assert caught.value.reason == reason, caught.value


def read(world: World, holder: Agent, token: str, **kw: Any) -> list[str]:
    """Decide an in-scope read under ``token``: [] when allowed, else the reasons."""
    decision = world.ask(holder, token, **kw)
    return [] if decision.allowed else list(decision.reasons)


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


# ---- the granted path ----------------------------------------------------------------------


def test_a_child_is_a_narrower_task_bound_to_the_delegate(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, details(actions=["read", "write"]), playbook="team", max_calls=10)
    child = exchange(
        team,
        agent,
        parent.token,
        helper,
        details(actions=["read"], identifier="finance/q3", locations=[FINANCE]),
        ttl=60,
        max_calls=4,
        intent="Read the Q3 figures",
    )
    task = child.task
    assert (task.owner, task.parent_id, task.depth) == (PEER, parent.task.task_id, 1)
    assert (task.jkt, task.max_calls, task.intent) == (helper.jkt, 4, "Read the Q3 figures")
    assert task.expires_at == int(team.clock.now()) + 60
    assert json.loads(task.scope) == {
        "actions": ["read"],
        "resources": ["finance/q3"],
        "destinations": [FINANCE],
        "ceiling": "confidential",
    }
    # the budget is carved out of the parent's
    assert team.task(parent.task.task_id).max_calls == 6

    verified = verify_task_token(
        child.token,
        team.deployment.keyring.public_keys(),
        issuer=ISSUER,
        audience=ISSUER,
        now=team.clock.now(),
    )
    assert verified.subject == verified.client_id == PEER
    assert verified.jkt == helper.jkt
    assert verified.task_id == task.task_id
    assert verified.act == {"sub": PEER, "act": {"sub": AGENT}}
    assert [a.sub for a in verified.actors] == [PEER, AGENT]

    # the delegate uses it with its own key; the parent keeps working
    assert read(team, helper, child.token) == []
    assert read(team, agent, parent.token) == []
    assert team.task(task.task_id).calls_used == 1


def test_an_exchange_with_nothing_asked_inherits_the_parents_scope(
    team: World, agent: Agent
) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, details(actions=["read"]), playbook="team", max_calls=5, ttl=120)
    child = exchange(team, agent, parent.token, helper)
    assert child.task.scope == parent.task.scope
    assert child.task.intent == parent.task.intent
    assert child.task.max_calls == 5  # all the parent had left
    assert child.task.expires_at == parent.task.expires_at
    assert child.task.audience == parent.task.audience
    assert team.task(parent.task.task_id).max_calls == 0


def test_a_grandchild_nests_the_whole_chain(team: World, agent: Agent) -> None:
    helper, third = team.agent(PEER), team.agent(HELPER)
    parent = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, parent.token, helper, max_calls=5)
    grandchild = exchange(team, helper, child.token, third, max_calls=2)
    assert claims(grandchild.token)["act"] == {
        "sub": HELPER,
        "act": {"sub": PEER, "act": {"sub": AGENT}},
    }
    assert (grandchild.task.depth, grandchild.task.parent_id) == (2, child.task.task_id)
    assert team.task(child.task.task_id).max_calls == 3
    assert read(team, third, grandchild.token) == []


def test_every_exchange_is_audited_without_tokens(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=4)
    child = exchange(team, agent, parent.token, helper, max_calls=2)
    with pytest.raises(Forbidden):
        exchange(team, agent, parent.token, helper, max_calls=3)
    granted, denied = team.events("task.delegate")
    assert (granted["outcome"], granted["subject"]) == ("success", child.task.task_id)
    assert granted["actor"]["id"] == AGENT
    assert granted["details"]["parent_id"] == parent.task.task_id
    assert granted["details"]["delegate"] == PEER
    assert granted["details"]["act"] == [PEER, AGENT]
    assert granted["details"]["parent_calls_left"] == 2
    assert (denied["outcome"], denied["reason"]) == ("denied", "delegation.budget")
    assert denied["details"]["delegate"] == PEER
    text = json.dumps(team.events())
    for token in (parent.token, child.token, helper.svid):
        assert token not in text
        assert token.split(".")[2] not in text


# ---- the attack table ----------------------------------------------------------------------


WIDER = [
    # (what the parent has, what the child asks for, the reason, the twin that fits)
    (
        details(actions=["read"]),
        details(actions=["read", "write"]),
        "scope.action",
        details(actions=["read"]),
    ),
    (
        details(identifier="finance/q3"),
        details(identifier="finance/*"),
        "scope.resource",
        details(identifier="finance/q3"),
    ),
    (
        details(locations=[FINANCE]),
        details(locations=[FINANCE, SLACK]),
        "scope.destination",
        details(locations=[FINANCE]),
    ),
    (
        details(datatypes=["internal"]),
        details(datatypes=["confidential"]),
        "scope.sensitivity",
        details(datatypes=["public", "internal"]),
    ),
]


@pytest.mark.parametrize(("granted", "wider", "reason", "twin"), WIDER)
def test_a_child_wider_than_its_parent_is_refused(
    team: World,
    agent: Agent,
    granted: list[Any],
    wider: list[Any],
    reason: str,
    twin: list[Any],
) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, granted, playbook="team", max_calls=10)
    refused(Forbidden, reason, exchange, team, agent, parent.token, helper, wider, max_calls=1)
    assert team.deployment.stores.list_children(parent.task.task_id) == []
    assert team.task(parent.task.task_id).max_calls == 10  # nothing carved
    assert exchange(team, agent, parent.token, helper, twin, max_calls=1)


def test_a_child_for_an_audience_its_parent_lacks_is_refused(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", audience=["https://gw.example.org"])
    refused(
        Forbidden,
        "scope.audience",
        exchange,
        team,
        agent,
        parent.token,
        helper,
        audience=("https://other-gw.example.org",),
    )
    child = exchange(team, agent, parent.token, helper, audience=("https://gw.example.org",))
    assert child.task.audience == (ISSUER, "https://gw.example.org")


def test_a_child_deeper_than_max_depth_is_refused(team: World, agent: Agent) -> None:
    b, c, d = team.agent(PEER), team.agent(HELPER), team.agent(f"spiffe://{TD}/agents/d")
    root = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, root.token, b, max_calls=6)
    grandchild = exchange(team, b, child.token, c, max_calls=3)  # depth 2 = max_depth: twin
    refused(Forbidden, "delegation.depth", exchange, team, c, grandchild.token, d, max_calls=1)


def test_a_child_outliving_its_parent_is_refused(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", ttl=100)
    team.clock.t += 10
    refused(Forbidden, "delegation.ttl", exchange, team, agent, parent.token, helper, ttl=91)
    child = exchange(team, agent, parent.token, helper, ttl=90, max_calls=1)
    assert child.task.expires_at == parent.task.expires_at


def test_a_child_asking_more_calls_than_the_parent_has_left_is_refused(
    team: World, agent: Agent
) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=5)
    assert read(team, agent, parent.token) == []  # one spent: four left
    refused(
        Forbidden, "delegation.budget", exchange, team, agent, parent.token, helper, max_calls=5
    )
    child = exchange(team, agent, parent.token, helper, max_calls=4)
    assert child.task.max_calls == 4
    # everything is committed: the parent has no call left, nor anything to delegate
    assert read(team, agent, parent.token) == ["task.budget_exhausted"]
    refused(Forbidden, "delegation.budget", exchange, team, agent, parent.token, helper)


def test_concurrent_exchanges_never_over_commit_the_parent(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    proofs = [team.proof(agent.key, "POST", TOKEN_URL, parent.token) for _ in range(8)]
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(proof: str) -> None:
        barrier.wait()
        try:
            exchange(team, agent, parent.token, helper, proof=proof, max_calls=3)
            outcome = "granted"
        except Forbidden as err:
            outcome = err.reason
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(p,)) for p in proofs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["delegation.budget"] * 5 + ["granted"] * 3
    assert team.task(parent.task.task_id).max_calls == 1
    assert len(team.deployment.stores.list_children(parent.task.task_id)) == 3


def test_a_task_of_a_playbook_that_is_not_delegable_cannot_be_delegated(
    team: World, agent: Agent
) -> None:
    helper = team.agent(PEER)
    plain = team.open(agent)  # "reports": delegable is false
    refused(Forbidden, "delegation.not_delegable", exchange, team, agent, plain.token, helper)
    assert exchange(team, agent, team.open(agent, playbook="team").token, helper)


def test_a_playbook_made_non_delegable_stops_delegation_at_once(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    assert exchange(team, agent, parent.token, helper, max_calls=1)
    undelegable = {**TEAM_DOC, "delegable": False, "max_depth": 0}
    team.deployment.playbooks.apply(parse_playbook(undelegable, "t"), ADMIN)
    refused(Forbidden, "delegation.not_delegable", exchange, team, agent, parent.token, helper)


def test_a_stolen_parent_token_without_the_parents_key_mints_nothing(
    team: World, agent: Agent
) -> None:
    helper = team.agent(PEER)
    thief = ec.generate_private_key(ec.SECP256R1())
    parent = team.open(agent, playbook="team", max_calls=10)
    for key in (thief, helper.key):  # an outsider's key, or the delegate's own
        refused(
            Unauthenticated,
            "dpop.key_mismatch",
            exchange,
            team,
            agent,
            parent.token,
            helper,
            proof_key=key,
        )
    refused(
        Unauthenticated, "dpop.missing", exchange, team, agent, parent.token, helper, proof=None
    )
    assert team.deployment.stores.list_children(parent.task.task_id) == []
    # refused before the holder was authenticated: raised unaudited, with what verified
    # (the edge records it as token.refused, at a bounded rate: anyone can send these)
    assert team.events("task.delegate") == []
    with pytest.raises(Unauthenticated) as caught:
        exchange(team, agent, parent.token, helper, proof_key=thief)
    assert not caught.value.audited
    assert caught.value.verified is not None
    assert caught.value.verified["task_id"] == parent.task.task_id
    # the twin: the parent proving its own key
    assert exchange(team, agent, parent.token, helper, max_calls=1)
    # a refusal once the holder is authenticated is the core's to audit, and says so
    with pytest.raises(Forbidden) as over:
        exchange(team, agent, parent.token, helper, max_calls=100)
    assert over.value.audited
    assert [e["reason"] for e in team.events("task.delegate") if e["outcome"] == "denied"] == [
        "delegation.budget"
    ]


def test_a_replayed_exchange_proof_is_refused(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    proof = team.proof(agent.key, "POST", TOKEN_URL, parent.token)
    assert exchange(team, agent, parent.token, helper, proof=proof, max_calls=1)
    refused(
        Unauthenticated,
        "dpop.replayed",
        exchange,
        team,
        agent,
        parent.token,
        helper,
        proof=proof,
        max_calls=1,
    )


def test_a_proof_for_another_token_or_url_is_refused(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    other = team.open(agent, playbook="team", max_calls=10)
    wrong_token = team.proof(agent.key, "POST", TOKEN_URL, other.token)
    wrong_url = team.proof(agent.key, "POST", f"https://cp.{TD}/v1/tasks", parent.token)
    for proof, reason in ((wrong_token, "dpop.ath"), (wrong_url, "dpop.htu")):
        refused(Unauthenticated, reason, exchange, team, agent, parent.token, helper, proof=proof)


def test_a_child_token_presented_with_the_parents_key_is_refused(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, parent.token, helper, max_calls=3)
    decision = team.ask(agent, child.token)  # the parent's key signs the proof
    assert (decision.allowed, decision.reasons, decision.refusal) == (
        False,
        ("dpop.key_mismatch",),
        Refusal.UNAUTHENTICATED,
    )
    assert read(team, helper, child.token) == []


def test_a_child_cannot_pose_as_its_parent(team: World, agent: Agent) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, parent.token, helper, max_calls=3)
    # neither complete the parent, nor delegate from the parent's token without its key
    refused(
        Forbidden,
        "task.not_yours",
        team.deployment.lifecycle.complete,
        parent.task.task_id,
        PEER,
        child.task.task_id,
    )
    refused(
        Unauthenticated,
        "dpop.key_mismatch",
        exchange,
        team,
        agent,
        parent.token,
        helper,
        proof_key=helper.key,
    )


@pytest.mark.parametrize("delegate_id", [AGENT, PEER])
def test_a_child_inherits_what_its_parent_already_read(
    team: World, agent: Agent, delegate_id: str
) -> None:
    """Regression: a child started untouched, so a task that had read confidential data
    could delegate (even to itself) and post it outside through the child."""
    delegate = agent if delegate_id == AGENT else team.agent(delegate_id)
    post_slack = {"action": "write", "resource": "wiki/status", "destination": SLACK}
    # the twin: a child of an untouched parent may post outside
    clean = team.open(agent, playbook="team", max_calls=10)
    clean_child = exchange(team, agent, clean.token, delegate, max_calls=2)
    assert read(team, delegate, clean_child.token, **post_slack) == []

    parent = team.open(agent, playbook="team", max_calls=10)
    assert read(team, agent, parent.token, sensitivity="confidential") == []
    assert read(team, agent, parent.token, **post_slack) == ["flow.egress_after_sensitive_read"]
    child = exchange(team, agent, parent.token, delegate, max_calls=2)
    assert child.task.touched == team.task(parent.task.task_id).touched
    assert read(team, delegate, child.token, **post_slack) == ["flow.egress_after_sensitive_read"]
    assert read(team, delegate, child.token) == []  # an internal read still works


def test_a_sensitive_read_anywhere_in_a_tree_stops_egress_in_the_whole_tree(
    team: World, agent: Agent
) -> None:
    post_slack = {"action": "write", "resource": "wiki/status", "destination": SLACK}
    parent = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, parent.token, agent, max_calls=4)  # made before the read
    assert read(team, agent, child.token, **post_slack) == []  # the twin: nothing read yet
    assert read(team, agent, parent.token, sensitivity="confidential") == []
    assert read(team, agent, child.token, **post_slack) == ["flow.egress_after_sensitive_read"]
    other = team.open(agent, playbook="team", max_calls=10)
    reader = exchange(team, agent, other.token, agent, max_calls=4)
    assert read(team, agent, other.token, **post_slack) == []  # cached by the decider
    assert read(team, agent, reader.token, sensitivity="confidential") == []
    assert read(team, agent, other.token, **post_slack) == ["flow.egress_after_sensitive_read"]
    # the twin: a task of another tree is untouched by it
    unrelated = team.open(agent, playbook="team", max_calls=10)
    assert read(team, agent, unrelated.token, **post_slack) == []


def test_a_delegate_that_is_not_an_opener_of_the_playbook_is_refused(
    team: World, agent: Agent
) -> None:
    robot = team.agent(OUTSIDER)
    parent = team.open(agent, playbook="team", max_calls=10)
    refused(Forbidden, "grant.no_permit", exchange, team, agent, parent.token, robot)
    assert exchange(team, agent, parent.token, team.agent(PEER), max_calls=1)


def test_a_disabled_or_unbound_delegate_is_refused(team: World, agent: Agent) -> None:
    parent = team.open(agent, playbook="team", max_calls=10)
    unbound = team.agent(HELPER, bound=False)
    refused(Unauthenticated, "svid.unbound", exchange, team, agent, parent.token, unbound)
    helper = team.agent(PEER)
    team.deployment.registry.set_status(PEER, WorkloadStatus.DISABLED, actor=ADMIN)
    refused(Forbidden, "workload.disabled", exchange, team, agent, parent.token, helper)


@pytest.mark.parametrize("end", ["completed", "revoked", "expired"])
def test_no_child_from_a_parent_that_has_ended(team: World, agent: Agent, end: str) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10, ttl=60)
    if end == "completed":
        team.deployment.lifecycle.complete(parent.task.task_id, AGENT, parent.task.task_id)
    elif end == "revoked":
        team.deployment.lifecycle.revoke(parent.task.task_id, actor=ADMIN)
    else:
        team.clock.t += 60
    # an expired parent token fails verification itself, after the leeway
    reason = f"task.{end}"
    refused(Forbidden, reason, exchange, team, agent, parent.token, helper, max_calls=1)


def test_a_parent_found_expired_by_an_exchange_is_recorded_expired(
    team: World, agent: Agent
) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10, ttl=60)
    team.clock.t += 60
    refused(Forbidden, "task.expired", exchange, team, agent, parent.token, helper, max_calls=1)
    assert team.task(parent.task.task_id).state is TaskState.EXPIRED
    assert [e["subject"] for e in team.events("task.expired")] == [parent.task.task_id]
    team.clock.t -= 10  # the clock steps back inside the window: still refused
    refused(Forbidden, "task.expired", exchange, team, agent, parent.token, helper, max_calls=1)
    assert team.stores.list_children(parent.task.task_id) == []


def test_a_child_that_cannot_be_audited_is_not_stored_nor_carved(
    team: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the child was stored (and the parent carved) before its
    ``task.delegate`` event; an audit failure, or a crash, between the two left a child
    with no event (or a revoked one)."""
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    proof = team.proof(agent.key, "POST", TOKEN_URL, parent.token)  # before the outage

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(team.stores, "append_events", down)
    refused(
        Unavailable,
        "audit.write",
        exchange,
        team,
        agent,
        parent.token,
        helper,
        proof=proof,
        max_calls=4,
    )
    monkeypatch.undo()
    assert team.stores.list_children(parent.task.task_id) == []
    assert team.task(parent.task.task_id).max_calls == 10  # nothing carved
    child = exchange(team, agent, parent.token, helper, max_calls=4)  # the twin
    assert team.task(parent.task.task_id).max_calls == 6
    [event] = [e for e in team.events("task.delegate") if e["outcome"] == "success"]
    assert event["subject"] == child.task.task_id
    assert event["details"]["parent_calls_left"] == 6


# ---- cascading revocation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "reason"), [("complete", "parent.completed"), ("revoke", "parent.revoked")]
)
def test_a_live_child_is_denied_once_its_parent_ended(
    team: World, agent: Agent, end: str, reason: str
) -> None:
    helper = team.agent(PEER)
    parent = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, parent.token, helper, max_calls=3)
    assert read(team, helper, child.token) == []  # the twin: before the parent ends
    lifecycle = team.deployment.lifecycle
    if end == "complete":
        ended = lifecycle.complete(parent.task.task_id, AGENT, parent.task.task_id)
    else:
        ended = lifecycle.revoke(parent.task.task_id, actor=ADMIN)
    assert ended.task_id == parent.task.task_id
    stored = team.task(child.task.task_id)
    assert (stored.state, stored.end_reason) == (TaskState.REVOKED, reason)
    assert read(team, helper, child.token) == ["task.revoked"]
    revoked = [e for e in team.events("task.revoked") if e["subject"] == child.task.task_id]
    assert revoked[0]["reason"] == reason
    assert revoked[0]["details"]["ended_with"] == parent.task.task_id


def test_a_grandchild_is_denied_when_the_root_is_revoked(team: World, agent: Agent) -> None:
    b, c = team.agent(PEER), team.agent(HELPER)
    root = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, root.token, b, max_calls=6)
    grandchild = exchange(team, b, child.token, c, max_calls=3)
    assert read(team, c, grandchild.token) == []
    team.deployment.lifecycle.revoke(root.task.task_id, actor=ADMIN)
    for holder, token in ((agent, root.token), (b, child.token), (c, grandchild.token)):
        assert read(team, holder, token) == ["task.revoked"]


def test_ending_a_child_leaves_its_parent_and_siblings_alone(team: World, agent: Agent) -> None:
    b, c = team.agent(PEER), team.agent(HELPER)
    root = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, root.token, b, max_calls=4)
    sibling = exchange(team, agent, root.token, c, max_calls=4)
    grandchild = exchange(team, b, child.token, c, max_calls=2)
    team.deployment.lifecycle.complete(child.task.task_id, PEER, child.task.task_id)
    assert read(team, c, grandchild.token) == ["task.revoked"]
    assert read(team, agent, root.token) == []
    assert read(team, c, sibling.token) == []


def test_the_hook_hears_every_ended_task_after_it_is_stored(team: World, agent: Agent) -> None:
    heard: list[list[TaskRecord]] = []
    deployment = team.deployment

    def on_ended(tasks: Sequence[TaskRecord]) -> None:
        assert all(deployment.stores.get_task(t.task_id) == t for t in tasks)  # stored first
        heard.append(list(tasks))

    lifecycle = TaskLifecycle(
        trust_domain=TD,
        keyring=deployment.keyring,
        tasks=deployment.stores,
        playbooks=deployment.playbooks,
        engine=deployment.policies.get,
        audit=deployment.audit,
        clock=team.clock,
        on_ended=on_ended,
    )
    b, c = team.agent(PEER), team.agent(HELPER)
    root = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, root.token, b, max_calls=4)
    grandchild = exchange(team, b, child.token, c, max_calls=2)
    lifecycle.revoke(root.task.task_id, actor=ADMIN, reason="incident")
    [tasks] = heard
    assert [(t.task_id, t.state, t.end_reason) for t in tasks] == [
        (root.task.task_id, TaskState.REVOKED, "incident"),
        (child.task.task_id, TaskState.REVOKED, "parent.revoked"),
        (grandchild.task.task_id, TaskState.REVOKED, "parent.revoked"),
    ]


def test_the_tree_lists_a_task_and_its_descendants_depth_first(team: World, agent: Agent) -> None:
    b, c = team.agent(PEER), team.agent(HELPER)
    root = team.open(agent, playbook="team", max_calls=10)
    child = exchange(team, agent, root.token, b, max_calls=4)
    team.clock.t += 1
    sibling = exchange(team, agent, root.token, c, max_calls=1)
    grandchild = exchange(team, b, child.token, c, max_calls=2)
    tree = team.deployment.lifecycle.tree(root.task.task_id)
    assert [t.task_id for t in tree] == [
        root.task.task_id,
        child.task.task_id,
        grandchild.task.task_id,
        sibling.task.task_id,
    ]
    assert [t.task_id for t in team.deployment.lifecycle.tree(child.task.task_id)] == [
        child.task.task_id,
        grandchild.task.task_id,
    ]
    limited = team.deployment.lifecycle.tree(root.task.task_id, limit=2)
    assert [t.task_id for t in limited] == [root.task.task_id, child.task.task_id]


# ---- on behalf of a person -----------------------------------------------------------------


class Idp:
    """An OpenID provider: its signing key, its JWKS file, ID tokens."""

    def __init__(self, clock: FixedClock, issuer: str = IDP) -> None:
        self.clock = clock
        self.issuer = issuer
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = {**ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": "idp-1"}

    def id_token(self, sub: str = "alice", typ: str | None = None, **changes: Any) -> str:
        now = int(self.clock.now())
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": ID_AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "email": f"{sub}@example.org",
            **changes,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        headers = {"kid": "idp-1", **({"typ": typ} if typ is not None else {})}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=headers)


@pytest.fixture
def people(tmp_path: Path) -> Iterator[tuple[World, Idp]]:
    """A world whose config trusts one OpenID provider for ID tokens."""
    clock = FixedClock()
    idp = Idp(clock)
    home = tmp_path / "people"
    ensure_private_dir(home)
    Keyring(home / "keys", clock).create()
    write_private(home / "idp.json", json.dumps({"keys": [idp.jwk]}).encode())
    config = Config(
        trust_domain=TD,
        store_url="memory://",
        tasks=TasksConfig(internal_destinations=(TD, f"*.{TD}")),
        users=UsersConfig(
            (
                JwtIssuerConfig(
                    name="idp",
                    issuer=IDP,
                    audience=ID_AUDIENCE,
                    jwks_file="idp.json",
                    algorithms=("ES256",),
                ),
            )
        ),
    )
    install_defaults(home / config.policy_dir)
    write_private(home / CONFIG_NAME, render_config(config).encode())
    deployment = Deployment.open(home, clock)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK_DOC, "t"), ADMIN)
    deployment.playbooks.apply(parse_playbook(TEAM_DOC, "t"), ADMIN)
    world = World(deployment, clock)
    yield world, idp
    deployment.close()


def for_user(
    world: World,
    agent: Agent,
    id_token: str,
    *,
    playbook: str | None = "reports",
    intent: str | None = "Summarize Q3 for Alice",
    proof_key: ec.EllipticCurvePrivateKey | None = None,
    **options: Any,
) -> Exchanged:
    request = ExchangeRequest(
        subject_token=id_token,
        subject_token_type=ID_TOKEN_TYPE,
        actor_token=agent.svid,
        actor_token_type=JWT_TYPE,
        playbook=playbook,
        intent=intent,
        **options,
    )
    proof = world.proof(proof_key or agent.key, "POST", TOKEN_URL, agent.svid)
    return world.deployment.exchange.exchange(request, proof, url=TOKEN_URL)


def test_an_agent_opens_a_task_for_a_verified_person(people: tuple[World, Idp]) -> None:
    world, idp = people
    agent = world.agent(AGENT)
    opened = for_user(world, agent, idp.id_token("alice"), max_calls=3)
    task = opened.task
    assert (task.owner, task.jkt, task.depth, task.parent_id) == (AGENT, agent.jkt, 0, None)
    assert (task.user_subject, task.user_issuer) == ("alice", IDP)
    token = claims(opened.token)
    assert token["sub"] == token["client_id"] == AGENT  # the holder, proven by cnf.jkt
    assert token["act"] == {"sub": AGENT, "act": {"sub": "alice", "iss": IDP}}
    assert read(world, agent, opened.token) == []
    [event] = world.events("task.opened")
    assert event["details"]["user"] == {"subject": "alice", "issuer": IDP}


def test_a_persons_task_delegates_with_the_person_kept(people: tuple[World, Idp]) -> None:
    world, idp = people
    agent, helper = world.agent(AGENT), world.agent(PEER)
    opened = for_user(world, agent, idp.id_token("alice"), playbook="team", max_calls=5)
    child = exchange(world, agent, opened.token, helper, max_calls=2)
    assert (child.task.user_subject, child.task.user_issuer) == ("alice", IDP)
    assert claims(child.token)["act"] == {
        "sub": PEER,
        "act": {"sub": AGENT, "act": {"sub": "alice", "iss": IDP}},
    }


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://evil.example.net"}, "id_token.unknown_issuer"),
        ({"aud": "someone-else"}, "id_token.audience"),
        ({"exp": 1_800_000_000 - 1}, "id_token.expired"),
        ({"exp": None}, "id_token.claims"),
        ({"sub": None}, "id_token.subject"),
        ({"sub": ""}, "id_token.subject"),
    ],
)
def test_an_id_token_that_proves_no_person_here_is_refused(
    people: tuple[World, Idp], changes: dict[str, Any], reason: str
) -> None:
    world, idp = people
    agent = world.agent(AGENT)
    refused(Unauthenticated, reason, for_user, world, agent, idp.id_token(**changes))
    [event] = world.events("task.open")
    assert (event["reason"], event["actor"]["id"]) == (reason, AGENT)
    assert for_user(world, agent, idp.id_token())  # the twin


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+JWT", "dpop+jwt", "logout+jwt"])
def test_an_access_token_of_the_idp_is_no_id_token(people: tuple[World, Idp], typ: str) -> None:
    """An OAuth access token (RFC 9068 ``typ: at+jwt``) or any other explicitly typed
    JWT of the same issuer and audience does not prove a person's login."""
    world, idp = people
    agent = world.agent(AGENT)
    refused(Unauthenticated, "id_token.typ", for_user, world, agent, idp.id_token(typ=typ))
    assert for_user(world, agent, idp.id_token(typ="JWT"))  # the twins: plain JWTs
    assert for_user(world, agent, idp.id_token())


def test_an_id_token_signed_by_another_key_is_refused(people: tuple[World, Idp]) -> None:
    world, _ = people
    forger = Idp(world.clock)
    agent = world.agent(AGENT)
    refused(Unauthenticated, "id_token.signature", for_user, world, agent, forger.id_token())


def test_an_id_token_alone_opens_nothing_without_the_agents_key(
    people: tuple[World, Idp],
) -> None:
    world, idp = people
    agent = world.agent(AGENT)
    thief = ec.generate_private_key(ec.SECP256R1())
    refused(
        Unauthenticated,
        "dpop.key_mismatch",
        for_user,
        world,
        agent,
        idp.id_token(),
        proof_key=thief,
    )


def test_no_issuer_configured_means_no_task_for_a_person(world: World, agent: Agent) -> None:
    idp = Idp(world.clock)
    refused(Unauthenticated, "id_token.unknown_issuer", for_user, world, agent, idp.id_token())


def test_a_persons_task_still_needs_a_playbook_and_an_intent(people: tuple[World, Idp]) -> None:
    world, idp = people
    agent = world.agent(AGENT)
    refused(InvalidInput, "exchange.missing", for_user, world, agent, idp.id_token(), playbook=None)
    refused(InvalidInput, "exchange.missing", for_user, world, agent, idp.id_token(), intent=None)


def test_a_persons_task_is_refused_when_wider_than_its_playbook(
    people: tuple[World, Idp],
) -> None:
    world, idp = people
    agent = world.agent(AGENT)
    asked = details(actions=["delete"])
    refused(
        Forbidden,
        "scope.action",
        for_user,
        world,
        agent,
        idp.id_token(),
        authorization_details=asked,
    )


# ---- the free-text on_behalf_of is never trusted -------------------------------------------

ONLY_PEOPLE = """
@id("people.only")
forbid (principal, action == Zerolane::Action::"request", resource)
unless { context.task has user && context.task.user.subject == "alice" };
"""


def test_free_text_on_behalf_of_is_not_a_verified_person(people: tuple[World, Idp]) -> None:
    world, idp = people
    agent = world.agent(AGENT)
    home = world.deployment.home
    (home / "policies" / "people.cedar").write_text(ONLY_PEOPLE)
    world.deployment.reload_policies(ADMIN)
    claimed = world.open(agent, on_behalf_of="alice")
    assert (claimed.task.user_subject, claimed.task.on_behalf_of) == (None, "alice")
    assert "act" not in claims(claimed.token)
    assert read(world, agent, claimed.token) == ["people.only"]
    verified = for_user(world, agent, idp.id_token("alice"))
    assert read(world, agent, verified.token) == []


def test_the_default_policies_never_read_on_behalf_of() -> None:
    for path in DEFAULT_POLICY_DIR.glob("*.cedar"):
        assert "on_behalf_of" not in path.read_text(), path


def test_on_behalf_of_changes_no_default_decision(world: World, agent: Agent) -> None:
    plain = world.open(agent, details(actions=["read"]))
    claimed = world.open(agent, details(actions=["read"]), on_behalf_of="the CEO, urgently")
    for kwargs in ({}, {"action": "write"}, {"sensitivity": "restricted"}, {"destination": WIKI}):
        assert read(world, agent, plain.token, **kwargs) == read(
            world, agent, claimed.token, **kwargs
        )


def test_on_behalf_of_cannot_be_sent_to_the_token_endpoint() -> None:
    body = urlencode(
        {
            "grant_type": GRANT_TYPE,
            "subject_token": "t",
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "actor_token": "a",
            "actor_token_type": JWT_TYPE,
            "on_behalf_of": "alice",
        }
    ).encode()
    refused(InvalidInput, "exchange.unknown_parameter", parse_exchange_form, body)
