"""Listings show only what the task may use: tools, prompts, resources, decided read-only.

Each candidate (a tool, a prompt, a resource or a template) is put to the policy
engine exactly as its use would be (same action, resource, destination, sensitivity,
``request.mcp`` record and task facts) with no arguments, but through the engine
directly: nothing is spent, nothing is audited, nothing is allowed (only a task found
expired has its expiry recorded, ``task.expired``, as wherever a task is checked). An
item listed here can still be refused when used (the budget ran out, a sensitive read
happened in between, a policy on its arguments, a human approval asked for); an item
left out would be refused now when used without arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zerolane.errors import ZerolaneError
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.mapping import PromptRoute, ResourceRoute, ToolRoute
from zerolane.policy.context import RequestFacts, is_internal, request_policy_request
from zerolane.tasks.decision_core import task_facts
from zerolane.tokens.rfc9068 import TaskTokenClaims
from zerolane.types import TaskState

METHOD = "POST"  # every tools/call reaches the gateway as an HTTP POST


def permitted(
    enforcement: Enforcement, claims: TaskTokenClaims, requests: Sequence[RequestFacts]
) -> list[bool]:
    """For each request, whether the task of ``claims`` would be allowed it right now."""
    now = enforcement.clock.now()
    try:
        task = enforcement.lifecycle.live(claims, now=now)  # an expiry seen is recorded
        engine = enforcement.engine()
    except ZerolaneError:
        return [False] * len(requests)
    facts = task_facts(task, TaskState.ACTIVE)
    allowed: list[bool] = []
    for request in requests:
        try:
            result = engine.decide(request_policy_request(task.owner, facts, request, now))
        except Exception:  # an engine that fails lists nothing (fail closed)
            return [False] * len(requests)
        # one a policy asks a person to approve is listed: its call asks for approval
        allowed.append((result.allowed or result.approval) and not result.errors)
    return allowed


def request_facts(
    enforcement: Enforcement, route: ToolRoute | PromptRoute | ResourceRoute
) -> RequestFacts:
    """A listed item as the request that would use it (no arguments)."""
    return RequestFacts(
        action=route.action,
        resource=route.resource,
        destination=route.destination,
        sensitivity=route.sensitivity,
        method=METHOD,
        destination_internal=is_internal(route.destination, enforcement.internal_destinations),
        mcp=route.mcp_facts(),
    )


def callable_routes(
    enforcement: Enforcement, claims: TaskTokenClaims, routes: Iterable[ToolRoute]
) -> list[ToolRoute]:
    """The routes the task of ``claims`` would be allowed to call right now."""
    candidates = list(routes)
    requests = [request_facts(enforcement, route) for route in candidates]
    verdicts = permitted(enforcement, claims, requests)
    return [route for route, ok in zip(candidates, verdicts, strict=True) if ok]
