"""The context contract: plain facts in, the Cedar request context out.

Every attribute a policy can read is built here (and documented in docs/policies.md);
the schema in ``default/schema.cedarschema`` declares the same shape. Times are whole
epoch seconds, rounded down: ``now >= expires_at`` then never says "not expired" when
the exact times say expired. Sensitivities are ranks (public 0 .. restricted 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fnmatch import fnmatchcase

from zerolane.errors import InvalidInput
from zerolane.policy.engine import PolicyRequest
from zerolane.policy.patterns import matches_any
from zerolane.types import Sensitivity, TaskState

NOTHING_TOUCHED = -1


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """The task a request is made under, as stored."""

    id: str
    playbook: str
    intent: str
    state: TaskState
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    destinations: tuple[str, ...]
    ceiling: Sensitivity
    touched: int  # highest sensitivity rank touched so far, -1 for nothing yet
    calls_used: int
    max_calls: int
    created_at: float
    expires_at: float
    depth: int
    delegated: bool
    on_behalf_of: str | None


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """One request as the enforcement point mapped it."""

    action: str
    resource: str
    destination: str
    sensitivity: Sensitivity
    method: str = ""
    destination_internal: bool = False  # unknown means outside: the egress rule applies


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenFacts:
    """A request to open a task: who asks, the playbook's limits, what is asked for."""

    trust_domain: str
    selectors: tuple[str, ...]
    owner: str | None
    playbook: str
    opener_matches: bool
    delegable: bool
    max_depth: int
    playbook_ceiling: Sensitivity
    max_ttl: int
    playbook_max_calls: int
    actions: tuple[str, ...]
    destinations: tuple[str, ...]
    ceiling: Sensitivity
    ttl: int
    max_calls: int
    depth: int
    intent: str
    on_behalf_of: str | None


def is_internal(destination: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """True when ``destination`` (a host name, or host:port) matches an internal pattern.

    Patterns are ``fnmatch`` host globs, compared case-insensitively: ``*`` matches any
    run of characters (dots included), ``?`` one character, ``[seq]`` one of a set.
    ``*.corp.example`` matches ``db.corp.example`` and ``a.b.corp.example`` but not
    ``corp.example``; ``10.0.*`` matches ``10.0.3.7``. A ``:port`` suffix may be
    matched by the pattern or left out (``db.corp.example:5432`` matches
    ``*.corp.example``). No patterns: nothing is internal.
    """
    full = destination.strip().lower()
    host, colon, port = full.rpartition(":")
    if not colon or not port.isdigit():
        host = full
    candidates = {full.rstrip("."), host.rstrip(".")} - {""}
    return any(fnmatchcase(c, p.strip().lower()) for p in patterns for c in candidates)


def _clock(now: float) -> dict[str, object]:
    seconds = int(now // 1)
    moment = time.gmtime(seconds)
    return {"now": seconds, "hour_utc": moment.tm_hour, "weekday": moment.tm_wday}


def _in_scope(task: TaskFacts, resource: str) -> bool:
    try:
        return matches_any(task.resources, resource)
    except InvalidInput:  # a malformed resource (or pattern) is out of scope
        return False


def request_context(task: TaskFacts, request: RequestFacts, now: float) -> dict[str, object]:
    """The context of ``Zerolane::Action::"request"``."""
    context: dict[str, object] = _clock(now)
    context["task"] = {
        "id": task.id,
        "playbook": task.playbook,
        "intent": task.intent,
        "state": task.state.value,
        "actions": list(task.actions),
        "destinations": list(task.destinations),
        "resources": list(task.resources),
        "ceiling": int(task.ceiling),
        "touched": int(task.touched),
        "calls_used": task.calls_used,
        "max_calls": task.max_calls,
        "created_at": int(task.created_at // 1),
        "expires_at": int(task.expires_at // 1),
        "depth": task.depth,
        "delegated": task.delegated,
        "on_behalf_of": task.on_behalf_of or "",
    }
    context["request"] = {
        "action": request.action,
        "resource": request.resource,
        "destination": request.destination,
        "method": request.method.upper(),
        "destination_internal": request.destination_internal,
        "sensitivity": int(request.sensitivity),
        "resource_in_scope": _in_scope(task, request.resource),
    }
    return context


def open_context(facts: OpenFacts, now: float) -> dict[str, object]:
    """The context of ``Zerolane::Action::"open_task"``."""
    context: dict[str, object] = _clock(now)
    context["workload"] = {
        "trust_domain": facts.trust_domain,
        "selectors": list(facts.selectors),
        "owner": facts.owner or "",
    }
    context["playbook"] = {
        "name": facts.playbook,
        "opener_matches": facts.opener_matches,
        "delegable": facts.delegable,
        "max_depth": facts.max_depth,
        "ceiling": int(facts.playbook_ceiling),
        "max_ttl": facts.max_ttl,
        "max_calls": facts.playbook_max_calls,
    }
    context["requested"] = {
        "actions": list(facts.actions),
        "destinations": list(facts.destinations),
        "ceiling": int(facts.ceiling),
        "ttl": facts.ttl,
        "max_calls": facts.max_calls,
        "depth": facts.depth,
        "intent": facts.intent,
        "on_behalf_of": facts.on_behalf_of or "",
    }
    return context


def request_policy_request(
    principal: str, task: TaskFacts, request: RequestFacts, now: float
) -> PolicyRequest:
    """The PDP question for one request under a task."""
    return PolicyRequest(
        principal, "request", "Resource", request.resource, request_context(task, request, now)
    )


def open_policy_request(principal: str, facts: OpenFacts, now: float) -> PolicyRequest:
    """The PDP question for opening a task from a playbook."""
    return PolicyRequest(
        principal, "open_task", "Playbook", facts.playbook, open_context(facts, now)
    )
