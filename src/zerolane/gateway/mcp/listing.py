"""Listings show only what the task may use: tools, prompts, resources, decided read-only.

Each candidate (a tool, a prompt, a resource or a template) is put to the policy
engine exactly as its use would be (same action, resource, destination, sensitivity,
``request.mcp`` record and task facts) with no arguments, but through the engine
directly: nothing is spent, nothing is audited, nothing is allowed (only a task found
expired has its expiry recorded, ``task.expired``, as wherever a task is checked). An
item listed here can still be refused when used (the budget ran out, a sensitive read
happened in between, a policy on its arguments, a human approval asked for); an item
left out would be refused now when used without arguments.

Shadow mode lists what it would let through: an item the policies alone deny is listed
when its call would be a shadow allow (its route, the task's playbook or the policy set
in shadow), so a shadow never changes what an agent sees, only what is audited. Listing
audits nothing: the would-deny is recorded when the item is used. What the policies
cannot decide (an engine error) and what a safety rule denies (``@shadow("never")``,
never relaxed) are not listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zerolane.errors import ZerolaneError
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.mapping import PromptRoute, ResourceRoute, ToolRoute
from zerolane.policy.context import RequestFacts, is_internal, request_policy_request
from zerolane.tasks.decision_core import task_facts
from zerolane.tasks.scope import Scope
from zerolane.tokens.rfc9068 import TaskTokenClaims
from zerolane.types import TaskState

METHOD = "POST"  # every tools/call reaches the gateway as an HTTP POST


def permitted(
    enforcement: Enforcement,
    claims: TaskTokenClaims,
    requests: Sequence[RequestFacts],
    shadowed: Sequence[bool] = (),
) -> list[bool]:
    """For each request, whether the task of ``claims`` would be allowed it right now,
    or let through in shadow mode (``shadowed[i]``: its route is in shadow; the task's
    playbook or the policy set in shadow put every request there)."""
    now = enforcement.clock.now()
    try:
        task = enforcement.lifecycle.live(claims, now=now)  # an expiry seen is recorded
        engine = enforcement.engine()
    except ZerolaneError:
        return [False] * len(requests)
    facts = task_facts(task, TaskState.ACTIVE)
    everywhere = enforcement.shadow_policies or Scope.from_json(task.scope).shadow
    routes = list(shadowed) or [False] * len(requests)
    allowed: list[bool] = []
    for request, route in zip(requests, routes, strict=True):
        try:
            result = engine.decide(request_policy_request(task.owner, facts, request, now))
        except Exception:  # an engine that fails lists nothing (fail closed)
            return [False] * len(requests)
        # one a policy asks a person to approve is listed: its call asks for approval;
        # one the policies deny, in shadow mode: its call is a shadow allow, unless a
        # safety rule (@shadow("never")) denies it, which no shadow relaxes
        relaxed = (everywhere or route) and not result.shadow_never
        usable = result.allowed or result.approval or relaxed
        allowed.append(usable and not result.errors)
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
    shadowed = [route.shadow is not None for route in candidates]
    verdicts = permitted(enforcement, claims, requests, shadowed)
    return [route for route, ok in zip(candidates, verdicts, strict=True) if ok]
