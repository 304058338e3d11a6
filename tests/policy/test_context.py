"""The context contract: shapes the schema accepts, times floored, scope computed here."""

from __future__ import annotations

import dataclasses

import cedarpy
import pytest

from tests.policy import factories as f
from zerolane.policy.cedar import NO_ENTITIES, CedarEngine
from zerolane.policy.context import (
    McpFacts,
    OpenFacts,
    ParentFacts,
    RequestFacts,
    RiskFacts,
    TaskFacts,
    UserFacts,
    is_internal,
    open_context,
    open_policy_request,
    request_context,
    request_policy_request,
)
from zerolane.policy.engine import PolicyRequest
from zerolane.types import Sensitivity, TaskState

MONDAY_NOON = 1_704_110_400.75  # 2024-01-01T12:00:00.75Z, a Monday


def test_request_context() -> None:
    context = request_context(
        f.task(on_behalf_of=None, touched=2), f.request(method="post"), MONDAY_NOON
    )
    assert context["now"] == 1_704_110_400
    assert context["hour_utc"] == 12
    assert context["weekday"] == 0
    assert context["task"] == {
        "id": "tsk_1",
        "playbook": "reports",
        "intent": "summarise the quarter",
        "state": "active",
        "actions": ["read", "write"],
        "destinations": ["db.example.org", "api.partner.com"],
        "resources": ["finance/reports/*", "crm/**"],
        "ceiling": 2,
        "touched": 2,
        "calls_used": 0,
        "max_calls": 10,
        "created_at": int(f.NOW - 60),
        "expires_at": int(f.NOW + 300),
        "depth": 0,
        "delegated": False,
        "on_behalf_of": "",
    }
    assert context["request"] == {
        "action": "read",
        "resource": "finance/reports/q3",
        "destination": "db.example.org",
        "method": "POST",
        "destination_internal": True,
        "sensitivity": 1,
        "resource_in_scope": True,
    }


def test_times_are_floored() -> None:
    context = request_context(f.task(expires_at=f.NOW + 0.9), f.request(), f.NOW + 0.5)
    task = context["task"]
    assert isinstance(task, dict)
    assert context["now"] == task["expires_at"] == int(f.NOW)  # so: expired, never later


@pytest.mark.parametrize(
    ("resource", "in_scope"),
    [
        ("finance/reports/q3", True),
        ("crm/a", True),
        ("crm", False),
        ("finance/reports", False),
        ("finance/reports/*", False),  # a wildcard is never a concrete resource
        ("finance//q3", False),
        ("", False),
    ],
)
def test_resource_in_scope(resource: str, in_scope: bool) -> None:
    context = request_context(f.task(), f.request(resource=resource), f.NOW)
    assert context["request"]["resource_in_scope"] is in_scope  # type: ignore[index]


def test_open_context() -> None:
    context = open_context(f.opening(owner=None, on_behalf_of="alice"), MONDAY_NOON)
    assert (context["now"], context["hour_utc"], context["weekday"]) == (1_704_110_400, 12, 0)
    assert context["workload"] == {
        "trust_domain": "example.org",
        "selectors": ["k8s:ns:finance"],
        "owner": "",
    }
    assert context["playbook"] == {
        "name": "reports",
        "opener_matches": True,
        "delegable": False,
        "max_depth": 0,
        "ceiling": 2,
        "max_ttl": 3600,
        "max_calls": 100,
    }
    assert context["requested"] == {
        "actions": ["read"],
        "destinations": ["db.example.org"],
        "ceiling": 1,
        "ttl": 300,
        "max_calls": 50,
        "depth": 0,
        "intent": "summarise the quarter",
        "on_behalf_of": "alice",
    }


def _schema_errors(engine: CedarEngine, asked: PolicyRequest) -> list[str]:
    """What Cedar finds wrong with ``asked`` checked against the engine's schema (the
    decider's engine leaves that check out for the shipped schema: these tests are
    what lets it)."""
    kinds = {"Resource": "Zerolane::Resource", "Playbook": "Zerolane::Playbook"}
    result = cedarpy.is_authorized(
        {
            "principal": {"type": "Zerolane::Workload", "id": asked.principal},
            "action": {"type": "Zerolane::Action", "id": asked.action},
            "resource": {"type": kinds[asked.resource_type], "id": asked.resource},
            "context": dict(asked.context),
        },
        engine.snapshot.policies,
        NO_ENTITIES,
        engine.snapshot.schema,
    )
    return list(result.diagnostics.errors)


