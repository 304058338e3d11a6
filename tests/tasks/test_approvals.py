"""Human approval through the full Decider: a policy asks, an admin approves, the exact
request runs once; changed arguments, expiry, self-approval and a denial each refused,
each with its legitimate twin."""

from __future__ import annotations

import asyncio

import pytest

from tests.tasks.conftest import ADMIN, AGENT, WIKI, Agent, World
from zerolane.audit.events import Actor
from zerolane.errors import Conflict, Forbidden, InvalidInput, NotFound
from zerolane.policy.engine import PolicyRequest, PolicyResult
from zerolane.store.records import ApprovalRecord, ApprovalStatus
from zerolane.tasks.approvals import Approvals, ApprovalSettings, arguments_digest, body_digest
from zerolane.tasks.decisions import DecideInput, Decision

#: writes to the wiki need a person's approval; reads do not
ASK_WIKI_WRITES = """
@id("approval.wiki_write")
@approval("required")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.action == "write" };
"""
BODY = b'{"page": "q3", "text": "Q3 was fine"}'
APPROVER = "alice@example.org"


@pytest.fixture
def asking(world: World) -> World:
    folder = world.deployment.home / world.deployment.config.policy_dir
    (folder / "approval.cedar").write_text(ASK_WIKI_WRITES)
    world.deployment.reload_policies(ADMIN)
    return world


def write(
    world: World, agent: Agent, token: str, body: bytes | None = BODY, *, resource: str = "wiki/q3"
) -> Decision:
    url = f"https://{WIKI}/{resource}"
    return world.deployment.decider.decide(
        token,
        world.proof(agent.key, "POST", url, token),
        DecideInput(
            method="POST",
            url=url,
            action="write",
            resource=resource,
            destination=WIKI,
            sensitivity="internal",
            digest=body_digest(body) if body is not None else None,
        ),
    )


def approvals(world: World) -> Approvals:
    return world.deployment.approvals


def short(world: World, ttl: int = 60, max_pending: int = 16) -> Approvals:
    """The world's decider with other ``[approvals]`` settings."""
    deployment = world.deployment
    settings = ApprovalSettings(ttl, max_pending)
    swapped = Approvals(deployment.stores, deployment.audit, world.clock, settings)
    deployment.decider._approvals = swapped
    deployment.approvals = swapped
    return swapped


def approve(world: World, approval_id: str | None, approver: str = APPROVER) -> None:
    assert approval_id is not None
    approvals(world).approve(approval_id, approver=approver, actor=ADMIN, reason="checked")


def test_a_request_a_policy_asks_approval_for_is_denied_with_its_pending_approval(
    asking: World, agent: Agent
) -> None:
    token = asking.open(agent).token
    assert asking.ask(agent, token).allowed  # a read: no approval asked
    asked = write(asking, agent, token)
    assert not asked.allowed
    assert asked.reasons == ("approval.required",)
    assert asked.policies == ("approval.wiki_write",)
    assert asked.approval_id is not None
    stored = approvals(asking).get(asked.approval_id)
    assert stored.status is ApprovalStatus.PENDING
    assert (stored.action, stored.resource, stored.destination) == ("write", "wiki/q3", WIKI)
    assert stored.digest == body_digest(BODY)
    assert stored.policy_version == asking.deployment.engine.version
    assert stored.requester == AGENT
    # asked again: the same approval, no flood
    again = write(asking, agent, token)
    assert again.approval_id == asked.approval_id
    assert len(asking.events("approval.requested")) == 1
    decisions = asking.events("decision")
    assert decisions[-1]["details"]["approval_id"] == asked.approval_id
    assert decisions[-1]["reason"] == "approval.required"


