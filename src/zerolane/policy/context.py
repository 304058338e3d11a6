"""The context contract: plain facts in, the Cedar request context out.

Every attribute a policy can read is built here (and documented in docs/policies.md);
the schema in ``default/schema.cedarschema`` declares the same shape. Times are whole
epoch seconds, rounded down: ``now >= expires_at`` then never says "not expired" when
the exact times say expired. Sensitivities are ranks (public 0 .. restricted 3).

A request the MCP gateway decides (a ``tools/call``, a resource read, a prompt get, or
what is decided as one of them) adds the optional ``request.mcp`` record
(:class:`McpFacts`): its arguments reach policies as a bounded set of ``path=value``
strings (:func:`flatten_arguments`), because Cedar can only test a set for exact members.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from zerolane.errors import InvalidInput
from zerolane.policy.engine import PolicyRequest
from zerolane.policy.patterns import matches_any
from zerolane.types import Sensitivity, TaskState

NOTHING_TOUCHED = -1

#: Bounds of ``request.mcp.arguments``: distinct entries, characters per entry, nesting.
MAX_ARGUMENT_ENTRIES = 128
MAX_ARGUMENT_CHARS = 256
MAX_ARGUMENT_DEPTH = 8
#: Ends an entry cut at MAX_ARGUMENT_CHARS (or a number too large to write out).
CUT = "\u2026"
_KEY_ESCAPES = str.maketrans({"%": "%25", ".": "%2E", "=": "%3D"})


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
    on_behalf_of: str | None  # free text, never verified: for audit, not for decisions
    user: UserFacts | None = None  # the person it acts for, verified (an ID token)


@dataclass(frozen=True, slots=True)
class UserFacts:
    """A person a task acts for, verified from an OIDC ID token: its ``sub`` and ``iss``."""

    subject: str
    issuer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentFacts:
    """The task a new task is delegated from (``context.parent`` of ``open_task``)."""

    id: str
    owner: str
    playbook: str
    depth: int
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    destinations: tuple[str, ...]
    ceiling: Sensitivity
    expires_at: float
    calls_left: int
    user: UserFacts | None = None


@dataclass(frozen=True, slots=True)
class McpFacts:
    """One MCP request the gateway decides (``context.request.mcp``): the upstream
    server, the JSON-RPC ``method``, the tool's or prompt's name there (``""`` for a
    resource), the resource's ``uri`` (``""`` otherwise), the annotations as the gateway
    reads them (a resource read or prompt get is read-only, not destructive), and the
    flattened arguments.

    Build it with :meth:`of_call`, which flattens the arguments.
    """

    server: str
    tool: str
    read_only: bool
    destructive: bool
    arguments: tuple[str, ...] = ()  # "path=value" entries, see flatten_arguments
    arguments_truncated: bool = False  # entries were left out to keep within the bounds
    method: str = "tools/call"  # resources/read, prompts/get, completion/complete, ...
    uri: str = ""  # the resource's URI, as asked for (a resource read or subscribe)

    @classmethod
    def of_call(
        cls,
        server: str,
        tool: str,
        *,
        read_only: bool,
        destructive: bool,
        arguments: Mapping[str, object] | None = None,
        method: str = "tools/call",
        uri: str = "",
    ) -> McpFacts:
        entries, truncated = flatten_arguments(arguments or {})
        return cls(server, tool, read_only, destructive, entries, truncated, method, uri)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """One request as the enforcement point mapped it."""

    action: str
    resource: str
    destination: str
    sensitivity: Sensitivity
    method: str = ""
    destination_internal: bool = False  # unknown means outside: the egress rule applies
    mcp: McpFacts | None = None  # set for a request the MCP gateway decides only


@dataclass(frozen=True, slots=True)
class RiskFacts:
    """``context.risk``: the task's and its workload's risk scores, 0..100, from the
    detections about them, decaying (:mod:`zerolane.detection.risk`)."""

    task: int = 0
    workload: int = 0


#: no detection about either
NO_RISK = RiskFacts()


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
    on_behalf_of: str | None  # free text, never verified: for audit, not for decisions
    user: UserFacts | None = None  # the person the new task will act for, verified
    parent: ParentFacts | None = None  # set when the new task is delegated from it


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


def _scalar(value: object) -> str:
    """A leaf value as policies see it: strings as they are, the rest as JSON writes it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python writes out
            return CUT
    if isinstance(value, float):
        return json.dumps(value)
    return str(value)


class _Full(Exception):
    """No room for another argument entry."""


def _keys(mapping: Mapping[Any, object]) -> list[tuple[str, Any]]:
    """``(escaped name, key)`` pairs of a mapping, sorted by name."""
    names = [(str(key).translate(_KEY_ESCAPES), key) for key in mapping]
    return sorted(names, key=lambda pair: pair[0])


