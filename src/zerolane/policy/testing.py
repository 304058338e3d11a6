"""Policy test cases: YAML or JSON files of requests and the decision each must get.

A file holds ``cases:`` (and optionally ``principal``, ``internal_destinations`` and
``now`` shared by its cases). A case has a ``name``, either ``task:`` + ``request:``
(a request under a task, with an optional ``request.mcp:`` block for a request the MCP
gateway decides: a tool call, a resource read, a prompt get)
or ``open:`` (opening a task), ``expect: allow|deny`` and optionally ``reasons:``, the
exact policy ids expected. Unset facts take defaults that describe an ordinary, healthy
task (see docs/policies.md). Any malformed file is refused with its file, case and
field, before any case runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from zerolane.errors import InvalidInput
from zerolane.policy.context import (
    NOTHING_TOUCHED,
    McpFacts,
    OpenFacts,
    ParentFacts,
    RequestFacts,
    RiskFacts,
    TaskFacts,
    UserFacts,
    is_internal,
    open_policy_request,
    request_policy_request,
)
from zerolane.policy.engine import PolicyEngine, PolicyRequest, PolicyResult
from zerolane.policy.fields import Fields
from zerolane.types import TaskState

CASE_SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_PRINCIPAL = "spiffe://example.org/agents/test"
_FILE_KEYS = {"cases", "principal", "internal_destinations", "now"}
_CASE_KEYS = {
    "name", "task", "request", "risk", "open", "expect", "reasons", "principal", "now",
}  # fmt: skip
_TASK_KEYS = {
    "id", "playbook", "intent", "state", "actions", "resources", "destinations", "ceiling",
    "touched", "calls_used", "max_calls", "expires_in", "depth", "delegated", "on_behalf_of",
    "user",
}  # fmt: skip
_REQUEST_KEYS = {
    "action", "resource", "destination", "sensitivity", "method", "destination_internal", "mcp",
}  # fmt: skip
_MCP_KEYS = {
    "server", "method", "tool", "uri", "read_only", "destructive", "arguments",
    "arguments_truncated",
}  # fmt: skip
#: the MCP methods the gateway decides (a typo in a case would otherwise test nothing)
MCP_METHODS = (
    "tools/call", "resources/read", "resources/subscribe", "prompts/get", "completion/complete",
)  # fmt: skip
#: what an ``mcp:<server>/<rest>`` action's ``<rest>`` names besides a tool
_READ, _GET = "resources/read", "prompts/get"
_WORKLOAD_KEYS = {"trust_domain", "selectors", "owner"}
_PLAYBOOK_KEYS = {
    "name", "opener_matches", "delegable", "max_depth", "ceiling", "max_ttl", "max_calls",
}  # fmt: skip
_REQUESTED_KEYS = {
    "actions", "destinations", "ceiling", "ttl", "max_calls", "depth", "intent", "on_behalf_of",
    "user",
}  # fmt: skip
_USER_KEYS = {"subject", "issuer"}
_PARENT_KEYS = {
    "id", "owner", "playbook", "depth", "actions", "resources", "destinations", "ceiling",
    "expires_in", "calls_left", "user",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Case:
    """One parsed case: the PDP question and what it must answer."""

    file: str
    index: int
    name: str
    request: PolicyRequest
    expect_allow: bool
    reasons: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    result: PolicyResult

    @property
    def actual(self) -> str:
        return "allow" if self.result.allowed else "deny"

    @property
    def passed(self) -> bool:
        if self.result.allowed != self.case.expect_allow:
            return False
        return self.case.reasons is None or self.case.reasons == self.result.policy_ids

    @property
    def detail(self) -> str:
        """Why a case failed ("" when it passed)."""
        if self.passed:
            return ""
        expected = "allow" if self.case.expect_allow else "deny"
        parts = [f"expected {expected}, got {self.actual}"]
        if self.case.reasons is not None:
            parts.append(f"reasons expected {list(self.case.reasons)}")
        parts.append(f"policies {list(self.result.policy_ids)}")
        if self.result.errors:
            parts.append(f"errors {list(self.result.errors)}")
        return "; ".join(parts)


def _task(f: Fields, now: float) -> TaskFacts:
    touched = f.text("touched", "nothing")
    touched_rank = NOTHING_TOUCHED if touched == "nothing" else int(f.sensitivity("touched", ""))
    return TaskFacts(
        id=f.text("id", "task-test"),
        playbook=f.text("playbook", "test"),
        intent=f.text("intent", "policy test"),
        state=f.choice("state", TaskState, "active"),
        actions=f.strings("actions"),
        resources=f.strings("resources"),
        destinations=f.strings("destinations"),
        ceiling=f.sensitivity("ceiling", "internal"),
        touched=touched_rank,
        calls_used=f.integer("calls_used", 0),
        max_calls=f.integer("max_calls", 100),
        created_at=now,
        expires_at=now + f.integer("expires_in", 300),
        depth=f.integer("depth", 0),
        delegated=f.boolean("delegated", False),
        on_behalf_of=f.optional_text("on_behalf_of"),
        user=_user(f.section("user", _USER_KEYS)) if f.has("user") else None,
    )


def _user(f: Fields) -> UserFacts:
    return UserFacts(subject=f.text("subject"), issuer=f.text("issuer", "https://idp.test"))


def _parent(f: Fields, now: float) -> ParentFacts:
    return ParentFacts(
        id=f.text("id", "task-parent"),
        owner=f.text("owner", DEFAULT_PRINCIPAL),
        playbook=f.text("playbook", "test"),
        depth=f.integer("depth", 0),
        actions=f.strings("actions"),
        resources=f.strings("resources"),
        destinations=f.strings("destinations"),
        ceiling=f.sensitivity("ceiling", "internal"),
        expires_at=now + f.integer("expires_in", 300),
        calls_left=f.integer("calls_left", 100),
        user=_user(f.section("user", _USER_KEYS)) if f.has("user") else None,
    )


def _mcp(f: Fields, action: str, resource: str) -> McpFacts:
    """The ``mcp:`` block, its defaults taken from an ``mcp:<server>/<rest>`` action.

    ``mcp:<s>/resources/read`` is a resource read: method ``resources/read``, tool
    ``""``, ``uri`` required, read-only. ``mcp:<s>/prompts/get`` is a prompt get: method
    ``prompts/get``, tool the ``<name>`` of an ``mcp/<s>/prompts/<name>`` resource (else
    required), read-only. Any other is a ``tools/call`` of tool ``<rest>``. Without an
    ``mcp:`` action, ``server`` and ``tool`` are required. The arguments are flattened
    as the gateway flattens them.
    """
    named, slash, rest = action.removeprefix("mcp:").partition("/")
    mcp_action = action.startswith("mcp:") and bool(slash)
    kind = rest if mcp_action and rest in (_READ, _GET) else "tools/call"
    method = f.text("method", kind)
    if method not in MCP_METHODS:
        f.fail("method", f"must be one of {', '.join(MCP_METHODS)}")
    if kind == _READ:
        tool, uri = f.text("tool", ""), f.text("uri")
    elif kind == _GET:
        prompt = resource.removeprefix(f"mcp/{named}/prompts/")
        simple = prompt != resource and prompt and "/" not in prompt and "*" not in prompt
        tool, uri = f.text("tool", prompt) if simple else f.text("tool"), f.text("uri", "")
    else:
        tool = f.text("tool", rest) if mcp_action else f.text("tool")
        uri = f.text("uri", "")
    read_only = f.boolean("read_only", kind != "tools/call")
    facts = McpFacts.of_call(
        f.text("server", named) if mcp_action else f.text("server"),
        tool,
        read_only=read_only,
        destructive=f.boolean("destructive", not read_only),
        arguments=f.mapping("arguments"),
        method=method,
        uri=uri,
    )
    if f.has("arguments_truncated"):
        truncated = f.boolean("arguments_truncated", False)
        facts = dataclasses.replace(facts, arguments_truncated=truncated)
    return facts


def _request(f: Fields, internal: tuple[str, ...]) -> RequestFacts:
    destination = f.text("destination")
    action = f.text("action")
    resource = f.text("resource")
    return RequestFacts(
        action=action,
        resource=resource,
        destination=destination,
        sensitivity=f.sensitivity("sensitivity", "internal"),
        method=f.text("method", ""),
        destination_internal=f.boolean("destination_internal", is_internal(destination, internal)),
        mcp=_mcp(f.section("mcp", _MCP_KEYS), action, resource) if f.has("mcp") else None,
    )


def _open(f: Fields, principal: str, now: float) -> OpenFacts:
    workload = f.section("workload", _WORKLOAD_KEYS)
    playbook = f.section("playbook", _PLAYBOOK_KEYS)
    asked = f.section("requested", _REQUESTED_KEYS)
    default_domain = principal.split("/")[2] if principal.startswith("spiffe://") else ""
    return OpenFacts(
        trust_domain=workload.text("trust_domain", default_domain),
        selectors=workload.strings("selectors"),
        owner=workload.optional_text("owner"),
        playbook=playbook.text("name", "test"),
        opener_matches=playbook.boolean("opener_matches", True),
        delegable=playbook.boolean("delegable", False),
        max_depth=playbook.integer("max_depth", 0),
        playbook_ceiling=playbook.sensitivity("ceiling", "internal"),
        max_ttl=playbook.integer("max_ttl", 3600),
        playbook_max_calls=playbook.integer("max_calls", 100),
        actions=asked.strings("actions"),
        destinations=asked.strings("destinations"),
        ceiling=asked.sensitivity("ceiling", "internal"),
        ttl=asked.integer("ttl", 300),
        max_calls=asked.integer("max_calls", 100),
        depth=asked.integer("depth", 0),
        intent=asked.text("intent", "policy test"),
        on_behalf_of=asked.optional_text("on_behalf_of"),
        user=_user(asked.section("user", _USER_KEYS)) if asked.has("user") else None,
        parent=_parent(f.section("parent", _PARENT_KEYS), now) if f.has("parent") else None,
    )


def _risk(f: Fields) -> RiskFacts:
    task, workload = f.integer("task", 0), f.integer("workload", 0)
    for name, value in (("task", task), ("workload", workload)):
        if not 0 <= value <= 100:
            f.fail(name, "must be 0 to 100")
    return RiskFacts(task, workload)


def _case(
    raw: object, where: str, file: str, index: int, defaults: tuple[str, tuple[str, ...], float]
) -> Case:
    case = Fields(raw, where, _CASE_KEYS)
    name = case.text("name")
    case = case.renamed(f"{where} ({name})")
    principal = case.text("principal", defaults[0])
    now = case.number("now", defaults[2])
    expect = case.text("expect")
    if expect not in ("allow", "deny"):
        case.fail("expect", "must be 'allow' or 'deny'")
    reasons = tuple(sorted(case.strings("reasons"))) if case.has("reasons") else None
    if case.has("open"):
        if case.has("task") or case.has("request") or case.has("risk"):
            case.fail("open", "a case has either 'open' or 'task' + 'request' (+ 'risk')")
        opened = _open(
            case.section("open", {"workload", "playbook", "requested", "parent"}), principal, now
        )
        request = open_policy_request(principal, opened, now)
    else:
        if not case.has("request"):
            case.fail("request", "required (or 'open' for a grant case)")
        task = _task(case.section("task", _TASK_KEYS), now)
        facts = _request(case.section("request", _REQUEST_KEYS), defaults[1])
        risk = (
            _risk(case.section("risk", {"task", "workload"})) if case.has("risk") else RiskFacts()
        )
        request = request_policy_request(principal, task, facts, now, risk)
    return Case(file, index, name, request, expect == "allow", reasons)


def _parse(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        raise InvalidInput("policy_test.invalid", f"{path}: cannot read: {err}") from None


def load_case_file(path: Path, now: float | None = None) -> list[Case]:
    """Parse and validate one case file (every case, before any runs)."""
    top = Fields(_parse(path), str(path), _FILE_KEYS)
    principal = top.text("principal", DEFAULT_PRINCIPAL)
    internal = top.strings("internal_destinations")
    when = top.number("now", time.time() if now is None else now)
    raw_cases = top.items("cases")
    if not raw_cases:
        top.fail("cases", "needs at least one case")
    return [
        _case(raw, f"{path}: cases[{i}]", str(path), i, (principal, internal, when))
        for i, raw in enumerate(raw_cases)
    ]


def case_files(path: Path) -> list[Path]:
    """``path`` itself, or every case file under the folder ``path`` (sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InvalidInput("policy_test.not_found", f"{path}: no such file or folder")
    return sorted(p for p in path.rglob("*") if p.suffix in CASE_SUFFIXES and p.is_file())


def run_cases(engine: PolicyEngine, cases: list[Case]) -> list[CaseResult]:
    return [CaseResult(case, engine.decide(case.request)) for case in cases]


def run_path(engine: PolicyEngine, path: Path, now: float | None = None) -> list[CaseResult]:
    """Load every case file at ``path`` (refusing on the first malformed one), then run."""
    files = case_files(path)
    if not files:
        raise InvalidInput("policy_test.none", f"{path}: no {'/'.join(CASE_SUFFIXES)} files")
    cases = [case for file in files for case in load_case_file(file, now)]
    return run_cases(engine, cases)
