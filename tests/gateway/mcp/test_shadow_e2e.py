"""Shadow mode through the MCP gateway, end to end: a tool in ``mode = "shadow"`` that the
policies deny is listed, relayed as a shadow allow (its would-deny reasons in the
upstream call's ``_meta``) and audited as a would-deny; the same gateway with the tool
back in ``enforce`` hides it and refuses the call, which never reaches the upstream.
Listings follow the task's playbook and the policy set in shadow the same way; an
engine that fails, or a safety rule's deny, lists nothing in shadow either; a spent
budget is never relaxed."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from mcp_types import Tool

from tests.gateway.mcp.conftest import ADMIN, PLAYBOOK, Stack, gateway_config
from tests.gateway.mcp.harness import GatewayServer, calls
from tests.gateway.mcp.test_failures import Broken, claims_of
from tests.gateway.mcp.test_gateway_e2e import call, listed, refused
from zerolane.audit.shadow import shadow_report
from zerolane.cli.background import free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.edge.jsonrpc import DECISION_META, FORBIDDEN, SHADOW_META
from zerolane.gateway.mcp import GatewayConfig, parse_gateway_config
from zerolane.gateway.mcp.listing import callable_routes
from zerolane.gateway.mcp.mapping import ToolRoute, route_for
from zerolane.policy.engine import PolicyEngine, PolicyRequest, PolicyResult
from zerolane.tasks.playbooks import parse_playbook

DELETE = Tool(name="delete_report", input_schema={"type": "object"})


def config_with(stack: Stack, mode: str) -> GatewayConfig:
    """The stack's gateway on a port of its own, its ``delete_report`` tool in ``mode``."""
    web = stack.config.servers[1].url
    assert web is not None
    doc = copy.deepcopy(gateway_config(free_port(), stack.cp_url, web, stack.stdio_log))
    doc["servers"][0]["tools"]["delete_report"] = {"mode": mode}
    return parse_gateway_config(doc)


@contextmanager
def gateway(stack: Stack, mode: str) -> Iterator[Stack]:
    """The stack, served by a gateway whose ``delete_report`` is in ``mode``."""
    config = config_with(stack, mode)
    with GatewayServer(config, enforcement_of(stack.deployment)) as server:
        yield dataclasses.replace(stack, gateway=server, config=config)


def decision_of(stack: Stack, decision_id: str) -> dict[str, Any]:
    return next(e for e in stack.events("decision") if e["details"]["decision_id"] == decision_id)


def test_a_denied_tool_in_shadow_is_listed_relayed_and_audited_as_a_would_deny(
    stack: Stack,
) -> None:
    before = len(calls(stack.stdio_log, "delete_report"))
    with (
        gateway(stack, "shadow") as shadowed,
        shadowed.agent() as agent,
        shadowed.task(agent) as task,  # its intent leaves delete_report out
    ):
        assert "delete_report" in listed(shadowed, task)  # listed: nothing breaks
        result = call(shadowed, task, "delete_report", {"name": "q3"})
        assert not result.is_error
        assert shadowed.calls_used(task) == 1  # a shadow allow spends a call
        made = calls(stack.stdio_log, "delete_report")
        assert len(made) == before + 1
        assert made[-1]["meta"][SHADOW_META] == ["scope.action"]
        event = decision_of(stack, made[-1]["meta"][DECISION_META])
        # its enforced twin on the same task and gateway: a plain allow
        call(shadowed, task, "read_report", {"name": "q3"})
        plain = calls(stack.stdio_log, "read_report")[-1]["meta"]
        assert SHADOW_META not in plain
        assert decision_of(stack, plain[DECISION_META])["details"]["decision"] == "allow"
    assert (event["outcome"], event["reason"]) == ("success", "shadow")
    details = event["details"]
    assert details["decision"] == "shadow"
    assert details["would_deny"] == ["scope.action"]
    assert details["shadow"] == ["tool:tools/delete_report"]
    assert details["playbook"] == PLAYBOOK["name"]
    assert (details["tool"], details["action"]) == ("delete_report", "mcp:tools/delete_report")
    report = shadow_report(stack.deployment.stores, 0, stack.deployment.clock.now() + 60)
    group = next(g for g in report.groups if g.reason == "scope.action")
    assert "tool:tools/delete_report" in group.modes
    assert task.task_id in group.tasks


