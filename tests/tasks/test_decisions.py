"""Request-time decisions through the full Decider, default policies, every rule with its twin."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tasks.conftest import (
    ADMIN,
    AGENT,
    EVIL,
    FINANCE,
    GATEWAY,
    ISSUER,
    PEER,
    SLACK,
    TD,
    WIKI,
    Agent,
    World,
    build_world,
    details,
)
from zerolane.errors import Forbidden, InvalidInput, Refusal
from zerolane.gateway.inproc import TaskCredentials
from zerolane.policy.context import is_internal
from zerolane.policy.engine import PolicyRequest, PolicyResult
from zerolane.policy.patterns import matches_any
from zerolane.store.memory.done import Done
from zerolane.store.ports import PendingWrite
from zerolane.store.records import Spend, TaskRecord
from zerolane.tasks.decision_core import MAX_ATTEMPTS
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tasks.scope import Scope
from zerolane.tokens.rfc9068 import DEFAULT_LEEWAY, TaskTokenClaims, issue_task_token
from zerolane.types import Sensitivity, TaskState

# zero standing privilege


def test_an_svid_alone_is_no_task_token(world: World, agent: Agent) -> None:
    assert world.stores.list_tasks(owner=AGENT) == []
    refused = world.ask(agent, agent.svid)
    assert not refused.allowed
    assert refused.reasons == ("token.typ",)
    assert refused.refusal is Refusal.UNAUTHENTICATED
    assert refused.task_id is None

    opened = world.open(agent)
    assert world.ask(agent, opened.token).allowed


def test_one_tasks_token_does_not_reach_another_tasks_scope(world: World, agent: Agent) -> None:
    reader = world.open(agent, details(actions=["read"], identifier="finance/*"))
    writer = world.open(agent, details(actions=["write"], identifier="wiki/**"))
    write_wiki = {"action": "write", "resource": "wiki/q3", "destination": WIKI}

    denied = world.ask(agent, reader.token, **write_wiki)
    assert (denied.allowed, denied.task_id) == (False, reader.task.task_id)
    assert set(denied.reasons) == {"scope.action", "scope.resource"}
    allowed = world.ask(agent, writer.token, **write_wiki)
    assert (allowed.allowed, allowed.task_id) == (True, writer.task.task_id)
    assert world.task(writer.task.task_id).calls_used == 1
    assert world.task(reader.task.task_id).calls_used == 0


def test_a_request_bound_to_another_task_spends_nothing(world: World, agent: Agent) -> None:
    """An enforcement point binding a request to a task (an MCP session's) has a token of
    another task denied ``task.binding`` before anything is spent, and audited."""
    mine, other = world.open(agent), world.open(agent)
    refused = world.ask(agent, mine.token, bound_to=other.task.task_id)
    assert (refused.allowed, refused.reasons) == (False, ("task.binding",))
    assert refused.task_id == mine.task.task_id
    assert world.task(mine.task.task_id).calls_used == 0
    assert world.events("decision")[-1]["reason"] == "task.binding"
    allowed = world.ask(agent, mine.token, bound_to=mine.task.task_id)  # the twin
    assert allowed.allowed
    assert world.task(mine.task.task_id).calls_used == 1


def test_a_token_naming_another_task_is_refused(world: World, agent: Agent) -> None:
    """Even a validly signed token (a minting bug, a leaked key) that names a task it was
    not issued for is refused: the task record pins its owner and token id."""
    mine, other = world.open(agent), world.open(world.agent(PEER))
    now = int(world.clock.now())
    forged = issue_task_token(
        world.deployment.keyring.sign,
        TaskTokenClaims(
            issuer=ISSUER,
            subject=AGENT,
            audience=(ISSUER,),
            issued_at=now,
            not_before=now,
            expires_at=now + 60,
            jti=mine.task.token_jti,
            jkt=agent.jkt,
            task_id=other.task.task_id,
            authorization_details=tuple(Scope.from_json(mine.task.scope).authorization_details()),
        ),
    )
    refused = world.ask(agent, forged)
    assert refused.reasons == ("token.task_mismatch",)
    assert world.task(other.task.task_id).calls_used == 0
    assert world.ask(agent, mine.token).allowed


@pytest.mark.parametrize("end", ["complete", "revoke"])
def test_an_ended_tasks_token_is_denied(world: World, agent: Agent, end: str) -> None:
    opened = world.open(agent)
    task_id = opened.task.task_id
    assert world.ask(agent, opened.token).allowed
    lifecycle = world.deployment.lifecycle
    if end == "complete":
        lifecycle.complete(task_id, AGENT, task_id)
    else:
        lifecycle.revoke(task_id, actor=ADMIN)

    denied = world.ask(agent, opened.token)
    assert not denied.allowed
    assert denied.reasons == (f"task.{end}d",)
    assert denied.refusal is Refusal.FORBIDDEN
    assert world.task(task_id).calls_used == 1


def test_expiry_is_enforced_at_decision_time_without_a_sweeper(world: World, agent: Agent) -> None:
    opened = world.open(agent, ttl=60)
    end = opened.task.expires_at
    world.clock.t = end - 1
    assert world.ask(agent, opened.token).allowed  # just before the window ends

    world.clock.t = end
    at_end = world.ask(agent, opened.token)
    assert at_end.reasons == ("task.expired",)
    world.clock.t = end + 1  # the token itself is still within its leeway
    past = world.ask(agent, opened.token)
    assert (past.allowed, past.reasons, past.refusal) == (
        False,
        ("task.expired",),
        Refusal.FORBIDDEN,
    )
    assert world.task(opened.task.task_id).state is TaskState.EXPIRED  # the decision recorded it

    world.clock.t = end + DEFAULT_LEEWAY
    late = world.ask(agent, opened.token)
    assert (late.reasons, late.refusal) == (("token.expired",), Refusal.UNAUTHENTICATED)


# the default rules, each with its allowed twin

RULES = [
    pytest.param({"action": "delete"}, {"action": "read"}, "scope.action", id="action"),
    pytest.param(
        {"resource": "hr/salaries"}, {"resource": "finance/q4"}, "scope.resource", id="resource"
    ),
    pytest.param(
        {"resource": "finance/q3/raw"},
        {"resource": "finance/q3"},
        "scope.resource",
        id="resource-deeper",
    ),
    pytest.param(
        {"destination": EVIL}, {"destination": WIKI}, "scope.destination", id="destination"
    ),
    pytest.param(
        {"sensitivity": "restricted"},
        {"sensitivity": "confidential"},
        "scope.sensitivity",
        id="sensitivity",
    ),
]


@pytest.mark.parametrize(("attack", "twin", "reason"), RULES)
def test_each_scope_rule_denies_and_its_twin_is_allowed(
    world: World, agent: Agent, attack: dict[str, str], twin: dict[str, str], reason: str
) -> None:
    opened = world.open(agent)
    denied = world.ask(agent, opened.token, **attack)
    assert not denied.allowed
    assert denied.reasons == (reason,)
    assert denied.policies == (reason,)
    assert denied.refusal is Refusal.FORBIDDEN
    assert denied.task_id == opened.task.task_id
    assert world.task(opened.task.task_id).calls_used == 0  # a deny spends nothing

    allowed = world.ask(agent, opened.token, **twin)
    assert allowed.allowed
    assert allowed.reasons == ()
    assert allowed.policies == ("task.request",)
    assert allowed.refusal is None
    assert world.task(opened.task.task_id).calls_used == 1


def test_the_granted_scope_not_the_playbooks_decides(world: World, agent: Agent) -> None:
    opened = world.open(
        agent, details(actions=["read"], locations=[FINANCE], datatypes=["internal"])
    )
    for attack, reason in [
        ({"action": "write"}, "scope.action"),
        ({"destination": WIKI, "resource": "wiki/home"}, "scope.destination"),
        ({"sensitivity": "confidential"}, "scope.sensitivity"),
    ]:
        assert world.ask(agent, opened.token, **attack).reasons == (reason,)
    assert world.ask(agent, opened.token, sensitivity="public").allowed


def test_no_egress_after_a_confidential_read(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    token = opened.token
    post_slack = {"action": "write", "resource": "wiki/status", "destination": SLACK}
    post_slack |= {"sensitivity": "public"}

    assert world.ask(agent, token, **post_slack).allowed  # before the read: allowed
    assert world.ask(agent, token, sensitivity="internal").allowed  # not sensitive
    assert world.ask(agent, token, **post_slack).allowed
    assert world.ask(agent, token, resource="finance/ledger", sensitivity="confidential").allowed
    assert world.task(opened.task.task_id).touched == Sensitivity.CONFIDENTIAL

    denied = world.ask(agent, token, **post_slack)
    assert not denied.allowed
    assert denied.reasons == ("flow.egress_after_sensitive_read",)
    internal = world.ask(
        agent, token, action="write", resource="wiki/q3", destination=WIKI, sensitivity="public"
    )
    assert internal.allowed  # inside the trust domain it still may write

    # the rule is per task: another task of the same agent may still post outside
    fresh = world.open(agent)
    assert world.ask(agent, fresh.token, **post_slack).allowed


def test_the_budget_allows_exactly_max_calls(world: World, agent: Agent) -> None:
    opened = world.open(agent, max_calls=3)
    assert [world.ask(agent, opened.token).allowed for _ in range(3)] == [True] * 3
    fourth = world.ask(agent, opened.token)
    assert (fourth.allowed, fourth.reasons) == (False, ("task.budget_exhausted",))
    assert world.task(opened.task.task_id).calls_used == 3


def test_denied_requests_do_not_spend_the_budget(world: World, agent: Agent) -> None:
    opened = world.open(agent, max_calls=1)
    for _ in range(3):
        assert not world.ask(agent, opened.token, action="delete").allowed
    assert world.ask(agent, opened.token).allowed
    assert world.ask(agent, opened.token).reasons == ("task.budget_exhausted",)


# proof of possession, replay, audience


@pytest.mark.parametrize(
    ("method", "url", "reason"),
    [
        ("GET", f"https://{FINANCE}/finance/q4", "dpop.htu"),
        ("GET", f"https://{EVIL}/finance/q3", "dpop.htu"),
        ("DELETE", f"https://{FINANCE}/finance/q3", "dpop.htm"),
    ],
)
def test_a_proof_for_another_request_is_denied(
    world: World, agent: Agent, method: str, url: str, reason: str
) -> None:
    opened = world.open(agent)
    other = world.proof(agent.key, method, url, opened.token)
    denied = world.ask(agent, opened.token, proof=other)
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        (reason,),
        Refusal.UNAUTHENTICATED,
    )
    right = world.proof(agent.key, "GET", f"https://{FINANCE}/finance/q3", opened.token)
    assert world.ask(agent, opened.token, proof=right).allowed


def test_a_replayed_proof_is_denied(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    proof = world.proof(agent.key, "GET", f"https://{FINANCE}/finance/q3", opened.token)
    assert world.ask(agent, opened.token, proof=proof).allowed
    replayed = world.ask(agent, opened.token, proof=proof)
    assert (replayed.allowed, replayed.reasons, replayed.refusal) == (
        False,
        ("dpop.replayed",),
        Refusal.UNAUTHENTICATED,
    )
    assert world.ask(agent, opened.token).allowed  # a fresh proof
    assert world.task(opened.task.task_id).calls_used == 2


def test_a_proof_signed_by_another_key_is_denied(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    thief = ec.generate_private_key(ec.SECP256R1())
    stolen = world.proof(thief, "GET", f"https://{FINANCE}/finance/q3", opened.token)
    denied = world.ask(agent, opened.token, proof=stolen)
    assert (denied.reasons, denied.refusal) == (("dpop.key_mismatch",), Refusal.UNAUTHENTICATED)
    # the same workload, re-attested with a new key, still cannot use the old task's token
    rekeyed = world.agent(AGENT)
    assert world.ask(rekeyed, opened.token).reasons == ("dpop.key_mismatch",)
    assert world.ask(agent, opened.token).allowed


def test_a_missing_proof_is_denied(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    denied = world.deployment.decider.decide(
        opened.token, None, DecideInput("GET", f"https://{FINANCE}/finance/q3", action="read")
    )
    assert (denied.reasons, denied.refusal) == (("dpop.missing",), Refusal.UNAUTHENTICATED)


def test_a_token_for_another_audience_is_denied(world: World, agent: Agent) -> None:
    opened = world.open(agent, audience=[GATEWAY])
    denied = world.ask(agent, opened.token, audience="https://other-gw.example.org")
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("token.audience",),
        Refusal.UNAUTHENTICATED,
    )
    assert world.ask(agent, opened.token, audience=GATEWAY).allowed
    assert world.ask(agent, opened.token).allowed  # the control plane's own audience
    plain = world.open(agent)  # not issued for the gateway
    assert world.ask(agent, plain.token, audience=GATEWAY).reasons == ("token.audience",)


def test_disabling_a_workload_revokes_its_tasks(world: World, agent: Agent) -> None:
    mine, also_mine = world.open(agent), world.open(agent)
    peer = world.agent(PEER)
    theirs = world.open(peer)
    assert world.ask(agent, mine.token).allowed

    world.deployment.disable_workload(AGENT, ADMIN)
    for opened in (mine, also_mine):
        denied = world.ask(agent, opened.token)
        assert denied.reasons == ("task.revoked",)
        assert world.task(opened.task.task_id).end_reason == "workload.disabled"
    assert world.ask(peer, theirs.token).allowed  # another workload is untouched
    with pytest.raises(Forbidden) as refused:
        world.open(agent)
    assert refused.value.reason == "workload.disabled"


# request mapping


def test_a_request_maps_from_method_and_url(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    url = f"https://{FINANCE}/finance/q3?secret=1"
    proof = world.proof(agent.key, "GET", url, opened.token)
    mapped = world.deployment.decider.decide(
        opened.token, proof, DecideInput("GET", url, action="read")
    )
    assert mapped.allowed  # resource finance/q3, destination the host, sensitivity internal
    [event] = world.events("decision")
    assert event["details"]["resource"] == "finance/q3"
    assert event["details"]["destination"] == FINANCE
    assert event["details"]["sensitivity"] == "internal"
    assert event["details"]["url"] == f"https://{FINANCE}/finance/q3"  # query never logged


@pytest.mark.parametrize(
    ("path", "sensitivity", "reason"),
    [
        ("finance/../hr/salaries", None, "request.path"),
        ("finance/%2e%2e/hr", None, "request.path"),
        ("finance//q3", None, "request.path"),
        ("finance/a%2Fb", None, "request.path"),  # the gateway's rule: an encoded slash
        ("finance/q3;v=1", None, "request.path"),
        ("finance/q%2D3", None, "request.path"),  # non-canonical: an encoded unreserved
        ("finance/q3%20report", None, "request.path"),  # a resource named by its URL
        ("finance/%2A", None, "request.path"),  # holds no escape (it would sidestep a forbid)
        ("finance/q3", "secret", "request.sensitivity"),
    ],
)
def test_unmappable_requests_are_denied(
    world: World, agent: Agent, path: str, sensitivity: str | None, reason: str
) -> None:
    """A path the HTTP gateway would refuse (:func:`zerolane.paths.check_path`, the one
    rule) is refused here too, as a request that cannot be decided as sent."""
    opened = world.open(agent)
    url = f"https://{FINANCE}/{path}"
    proof = world.proof(agent.key, "GET", url, opened.token)
    denied = world.deployment.decider.decide(
        opened.token, proof, DecideInput("GET", url, action="read", sensitivity=sensitivity)
    )
    assert denied.reasons == (reason,)
    kind = Refusal.INVALID if reason == "request.path" else Refusal.FORBIDDEN
    assert denied.refusal is kind
    twin = f"https://{FINANCE}/finance/q3"
    proof = world.proof(agent.key, "GET", twin, opened.token)
    assert world.deployment.decider.decide(
        opened.token, proof, DecideInput("GET", twin, action="read")
    ).allowed


@pytest.mark.parametrize("resource", ["finance/../hr/salaries", "finance/./q3", "..", "finance/.."])
def test_a_resource_with_dot_segments_is_denied_whoever_mapped_it(
    world: World, agent: Agent, resource: str
) -> None:
    """An enforcement point may pass the resource itself (``/v1/decide``); a ``..``
    segment would let ``finance/**`` reach outside finance wherever the upstream
    normalizes paths."""
    opened = world.open(agent)
    assert world.ask(agent, opened.token, resource=resource).reasons == ("request.resource",)
    assert world.ask(agent, opened.token, resource="finance/..q3").allowed  # the twin


def test_every_decision_is_an_audit_event(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    allowed = world.ask(agent, opened.token)
    denied = world.ask(agent, opened.token, action="delete")
    stranger = world.ask(agent, "not-a-token")
    events = world.events("decision")
    assert [e["details"]["decision_id"] for e in events] == [
        allowed.decision_id,
        denied.decision_id,
        stranger.decision_id,
    ]
    assert [(e["outcome"], e["reason"]) for e in events] == [
        ("success", "ok"),
        ("denied", "scope.action"),
        ("denied", "token.malformed"),
    ]
    assert events[0]["subject"] == opened.task.task_id
    assert events[0]["actor"] == {"type": "workload", "id": AGENT}
    assert events[2]["actor"]["id"] == "unauthenticated"


# atomic budget


def test_concurrent_decisions_spend_the_budget_exactly(world: World, agent: Agent) -> None:
    opened = world.open(agent, max_calls=5)
    url = f"https://{FINANCE}/finance/q3"
    proofs = [world.proof(agent.key, "GET", url, opened.token) for _ in range(16)]
    start = threading.Barrier(len(proofs))
    results: list[bool] = []
    reasons: list[tuple[str, ...]] = []
    lock = threading.Lock()

    def run(proof: str) -> None:
        start.wait()
        decision = world.ask(agent, opened.token, proof=proof)
        with lock:
            results.append(decision.allowed)
            reasons.append(decision.reasons)

    threads = [threading.Thread(target=run, args=(p,)) for p in proofs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16
    assert results.count(True) == 5
    # a request that loses the compare-and-set MAX_ATTEMPTS times gives up (fail closed)
    assert {r for r in reasons if r} <= {("task.budget_exhausted",), ("task.contention",)}
    assert world.task(opened.task.task_id).calls_used == 5


def test_a_sensitive_read_racing_an_egress_is_seen_by_the_retry(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests pass policy against the same state; the read spends first, so the
    post's compare-and-set fails and its retry sees the read: denied, never both."""
    opened = world.open(agent)
    post_slack = {"action": "write", "resource": "wiki/status", "destination": SLACK}
    commit = world.stores.commit_decision
    raced: list[Decision] = []
    racing_now = threading.Event()

    def racing(spend: Spend, *args: Any) -> PendingWrite[TaskRecord | None]:
        if not racing_now.is_set():  # the post's spend: the read slips in before it
            racing_now.set()
            raced.append(world.ask(agent, opened.token, sensitivity="confidential"))
        return commit(spend, *args)

    monkeypatch.setattr(world.stores, "commit_decision", racing)
    post = world.ask(agent, opened.token, **post_slack)
    assert raced[0].allowed
    assert (post.allowed, post.reasons) == (False, ("flow.egress_after_sensitive_read",))
    assert world.task(opened.task.task_id).calls_used == 1

    # the twin: without a sensitive read in between, the same post goes out
    fresh = world.open(agent)
    assert world.ask(agent, fresh.token, **post_slack).allowed


def test_an_enforcement_points_details_join_the_decision_event_but_never_override_it(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent)
    url = f"https://{FINANCE}/finance/q3"
    extra = {"tool": "read_report", "decision": "allow", "reasons": [], "api_key": "s3cr3t"}
    denied = world.deployment.decider.decide(
        opened.token,
        world.proof(agent.key, "POST", url, opened.token),
        DecideInput("POST", url, action="delete", resource="finance/q3", details=extra),
    )
    assert (denied.allowed, denied.subject) == (False, AGENT)
    event = world.events("decision")[-1]["details"]
    assert event["tool"] == "read_report"
    assert (event["decision"], event["reasons"]) == ("deny", ["scope.action"])
    assert "s3cr3t" not in str(event)  # the audit log masks secret-looking fields
    # the twin: an allowed decision names its subject as well
    assert world.ask(agent, opened.token).subject == AGENT
    assert world.ask(agent, "not-a-token").subject is None


def test_a_compare_and_set_that_never_succeeds_denies(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = world.open(agent)
    attempts: list[str] = []

    def lost(spend: Spend, *args: Any) -> PendingWrite[TaskRecord | None]:
        attempts.append(spend.task_id)
        return Done(None)  # another request always spent first

    monkeypatch.setattr(world.stores, "commit_decision", lost)
    denied = world.ask(agent, opened.token)
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("task.contention",),
        Refusal.FORBIDDEN,
    )
    assert len(attempts) == MAX_ATTEMPTS
    monkeypatch.undo()
    assert world.ask(agent, opened.token).allowed


# fail closed


def test_a_decision_that_cannot_be_audited_is_denied(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = world.open(agent)

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("audit sink unreachable")

    monkeypatch.setattr(world.stores, "append_events", down)
    denied = world.ask(agent, opened.token)
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("audit.write",),
        Refusal.UNAVAILABLE,
    )
    assert world.task(opened.task.task_id).calls_used == 0  # nothing of the allow stored
    refused = world.ask(agent, opened.token, action="delete")
    assert (refused.allowed, refused.reasons, refused.refusal) == (
        False,
        ("audit.write",),
        Refusal.UNAVAILABLE,
    )
    monkeypatch.undo()
    assert world.ask(agent, opened.token).allowed
    assert world.task(opened.task.task_id).calls_used == 1


@pytest.mark.parametrize("allowed", [True, False])
def test_a_policy_engine_reporting_errors_denies(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch, allowed: bool
) -> None:
    opened = world.open(agent)

    def erroring(request: PolicyRequest) -> PolicyResult:
        return PolicyResult(allowed, ("task.request",), ("evaluation error",))

    monkeypatch.setattr(world.deployment.engine, "decide", erroring)
    denied = world.ask(agent, opened.token)
    assert (denied.allowed, denied.reasons) == (False, ("policy.error",))
    assert world.task(opened.task.task_id).calls_used == 0
    monkeypatch.undo()
    assert world.ask(agent, opened.token).allowed


def test_a_policy_engine_that_raises_denies_and_is_audited(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: an engine raising used to escape ``decide`` unaudited."""
    opened = world.open(agent)

    def raising(request: PolicyRequest) -> PolicyResult:
        raise RuntimeError("cedar crashed")

    monkeypatch.setattr(world.deployment.engine, "decide", raising)
    denied = world.ask(agent, opened.token)
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("policy.error",),
        Refusal.FORBIDDEN,
    )
    assert world.events("decision")[-1]["reason"] == "policy.error"
    monkeypatch.undo()
    assert world.ask(agent, opened.token).allowed


INVALID_POLICY = """
@id("broken")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.task.no_such_attribute == 1 };
"""
NO_WRITES = """
@id("custom.no_writes")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.action == "write" };
"""


def test_a_schema_invalid_reload_is_refused_and_the_old_set_keeps_deciding(
    world: World, agent: Agent
) -> None:
    deployment = world.deployment
    opened = world.open(agent)
    write = {"action": "write", "resource": "wiki/q3", "destination": WIKI}
    assert world.ask(agent, opened.token, **write).allowed
    assert world.ask(agent, opened.token, action="delete").reasons == ("scope.action",)
    version = deployment.engine.version
    folder = deployment.home / deployment.config.policy_dir

    (folder / "broken.cedar").write_text(INVALID_POLICY)
    with pytest.raises(InvalidInput):
        deployment.reload_policies(ADMIN)
    [event] = world.events("policy.reloaded")
    assert (event["outcome"], event["reason"]) == ("failure", "policy.invalid")
    assert event["details"]["active_version"] == version
    assert deployment.engine.version == version
    assert world.ask(agent, opened.token, **write).allowed
    assert world.ask(agent, opened.token, action="delete").reasons == ("scope.action",)

    # the twin: a valid change is swapped in and decides from the next request on
    (folder / "broken.cedar").unlink()
    (folder / "custom.cedar").write_text(NO_WRITES)
    new_version = deployment.reload_policies(ADMIN)
    assert new_version != version
    assert world.events("policy.reloaded")[-1]["outcome"] == "success"
    assert world.ask(agent, opened.token, **write).reasons == ("custom.no_writes",)
    assert world.ask(agent, opened.token).allowed


# property: no request outside the granted scope is ever allowed


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("property") / "home"
    built = build_world(home)
    yield built
    built.deployment.close()
    shutil.rmtree(home, ignore_errors=True)


GRANTABLE_RESOURCES = ["finance/*", "finance/q*", "finance/q3", "wiki/**", "wiki/team/*"]
ACTIONS = ["read", "write", "delete"]
RESOURCES = ["finance/q3", "finance/q4", "finance/ledger", "finance/q3/raw", "wiki/team/page"]
RESOURCES += ["wiki/home", "hr/salaries"]
DESTINATIONS = [FINANCE, WIKI, SLACK, EVIL]
INTERNAL = (TD, f"*.{TD}")
LABELS = [s.label for s in Sensitivity]

requests = st.lists(
    st.tuples(
        st.sampled_from(ACTIONS),
        st.sampled_from(RESOURCES),
        st.sampled_from(DESTINATIONS),
        st.sampled_from(LABELS),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(
    actions=st.lists(st.sampled_from(["read", "write"]), min_size=1, max_size=2, unique=True),
    resources=st.lists(st.sampled_from(GRANTABLE_RESOURCES), min_size=1, max_size=3, unique=True),
    destinations=st.lists(st.sampled_from([FINANCE, WIKI, SLACK]), min_size=1, unique=True),
    ceiling=st.sampled_from(LABELS[:3]),
    max_calls=st.integers(min_value=1, max_value=6),
    asked=requests,
)
def test_no_request_outside_the_granted_scope_is_ever_allowed(
    shared_world: World,
    actions: list[str],
    resources: list[str],
    destinations: list[str],
    ceiling: str,
    max_calls: int,
    asked: list[tuple[str, str, str, str]],
) -> None:
    world = shared_world
    agent = world.agents.get(AGENT) or world.agent(AGENT)
    opened = world.open(
        agent,
        details(actions=actions, resources=resources, locations=destinations, datatypes=[ceiling]),
        max_calls=max_calls,
    )
    scope = Scope.from_json(opened.task.scope)
    assert scope == Scope(
        tuple(sorted(actions)),
        tuple(sorted(resources)),
        tuple(sorted(destinations)),
        Sensitivity.parse(ceiling),
    )
    touched, used = -1, 0
    for action, resource, destination, label in asked:
        decision = world.ask(agent, opened.token, action, resource, destination, label)
        level = Sensitivity.parse(label)
        in_scope = (
            action in scope.actions
            and matches_any(scope.resources, resource)
            and destination in scope.destinations
            and level <= scope.ceiling
        )
        if decision.allowed:
            assert action in scope.actions
            assert matches_any(scope.resources, resource)
            assert destination in scope.destinations
            assert level <= scope.ceiling
            assert used < max_calls
            assert touched < Sensitivity.CONFIDENTIAL or is_internal(destination, INTERNAL)
            touched, used = max(touched, level), used + 1
        else:  # and the twin: everything in scope, in budget and not egress is allowed
            egress = touched >= Sensitivity.CONFIDENTIAL and not is_internal(destination, INTERNAL)
            assert not in_scope or used >= max_calls or egress, decision.reasons
    assert world.task(opened.task.task_id).calls_used == used
    world.deployment.lifecycle.complete(opened.task.task_id, AGENT, opened.task.task_id)


def test_a_decision_carries_the_verified_token_expiry(world: World, agent: Agent) -> None:
    """Credentials an enforcement point mints for the call may not outlive the token."""
    opened = world.open(agent)
    allowed = world.ask(agent, opened.token)
    assert allowed.allowed
    assert allowed.expires_at == opened.task.expires_at
    anonymous = world.ask(agent, "not-a-token")
    assert not anonymous.allowed
    assert anonymous.expires_at is None


def test_a_url_with_userinfo_never_reaches_the_audit_log(world: World, agent: Agent) -> None:
    """A URL carrying ``user:password@`` is refused (a proof never names one), and its
    refusal's event records the URL without it; the twin without userinfo is allowed."""
    opened = world.open(agent)
    url = f"https://reader:s3cret-pass@{FINANCE}/finance/q3"
    proof = world.proof(agent.key, "GET", f"https://{FINANCE}/finance/q3", opened.token)
    request = DecideInput(method="GET", url=url, action="read", sensitivity="internal")
    refused = world.deployment.decider.decide(opened.token, proof, request)
    assert not refused.allowed
    event = world.events("decision")[-1]
    assert "s3cret" not in json.dumps(event)
    assert event["details"]["url"] == f"https://{FINANCE}/finance/q3"
    assert world.ask(agent, opened.token).allowed


def test_task_credentials_never_show_the_token_in_their_repr() -> None:
    shown = repr(TaskCredentials("eyJ.secret-token.sig", lambda method, url: "proof"))
    assert "secret-token" not in shown