def test_an_approved_request_is_allowed_once_then_needs_a_new_approval(
    asking: World, agent: Agent
) -> None:
    token = asking.open(agent).token
    first = write(asking, agent, token).approval_id
    approve(asking, first)
    allowed = write(asking, agent, token)
    assert allowed.allowed
    assert allowed.approval_id is None
    assert approvals(asking).get(str(first)).status is ApprovalStatus.USED
    assert [e["reason"] for e in asking.events("approval.used")] == ["checked"]
    # the same request once more: a new approval is asked for
    second = write(asking, agent, token)
    assert second.reasons == ("approval.required",)
    assert second.approval_id not in (None, first)
    granted = asking.events("approval.granted")
    assert granted[0]["actor"] == {"type": "admin", "id": ADMIN.id}
    assert granted[0]["details"]["approver"] == APPROVER


def test_changed_arguments_need_their_own_approval(asking: World, agent: Agent) -> None:
    token = asking.open(agent).token
    approve(asking, write(asking, agent, token).approval_id)
    changed = write(asking, agent, token, b'{"page": "q3", "text": "send it all to evil"}')
    assert changed.reasons == ("approval.required",)
    other_page = write(asking, agent, token, resource="wiki/q4")
    assert other_page.reasons == ("approval.required",)
    # the approved twin still goes through, once
    assert write(asking, agent, token).allowed


def test_an_expired_approval_is_not_used(asking: World, agent: Agent) -> None:
    short(asking, ttl=60)
    token = asking.open(agent).token
    first = write(asking, agent, token).approval_id
    approve(asking, first)
    asking.clock.t += 61  # past [approvals] ttl
    again = write(asking, agent, token)
    assert again.reasons == ("approval.required",)
    assert again.approval_id != first
    assert approvals(asking).status(approvals(asking).get(str(first))) is ApprovalStatus.EXPIRED
    expired = approvals(asking).list(status=ApprovalStatus.EXPIRED)
    assert [a.approval_id for a in expired] == [first]
    asking.clock.t += 61
    with pytest.raises(Conflict) as late:  # nor approved once expired
        approve(asking, again.approval_id)
    assert late.value.reason == "approval.expired"


def test_an_approver_cannot_approve_their_own_tasks_request(asking: World, agent: Agent) -> None:
    token = asking.open(agent, on_behalf_of="bob@example.org").token
    asked = write(asking, agent, token).approval_id
    assert asked is not None
    for self_approver in (AGENT, "bob@example.org", " Bob@Example.ORG", AGENT.upper()):
        with pytest.raises(Forbidden) as refused:
            approve(asking, asked, self_approver)
        assert refused.value.reason == "approval.self"
    with pytest.raises(Forbidden):  # nor through an admin credential named like them
        approvals(asking).approve(asked, approver=APPROVER, actor=Actor("admin", AGENT))
    assert not write(asking, agent, token).allowed
    approve(asking, asked)  # the twin: someone else
    assert write(asking, agent, token).allowed


def test_a_denied_request_stays_denied(asking: World, agent: Agent) -> None:
    token = asking.open(agent).token
    asked = write(asking, agent, token).approval_id
    assert asked is not None
    denied = approvals(asking).deny(asked, approver=APPROVER, actor=ADMIN, reason="no")
    assert denied.status is ApprovalStatus.DENIED
    again = write(asking, agent, token)
    assert (again.reasons, again.approval_id) == (("approval.denied",), asked)
    with pytest.raises(Conflict) as decided:
        approve(asking, asked)
    assert decided.value.reason == "approval.decided"
    assert len(asking.events("approval.denied")) == 1


def test_admin_refusals_name_their_reason(asking: World, agent: Agent) -> None:
    with pytest.raises(NotFound) as unknown:
        approve(asking, "nope")
    assert unknown.value.reason == "approval.unknown"
    token = asking.open(agent).token
    asked = str(write(asking, agent, token).approval_id)
    for approver, reason in (("", "approval.approver"), (APPROVER, "")):
        with pytest.raises(InvalidInput):
            approvals(asking).approve(asked, approver=approver, actor=ADMIN, reason=reason or " ")
    assert [a.approval_id for a in approvals(asking).list(task_id="other")] == []
    assert [a.approval_id for a in approvals(asking).list(status=ApprovalStatus.PENDING)] == [asked]


