"""The control plane's decisions counter: every ``POST /v1/decide`` decision by outcome
(allow, deny, shadow) and reason, a shadow allow under its would-deny reason, never
counted as an allow."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tests.server.conftest import Api
from tests.server.task_fixtures import FINANCE, READ, TaskApi
from zerolane.decision import Decision, Shadow
from zerolane.errors import Refusal
from zerolane.server.metrics import Metrics

ROUTE = "route:finance DELETE /reports/{id}"
DELETE = {"action": "delete", "sensitivity": "internal"}  # outside the task's scope


def count(registry: CollectorRegistry, outcome: str, reason: str) -> float:
    value = registry.get_sample_value(
        "zerolane_decisions_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


def test_each_outcome_is_counted_under_its_reason() -> None:
    metrics = Metrics()
    allow = Decision("d1", True, (), ("task.request",), "t1", None)
    deny = Decision("d2", False, ("scope.action",), ("scope.action",), "t1", Refusal.FORBIDDEN)
    shadow = Decision(
        "d3",
        True,
        (),
        ("scope.action",),
        "t1",
        None,
        shadow=Shadow(("scope.action", "policy.no_permit"), (ROUTE,)),
    )
    for decision in (allow, deny, shadow, shadow):
        metrics.decided(decision)
    assert count(metrics.registry, "allow", "ok") == 1
    assert count(metrics.registry, "deny", "scope.action") == 1
    assert count(metrics.registry, "shadow", "scope.action") == 2  # the first would-deny
    assert count(metrics.registry, "allow", "scope.action") == 0  # never an allow


def test_decide_counts_allow_deny_and_shadow_on_metrics(api: Api) -> None:
    tapi = TaskApi(api)
    task = tapi.opened()
    report = f"{FINANCE}/reports/q3"
    assert tapi.decide(task, "GET", report, **READ)["decision"] == "allow"
    assert tapi.decide(task, "DELETE", report, **DELETE)["decision"] == "deny"
    assert tapi.decide(task, "DELETE", report, shadow=ROUTE, **DELETE)["decision"] == "shadow"
    text = api.client.get("/metrics").text
    assert 'zerolane_decisions_total{outcome="allow",reason="ok"} 1.0' in text
    assert 'zerolane_decisions_total{outcome="deny",reason="scope.action"} 1.0' in text
    assert 'zerolane_decisions_total{outcome="shadow",reason="scope.action"} 1.0' in text
    # a refused credential decides nothing: nothing is counted
    refused = api.client.post(
        "/v1/decide",
        json={"token": task.token, "request": {"method": "GET", "url": report}},
        headers={"Authorization": "Bearer zlep_wrong"},
    )
    assert refused.status_code == 401
    assert api.client.get("/metrics").text.count("zerolane_decisions_total{") == 3
