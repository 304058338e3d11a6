"""A static downstream secret is a finding naming where it is kept, never what it is;
what runs in shadow mode is a finding naming it, with the enforced twin giving none."""

from __future__ import annotations

import pytest

from zerolane.posture.config_findings import (
    ShadowPlaybook,
    ShadowRoutes,
    StaticCredential,
    UnmarkedRule,
    config_findings,
)
from zerolane.posture.findings import Severity


def test_a_static_secret_in_a_file_is_found_by_its_path() -> None:
    (finding,) = config_findings(
        [StaticCredential("zerolane.toml", "[grants.static]", secret_file="/etc/zl/secret")]
    )
    assert finding.rule == "config.static_grant"
    assert finding.nhi == ("NHI7:2025", "NHI9:2025")
    assert finding.subject == "zerolane.toml [grants.static]"
    assert "kept in file /etc/zl/secret" in finding.message
    assert "docs/grants.md" in finding.remedy
    assert finding.details["secret_file"] == "/etc/zl/secret"
    assert finding.details["secret_env"] is None


def test_one_in_the_environment_is_also_a_leak_risk() -> None:
    (finding,) = config_findings(
        [StaticCredential("gw.toml", "upstreams[0] (billing).credential", secret_env="BILLING")]
    )
    assert finding.nhi == ("NHI2:2025", "NHI7:2025", "NHI9:2025")
    assert "kept in environment variable BILLING" in finding.message


def test_no_static_secret_no_finding() -> None:
    assert config_findings([]) == []


@pytest.mark.parametrize(
    ("secret_file", "secret_env"), [(None, None), ("/etc/zl/secret", "SECRET")]
)
def test_a_credential_is_kept_in_exactly_one_place(
    secret_file: str | None, secret_env: str | None
) -> None:
    with pytest.raises(ValueError, match="in a file or an environment variable"):
        StaticCredential("zerolane.toml", "[grants.static]", secret_file, secret_env)


# -- what runs in shadow mode


def test_a_policy_set_in_shadow_is_high() -> None:
    (finding,) = config_findings([], shadow_policies="/home/zl/zerolane.toml")
    assert (finding.rule, finding.severity, finding.nhi) == (
        "config.shadow_policies",
        Severity.HIGH,
        ("NHI5:2025",),
    )
    assert finding.subject == "/home/zl/zerolane.toml policy_mode"
    assert "nothing the policies deny is refused" in finding.message
    assert "zerolane report shadow" in finding.remedy
    assert 'policy_mode = "enforce"' in finding.remedy
    # the twin: an enforced policy set (None) is no finding
    assert config_findings([], shadow_policies=None) == []


def test_a_playbook_in_shadow_says_how_many_live_tasks_run_in_it() -> None:
    trial, one, enforced, idle = config_findings(
        [],
        playbooks=[
            ShadowPlaybook("trial", shadow=True, live_tasks=3),
            ShadowPlaybook("one", shadow=True, live_tasks=1),
            ShadowPlaybook("back", shadow=False, live_tasks=2),
            ShadowPlaybook("new", shadow=True, live_tasks=0),
        ],
    )
    assert (trial.rule, trial.severity, trial.nhi) == (
        "config.shadow_playbook",
        Severity.MEDIUM,
        ("NHI5:2025",),
    )
    assert trial.subject == "playbook trial"
    assert "3 live tasks in shadow now" in trial.message
    assert "1 live task in shadow now" in one.message
    assert trial.details == {"playbook": "trial", "mode": "shadow", "live_tasks": 3}
    assert "mode: enforce" in trial.remedy
    assert "zerolane report shadow" in trial.remedy
    # enforced again, its tasks opened in shadow keep it until they end
    assert "is enforced, but 2 live tasks opened while it was in shadow" in enforced.message
    assert enforced.details["mode"] == "enforce"
    assert idle.details["live_tasks"] == 0
    # the twin: an enforced playbook with no task in shadow is no finding
    assert config_findings([], playbooks=[ShadowPlaybook("plain", False, 0)]) == []


