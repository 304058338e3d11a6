"""The default policy set: every rule denies with its reason id, its twin is allowed."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from tests.policy import factories as f
from zerolane.errors import Conflict
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import open_policy_request, request_policy_request
from zerolane.policy.defaults import DEFAULT_POLICY_DIR, default_files, install_defaults
from zerolane.types import Sensitivity as S
from zerolane.types import TaskState

# (reason id, task changes, request changes) for the denial; twin changes follow.
REQUEST_RULES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("task.inactive", {"state": TaskState.SUSPENDED}, {}, {"state": TaskState.ACTIVE}, {}),
    ("task.inactive", {"state": TaskState.COMPLETED}, {}, {"state": TaskState.ACTIVE}, {}),
    ("task.expired", {"expires_at": f.NOW}, {}, {"expires_at": f.NOW + 1}, {}),
    ("task.expired", {"expires_at": f.NOW - 0.5}, {}, {"expires_at": f.NOW + 1.5}, {}),
    ("task.budget_exhausted", {"calls_used": 10}, {}, {"calls_used": 9}, {}),
    ("scope.action", {}, {"action": "delete"}, {}, {"action": "write"}),
    ("scope.resource", {}, {"resource": "finance/payroll/q3"}, {}, {"resource": "crm/a/b"}),
    ("scope.resource", {}, {"resource": "finance/reports/q3/raw"}, {}, {"resource": "crm/q3/raw"}),
    ("scope.resource", {}, {"resource": "finance/*/q3"}, {}, {"resource": "finance/reports/q3"}),
    ("scope.destination", {}, {"destination": "evil.net"}, {}, {"destination": "api.partner.com"}),
    ("scope.sensitivity", {}, {"sensitivity": S.RESTRICTED}, {}, {"sensitivity": S.CONFIDENTIAL}),
    (
        "flow.egress_after_sensitive_read",
        {"touched": int(S.CONFIDENTIAL)},
        {"destination": "api.partner.com", "destination_internal": False},
        {"touched": int(S.INTERNAL)},
        {"destination": "api.partner.com", "destination_internal": False},
    ),
    (
        "flow.egress_after_sensitive_read",
        {"touched": int(S.RESTRICTED), "ceiling": S.RESTRICTED},
        {"destination": "api.partner.com", "destination_internal": False},
        {"touched": int(S.RESTRICTED), "ceiling": S.RESTRICTED},
        {"destination_internal": True},
    ),
]


@pytest.mark.parametrize(
    ("reason", "task", "ask", "twin_task", "twin_ask"),
    REQUEST_RULES,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(REQUEST_RULES)],
)
def test_request_rule_and_twin(
    default_engine: CedarEngine,
    reason: str,
    task: dict[str, Any],
    ask: dict[str, Any],
    twin_task: dict[str, Any],
    twin_ask: dict[str, Any],
) -> None:
    denied = default_engine.decide(
        request_policy_request(f.AGENT, f.task(**task), f.request(**ask), f.NOW)
    )
    assert not denied.allowed
    assert denied.policy_ids == (reason,)
    assert denied.errors == ()
    twin = default_engine.decide(
        request_policy_request(
            f.AGENT,
            f.task(**{**task, **twin_task}),
            f.request(**{**ask, **twin_ask}),
            f.NOW,
        )
    )
    assert twin.allowed, twin
    assert twin.policy_ids == ("task.request",)


GRANT_RULES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("grant.ceiling", {"ceiling": S.RESTRICTED}, {"ceiling": S.CONFIDENTIAL}),
    ("grant.ttl", {"ttl": 3601}, {"ttl": 3600}),
    ("grant.max_calls", {"max_calls": 101}, {"max_calls": 100}),
    ("grant.delegation", {"depth": 1}, {"depth": 0}),
    ("grant.delegation", {"depth": 3, "delegable": True, "max_depth": 2}, {"depth": 2}),
]


@pytest.mark.parametrize(("reason", "changes", "twin"), GRANT_RULES)
def test_grant_rule_and_twin(
    default_engine: CedarEngine, reason: str, changes: dict[str, Any], twin: dict[str, Any]
) -> None:
    denied = default_engine.decide(open_policy_request(f.AGENT, f.opening(**changes), f.NOW))
    assert not denied.allowed
    assert denied.policy_ids == (reason,)
    allowed = default_engine.decide(
        open_policy_request(f.AGENT, f.opening(**{**changes, **twin}), f.NOW)
    )
    assert allowed.allowed
    assert allowed.policy_ids == ("grant.opener",)


def test_no_matching_permit_is_a_deny_with_no_policy_ids(default_engine: CedarEngine) -> None:
    result = default_engine.decide(
        open_policy_request(f.AGENT, f.opening(opener_matches=False), f.NOW)
    )
    assert not result.allowed
    assert result.policy_ids == ()
    assert result.errors == ()


def test_install_defaults(tmp_path: Path) -> None:
    target = tmp_path / "home" / "policies"
    written = install_defaults(target)
    assert sorted(p.relative_to(target) for p in written) == sorted(default_files())
    assert Path("tests/default_test.yaml") in default_files()
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert CedarEngine(target).version == CedarEngine(DEFAULT_POLICY_DIR).version


def test_install_defaults_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "policies"
    target.mkdir()
    (target / "requests.cedar").write_text("// mine")
    with pytest.raises(Conflict) as caught:
        install_defaults(target)
    assert caught.value.reason == "policy.exists"
    assert (target / "requests.cedar").read_text() == "// mine"
    assert not (target / "schema.cedarschema").exists()
