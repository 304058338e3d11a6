"""``tools/list`` shows only the tools the task may call, decided read-only.

Each candidate tool is put to the policy engine exactly as its call would be (same
action, resource, destination, sensitivity, ``request.mcp`` record and task facts) with
no arguments, but through the engine directly: nothing is spent, nothing is audited,
nothing is allowed (only a task found expired has its expiry recorded, ``task.expired``,
as wherever a task is checked). A tool listed here can still be refused when called (the budget ran
out, a sensitive read happened in between, a policy on its arguments); a tool left out
would be refused now when called without arguments.
"""

from __future__ import annotations

from collections.abc import Iterable

from zerolane.errors import ZerolaneError
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.mapping import ToolRoute
from zerolane.policy.context import RequestFacts, is_internal, request_policy_request
from zerolane.tasks.decision_core import task_facts
from zerolane.tokens.rfc9068 import TaskTokenClaims
from zerolane.types import TaskState

METHOD = "POST"  # every tools/call reaches the gateway as an HTTP POST


def callable_routes(
    enforcement: Enforcement, claims: TaskTokenClaims, routes: Iterable[ToolRoute]
) -> list[ToolRoute]:
    """The routes the task of ``claims`` would be allowed to call right now."""
    now = enforcement.clock.now()
    try:
        task = enforcement.lifecycle.live(claims, now=now)  # an expiry seen is recorded
        engine = enforcement.engine()
    except ZerolaneError:
        return []
    facts = task_facts(task, TaskState.ACTIVE)
    allowed: list[ToolRoute] = []
    for route in routes:
        request = RequestFacts(
            action=route.action,
            resource=route.resource,
            destination=route.destination,
            sensitivity=route.sensitivity,
            method=METHOD,
            destination_internal=is_internal(route.destination, enforcement.internal_destinations),
            mcp=route.mcp_facts(),
        )
        try:
            result = engine.decide(request_policy_request(task.owner, facts, request, now))
        except Exception:  # an engine that fails lists nothing (fail closed)
            return []
        if result.allowed and not result.errors:
            allowed.append(route)
    return allowed