def test_gateway_routes_in_shadow_are_named() -> None:
    http, mcp = config_findings(
        [],
        routes=[
            ShadowRoutes("gw.toml", "upstreams[0] (billing)", ("GET /invoices/{id}",), 2),
            ShadowRoutes("mcp.toml", "servers[0] (files)", ("tool delete",), None),
            ShadowRoutes("gw.toml", "upstreams[1] (public)", (), 1),  # enforced: nothing
        ],
    )
    assert (http.rule, http.severity, http.nhi) == (
        "config.shadow_route",
        Severity.MEDIUM,
        ("NHI5:2025",),
    )
    assert http.subject == "gw.toml upstreams[0] (billing)"
    assert "runs 1 of 2 routes in shadow" in http.message
    assert "(GET /invoices/{id})" in http.message
    assert http.details["routes"] == ["GET /invoices/{id}"]
    assert "runs routes in shadow" in mcp.message
    assert "(tool delete)" in mcp.message
    assert mcp.details["total"] is None


# -- shipped safety rules a home holds without @shadow("never")

UNMARKED = (
    UnmarkedRule("risk.high", "/zl/policies/requests.cedar", "/pkg/default/requests.cedar"),
    UnmarkedRule(
        "flow.egress_after_sensitive_read",
        "/zl/policies/requests.cedar",
        "/pkg/default/requests.cedar",
    ),
    UnmarkedRule("task.expired", "/zl/policies/old.cedar", "/pkg/default/requests.cedar"),
)


def test_unmarked_safety_rules_are_one_finding_naming_them() -> None:
    (finding,) = config_findings([], unmarked=UNMARKED)
    assert (finding.rule, finding.severity, finding.nhi) == (
        "config.safety_rule_unmarked",
        Severity.MEDIUM,  # nothing runs in shadow in this home
        ("NHI5:2025",),
    )
    assert finding.details["policies"] == [
        "task.expired",
        "flow.egress_after_sensitive_read",
        "risk.high",
    ]
    assert finding.details["files"] == ["/zl/policies/old.cedar", "/zl/policies/requests.cedar"]
    assert finding.subject == "/zl/policies/old.cedar, /zl/policies/requests.cedar"
    assert "flow.egress_after_sensitive_read, risk.high" in finding.message
    assert "nothing runs in shadow mode now" in finding.message
    assert 'add @shadow("never") on its own line under the @id' in finding.remedy
    assert "/pkg/default/requests.cedar" in finding.remedy
    assert "zerolane policy reload" in finding.remedy
    # the twin: every safety rule marked (or removed) is no finding
    assert config_findings([], unmarked=()) == []


@pytest.mark.parametrize(
    "shadow",
    [
        {"shadow_policies": "/zl/zerolane.toml"},
        {"playbooks": [ShadowPlaybook("trial", True, 0)]},
        {"playbooks": [ShadowPlaybook("trial", False, 1)]},
        {"routes": [ShadowRoutes("gw.toml", "upstreams[0] (b)", ("GET /x",), 1)]},
    ],
)
def test_they_are_high_when_anything_runs_in_shadow(shadow: dict[str, object]) -> None:
    found = config_findings([], unmarked=UNMARKED, **shadow)  # type: ignore[arg-type]
    (finding,) = [f for f in found if f.rule == "config.safety_rule_unmarked"]
    assert finding.severity == Severity.HIGH
    assert finding.details["shadow"] is True
    assert "so they are relaxed now" in finding.message


def test_they_stay_medium_when_nothing_runs_in_shadow() -> None:
    credential = StaticCredential("zl.toml", "[grants.static]", secret_env="X")
    found = config_findings(
        [credential],
        playbooks=[ShadowPlaybook("done", False, 0)],
        routes=[ShadowRoutes("gw.toml", "upstreams[0] (b)", (), 1)],
        unmarked=UNMARKED,
    )
    (finding,) = [f for f in found if f.rule == "config.safety_rule_unmarked"]
    assert finding.severity == Severity.MEDIUM