USER = UserFacts("alice", "https://issuer.example.org")
MCP = McpFacts.of_call(
    "files",
    "read_file",
    read_only=True,
    destructive=False,
    arguments={"path": "/srv/a.txt", "opts": {"n": [1, 2]}, "big": "x" * 5000},
)
PARENT = ParentFacts(
    id="tsk_0",
    owner=f.AGENT,
    playbook="reports",
    depth=0,
    actions=("read",),
    resources=("finance/**",),
    destinations=("db.example.org",),
    ceiling=Sensitivity.CONFIDENTIAL,
    expires_at=f.NOW + 600.9,
    calls_left=7,
)


@pytest.mark.parametrize(
    ("task", "request_"),
    [
        (f.task(), f.request()),
        (f.task(user=USER, on_behalf_of="alice", delegated=True, depth=2), f.request()),
        (f.task(state=TaskState.SUSPENDED, touched=3), f.request(mcp=MCP)),
        (f.task(actions=(), resources=(), destinations=()), f.request(destination="")),
        (
            f.task(),
            f.request(
                mcp=McpFacts.of_call(
                    "s",
                    "",
                    read_only=True,
                    destructive=False,
                    method="resources/read",
                    uri="file:///a",
                )
            ),
        ),
    ],
)
@pytest.mark.parametrize("risk", [RiskFacts(), RiskFacts(task=100, workload=37)])
def test_request_contexts_fit_the_shipped_schema(
    default_engine: CedarEngine, task: TaskFacts, request_: RequestFacts, risk: RiskFacts
) -> None:
    """Every shape the builder makes passes Cedar's check against the shipped schema."""
    asked = request_policy_request(f.AGENT, task, request_, f.NOW + 0.7, risk)
    assert (asked.principal, asked.action, asked.resource_type) == (f.AGENT, "request", "Resource")
    assert _schema_errors(default_engine, asked) == []
    assert default_engine.decide(asked).errors == ()


@pytest.mark.parametrize(
    "opening",
    [
        f.opening(),
        f.opening(user=USER, on_behalf_of="alice"),
        f.opening(parent=PARENT, depth=1),
        f.opening(parent=dataclasses.replace(PARENT, user=USER), user=USER, depth=1),
    ],
)
def test_open_contexts_fit_the_shipped_schema(
    default_engine: CedarEngine, opening: OpenFacts
) -> None:
    opened = open_policy_request(f.AGENT, opening, f.NOW)
    assert (opened.action, opened.resource_type, opened.resource) == (
        "open_task",
        "Playbook",
        "reports",
    )
    assert _schema_errors(default_engine, opened) == []
    assert default_engine.decide(opened).errors == ()


def test_the_checker_finds_a_context_that_does_not_fit(default_engine: CedarEngine) -> None:
    """The twin of the two above: the same check refuses a context off the schema."""
    asked = request_policy_request(f.AGENT, f.task(), f.request(), f.NOW)
    context = dict(asked.context)
    context["task"] = {**context["task"], "depth": "two"}  # type: ignore[dict-item]
    assert _schema_errors(default_engine, dataclasses.replace(asked, context=context))
    no_risk = {k: v for k, v in asked.context.items() if k != "risk"}  # risk is required
    assert _schema_errors(default_engine, dataclasses.replace(asked, context=no_risk))


@pytest.mark.parametrize(
    ("destination", "patterns", "internal"),
    [
        ("db.example.org", ["*.example.org"], True),
        ("DB.Example.ORG.", ["*.example.org"], True),
        ("a.b.example.org", ["*.example.org"], True),
        ("example.org", ["*.example.org"], False),
        ("example.org", ["*.example.org", "example.org"], True),
        ("db.example.org.evil.net", ["*.example.org"], False),
        ("db.example.org:5432", ["*.example.org"], True),
        ("db.example.org:5432", ["*.example.org:5432"], True),
        ("db.example.org:5433", ["*.example.org:5432"], False),
        ("10.0.3.7", ["10.0.*"], True),
        ("10.1.3.7", ["10.0.*"], False),
        ("db1.example.org", ["db[0-9].example.org"], True),
        ("db.example.org", [], False),
        ("", ["*"], False),
    ],
)
def test_is_internal(destination: str, patterns: list[str], internal: bool) -> None:
    assert is_internal(destination, patterns) is internal


def test_sensitivity_is_a_rank() -> None:
    context = request_context(f.task(), f.request(sensitivity=Sensitivity.RESTRICTED), f.NOW)
    assert context["request"]["sensitivity"] == 3  # type: ignore[index]