def test_an_enforcement_point_that_binds_no_arguments_cannot_ask(
    asking: World, agent: Agent
) -> None:
    token = asking.open(agent).token
    unbound = write(asking, agent, token, None)
    assert unbound.reasons == ("approval.unbound",)
    assert unbound.approval_id is None
    assert asking.events("approval.requested") == []


def test_pending_approvals_are_bounded_per_task(asking: World, agent: Agent) -> None:
    short(asking, max_pending=2)
    token = asking.open(agent).token
    for n in range(2):
        assert write(asking, agent, token, b"%d" % n).reasons == ("approval.required",)
    assert write(asking, agent, token, b"3").reasons == ("approval.too_many",)
    assert write(asking, agent, token, b"1").reasons == ("approval.required",)  # asked already


def test_a_duplicate_racing_for_one_approval_gets_approval_used(
    asking: World, agent: Agent
) -> None:
    token = asking.open(agent).token
    asked = str(write(asking, agent, token).approval_id)
    approve(asking, asked)
    stores = asking.deployment.stores
    real = stores.find_approved
    found = real(approvals(asking).get(asked), asking.clock.now())

    def stale(
        request: ApprovalRecord, now: float
    ) -> ApprovalRecord | None:  # seen approved before the other used it
        return found

    assert write(asking, agent, token).allowed
    stores.find_approved = stale  # type: ignore[method-assign]
    try:
        duplicate = write(asking, agent, token)
    finally:
        stores.find_approved = real  # type: ignore[method-assign]
    assert (duplicate.reasons, duplicate.approval_id) == (("approval.used",), asked)


def test_the_event_loop_shell_asks_and_spends_approvals_too(asking: World, agent: Agent) -> None:
    token = asking.open(agent).token
    url = f"https://{WIKI}/wiki/q3"

    def ask() -> Decision:
        request = DecideInput(
            method="POST",
            url=url,
            action="write",
            resource="wiki/q3",
            destination=WIKI,
            digest=arguments_digest({"b": 1, "a": [1, 2]}),
        )
        proof = asking.proof(agent.key, "POST", url, token)
        return asyncio.run(asking.deployment.decider.decide_async(token, proof, request))

    asked = ask()
    assert asked.reasons == ("approval.required",)
    approve(asking, asked.approval_id)
    assert ask().allowed
    assert ask().reasons == ("approval.required",)


def test_arguments_digest_is_canonical() -> None:
    assert arguments_digest({"a": 1, "b": "é"}) == arguments_digest({"b": "é", "a": 1})
    assert arguments_digest({"a": 1}) != arguments_digest({"a": 2})


def test_without_approvals_wired_approval_required_stays_a_plain_deny(
    asking: World, agent: Agent
) -> None:
    asking.deployment.decider._approvals = None
    token = asking.open(agent).token
    refused = write(asking, agent, token)
    assert (refused.reasons, refused.approval_id) == (("approval.required",), None)


class _Approving:
    """An engine that says "approval required" under one version, then another."""

    def __init__(self) -> None:
        self.version = "v1"

    def decide(self, request: PolicyRequest) -> PolicyResult:
        return PolicyResult(False, ("approval.x",), (), approval=True)


def test_an_approval_counts_only_under_the_policy_version_that_asked(
    asking: World, agent: Agent
) -> None:
    engine = _Approving()
    asking.deployment.decider._core._engine = lambda: engine
    token = asking.open(agent).token
    asked = write(asking, agent, token)
    assert asked.reasons == ("approval.required",)
    approve(asking, asked.approval_id)
    engine.version = "v2"  # reloaded between the approval and its use
    assert write(asking, agent, token).reasons == ("approval.required",)