def test_the_same_tool_back_in_enforce_is_hidden_and_refused(stack: Stack) -> None:
    before = len(calls(stack.stdio_log, "delete_report"))
    with (
        gateway(stack, "enforce") as enforced,
        enforced.agent() as agent,
        enforced.task(agent) as task,
    ):
        assert listed(enforced, task) == ["post_message", "read_report", "web_read_report"]
        error = refused(enforced, task, "delete_report", {"name": "q3"})
        assert error.code == FORBIDDEN
        assert error.data["reasons"] == ["scope.action"]
        assert enforced.calls_used(task) == 0
        events = [e for e in enforced.events("decision") if e["subject"] == task.task_id]
    assert len(calls(stack.stdio_log, "delete_report")) == before  # never relayed
    assert [e["details"]["decision"] for e in events] == ["deny"]
    assert "would_deny" not in events[0]["details"]


def test_shadow_relaxes_only_the_policies_a_spent_budget_is_refused(stack: Stack) -> None:
    before = len(calls(stack.stdio_log, "delete_report"))
    with (
        gateway(stack, "shadow") as shadowed,
        shadowed.agent() as agent,
        shadowed.task(agent, max_calls=1) as task,
    ):
        call(shadowed, task, "read_report", {"name": "q3"})  # the one call it had
        error = refused(shadowed, task, "delete_report", {"name": "q3"})
        assert error.data["reasons"] == ["task.budget_exhausted"]
    assert len(calls(stack.stdio_log, "delete_report")) == before


class Denying:
    """A policy engine that denies every request, a safety rule among its reasons or not."""

    version = "denying"

    def __init__(self, shadow_never: bool) -> None:
        self.shadow_never = shadow_never

    def decide(self, request: PolicyRequest) -> PolicyResult:
        return PolicyResult(False, ("safety.rule",), (), shadow_never=self.shadow_never)


def delete_route(stack: Stack) -> ToolRoute:
    route = route_for(stack.config.servers[0], DELETE)
    assert route is not None
    assert route.shadow is None  # the stack's own gateway enforces it
    return route


def test_listings_follow_the_policy_set_and_the_playbook_in_shadow(stack: Stack) -> None:
    route = delete_route(stack)
    in_shadow = dataclasses.replace(route, shadow="tool:tools/delete_report")
    enforcement = enforcement_of(stack.deployment)
    with stack.agent() as agent, stack.task(agent) as task:
        claims = claims_of(stack, task.token, task.headers("POST", stack.url)["DPoP"])
        assert callable_routes(enforcement, claims, [route]) == []  # enforced: hidden
        assert callable_routes(enforcement, claims, [in_shadow]) == [in_shadow]
        policies = dataclasses.replace(enforcement, shadow_policies=True)
        assert callable_routes(policies, claims, [route]) == [route]
        broken = dataclasses.replace(policies, engine=lambda: cast(PolicyEngine, Broken()))
        assert callable_routes(broken, claims, [in_shadow]) == []  # fail closed
        # a safety rule's deny (@shadow("never")) is never relaxed, so never listed
        safety = dataclasses.replace(policies, engine=lambda: cast(PolicyEngine, Denying(True)))
        assert callable_routes(safety, claims, [in_shadow]) == []
        scoped = dataclasses.replace(policies, engine=lambda: cast(PolicyEngine, Denying(False)))
        assert callable_routes(scoped, claims, [in_shadow]) == [in_shadow]  # the twin
    stack.deployment.playbooks.apply(
        parse_playbook({**PLAYBOOK, "name": "report-reader-shadow", "mode": "shadow"}, "test"),
        ADMIN,
    )
    with (
        stack.agent() as agent,
        agent.open_task(
            playbook="report-reader-shadow",
            intent="Summarize the Q3 report for the team",
            authorization_details=[{"type": "zerolane_task", "actions": ["mcp:tools/read_report"]}],
            audience=[stack.config.audience],
        ) as task,
    ):
        claims = claims_of(stack, task.token, task.headers("POST", stack.url)["DPoP"])
        assert callable_routes(enforcement, claims, [route]) == [route]
