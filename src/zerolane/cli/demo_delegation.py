"""The demo's delegation act: a planner hands a narrower child task to a sub-agent.

RFC 8693 token exchange at ``POST /v1/token``: the child is within its parent, bound to
the sub-agent's key, refused when wider, and dies with its parent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer
from zerolane.sdk import Agent, ZerolaneApiError
from zerolane.server.deployment import Deployment
from zerolane.tasks.playbooks import parse_playbook

Say = Callable[[str], None]
ADMIN = Actor("admin", "demo")


class DelegationStoryFailed(Exception):
    """A step of the delegation act did not behave as promised."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DelegationStoryFailed(what)


def delegation_story(
    deployment: Deployment,
    planner: Agent,
    server: BackgroundServer,
    playbook: dict[str, Any],
    step: Say,
    ok: Say,
    refused: Say,
) -> None:
    """Run the act over ``planner`` (an attested agent) and a copy of ``playbook``."""
    td = deployment.config.trust_domain
    finance = f"https://finance.{td}"
    helper_id = f"spiffe://{td}/agents/summarizer"
    team = {**playbook, "name": "report-team", "delegable": True, "max_depth": 1}

    step("Delegation: the agent hands a narrower child task to a sub-agent (RFC 8693)")
    deployment.registry.register(helper_id, selectors=[], owner="reports-team", actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(team, "demo"), ADMIN)
    join = deployment.join_tokens.create(helper_id, ttl=300, actor=ADMIN).token
    with Agent.attest(
        server.url, join_token=join, enforcement_point=planner.enforcement_point
    ) as helper:
        _expect(helper.svid is not None, "the sub-agent got no SVID")
        assert helper.svid is not None
        parent = planner.task(playbook="report-team", intent="Summarize Q3", max_calls=10)
        read_reports = [
            {
                "type": "zerolane_task",
                "actions": ["read"],
                "identifier": "reports/*",
                "locations": [f"finance.{td}"],
            }
        ]
        try:
            parent.delegate(
                delegate_svid=helper.svid.token,
                authorization_details=[{**read_reports[0], "actions": ["read", "delete"]}],
            )
        except ZerolaneApiError as err:
            _expect(err.reason == "scope.action", f"a wider child was refused as {err.reason}")
            refused(f"a child wider than its parent (delete): refused ({err.reason})")
        else:
            raise DelegationStoryFailed("a child wider than its parent was granted")

        grant = parent.delegate(
            delegate_svid=helper.svid.token, authorization_details=read_reports, max_calls=3
        )
        child = helper.adopt(grant)
        ok(f"child {child.task_id}: read reports only, 3 calls carved from the parent's 10")
        read = {"action": "read", "sensitivity": "internal"}
        allowed = child.decide("GET", f"{finance}/reports/q3", **read)
        _expect(allowed.allowed, "the sub-agent's in-scope read was denied")
        ok("the sub-agent reads the Q3 report with the child token: [bold]allow[/bold]")
        stolen = planner.adopt(grant).decide("GET", f"{finance}/reports/q3", **read)
        _expect(stolen.reasons == ("dpop.key_mismatch",), "the child token worked without its key")
        refused("the planner uses the child token with its own key: deny dpop.key_mismatch")

        parent.complete()
        ok("the planner completes its task")
        after = child.decide("GET", f"{finance}/reports/q3", **read)
        _expect(after.reasons == ("task.revoked",), "a child outlived its parent")
        refused("the sub-agent's next read: deny task.revoked (its parent ended)")