def flatten_arguments(arguments: Mapping[str, object]) -> tuple[tuple[str, ...], bool]:
    """Tool arguments as a bounded set of ``path=value`` strings, and whether any was left out.

    ``{"report": "q3", "options": {"format": "pdf", "pages": [1, 2]}}`` gives
    ``report=q3``, ``options.format=pdf``, ``options.pages=1`` and ``options.pages=2``:

    - a path joins the keys from the top with ``.``; in a key, ``%``, ``.`` and ``=`` are
      written ``%25``, ``%2E`` and ``%3D``, so a path never holds a bare ``=`` (the value
      is everything after the first ``=``) and ``{"a.b": 1}`` never reads as ``a.b=1``;
    - a list gives each of its items under the list's own path (no index: a policy asks
      "is this among the values", which reordering cannot dodge); an empty list or
      object gives nothing;
    - strings are kept as they are; numbers, ``true``, ``false`` and ``null`` as JSON
      writes them (so ``"3"`` and ``3`` both read ``=3``);
    - keys are walked in sorted order, items in list order; duplicates count once.

    Bounds: an entry longer than :data:`MAX_ARGUMENT_CHARS` characters is cut to that
    length, its last character :data:`CUT`; values nested deeper than
    :data:`MAX_ARGUMENT_DEPTH` keys or lists, and entries past
    :data:`MAX_ARGUMENT_ENTRIES`, are left out, and then the second result is True.
    """
    entries: dict[str, None] = {}
    truncated = False

    def walk(path: str, value: object, depth: int) -> None:
        nonlocal truncated
        if isinstance(value, Mapping | list | tuple) and depth >= MAX_ARGUMENT_DEPTH:
            truncated = truncated or bool(value)
        elif isinstance(value, Mapping):
            for name, key in _keys(value):
                walk(f"{path}.{name}", value[key], depth + 1)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(path, item, depth + 1)
        else:
            entry = f"{path}={_scalar(value)}"
            if len(entry) > MAX_ARGUMENT_CHARS:
                entry = entry[: MAX_ARGUMENT_CHARS - 1] + CUT
            if entry not in entries:
                if len(entries) >= MAX_ARGUMENT_ENTRIES:
                    raise _Full
                entries[entry] = None

    try:
        for name, key in _keys(arguments):
            walk(name, arguments[key], 1)
    except _Full:
        truncated = True
    return tuple(entries), truncated


def _mcp_record(mcp: McpFacts) -> dict[str, object]:
    return {
        "server": mcp.server,
        "method": mcp.method,
        "tool": mcp.tool,
        "uri": mcp.uri,
        "read_only": mcp.read_only,
        "destructive": mcp.destructive,
        "arguments": list(mcp.arguments),
        "arguments_truncated": mcp.arguments_truncated,
    }


def _clock(now: float) -> dict[str, object]:
    seconds = int(now // 1)
    moment = time.gmtime(seconds)
    return {"now": seconds, "hour_utc": moment.tm_hour, "weekday": moment.tm_wday}


def _in_scope(task: TaskFacts, resource: str) -> bool:
    try:
        return matches_any(task.resources, resource)
    except InvalidInput:  # a malformed resource (or pattern) is out of scope
        return False


def request_context(
    task: TaskFacts, request: RequestFacts, now: float, risk: RiskFacts = NO_RISK
) -> dict[str, object]:
    """The context of ``Zerolane::Action::"request"``."""
    context: dict[str, object] = _clock(now)
    task_record: dict[str, object] = {
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
    if task.user is not None:  # optional in the schema: policies test `has user`
        task_record["user"] = _user_record(task.user)
    context["task"] = task_record
    facts: dict[str, object] = {
        "action": request.action,
        "resource": request.resource,
        "destination": request.destination,
        "method": request.method.upper(),
        "destination_internal": request.destination_internal,
        "sensitivity": int(request.sensitivity),
        "resource_in_scope": _in_scope(task, request.resource),
    }
    if request.mcp is not None:  # optional in the schema: policies test `has mcp`
        facts["mcp"] = _mcp_record(request.mcp)
    context["request"] = facts
    context["risk"] = {"task": risk.task, "workload": risk.workload}
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
    requested: dict[str, object] = {
        "actions": list(facts.actions),
        "destinations": list(facts.destinations),
        "ceiling": int(facts.ceiling),
        "ttl": facts.ttl,
        "max_calls": facts.max_calls,
        "depth": facts.depth,
        "intent": facts.intent,
        "on_behalf_of": facts.on_behalf_of or "",
    }
    if facts.user is not None:  # optional in the schema: policies test `has user`
        requested["user"] = _user_record(facts.user)
    context["requested"] = requested
    if facts.parent is not None:  # optional: only when delegating (`context has parent`)
        context["parent"] = _parent_record(facts.parent)
    return context


def _user_record(user: UserFacts) -> dict[str, object]:
    return {"subject": user.subject, "issuer": user.issuer}


def _parent_record(parent: ParentFacts) -> dict[str, object]:
    record: dict[str, object] = {
        "id": parent.id,
        "owner": parent.owner,
        "playbook": parent.playbook,
        "depth": parent.depth,
        "actions": list(parent.actions),
        "resources": list(parent.resources),
        "destinations": list(parent.destinations),
        "ceiling": int(parent.ceiling),
        "expires_at": int(parent.expires_at // 1),
        "calls_left": parent.calls_left,
    }
    if parent.user is not None:
        record["user"] = _user_record(parent.user)
    return record


def request_policy_request(
    principal: str, task: TaskFacts, request: RequestFacts, now: float, risk: RiskFacts = NO_RISK
) -> PolicyRequest:
    """The PDP question for one request under a task."""
    context = request_context(task, request, now, risk)
    return PolicyRequest(principal, "request", "Resource", request.resource, context)


def open_policy_request(principal: str, facts: OpenFacts, now: float) -> PolicyRequest:
    """The PDP question for opening a task from a playbook."""
    return PolicyRequest(
        principal, "open_task", "Playbook", facts.playbook, open_context(facts, now)
    )
