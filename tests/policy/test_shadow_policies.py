"""Safety rules: a ``forbid`` annotated ``@shadow("never")`` whose deny no shadow mode
relaxes. The loader names them (and refuses the annotation anywhere else); the engine
marks a deny one of them determined (:attr:`PolicyResult.shadow_never`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy import factories as f
from tests.policy.conftest import PERMIT, write_set
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import request_policy_request
from zerolane.policy.engine import PolicyLoadError, PolicyRequest
from zerolane.policy.loader import load_snapshot
from zerolane.types import Sensitivity as S

NEVER = (
    '@id("safety.level")\n@shadow("never")\n'
    "forbid (principal, action, resource) when { context.task.level > 5 };\n"
)
SCOPE = (
    '@id("scope.level")\nforbid (principal, action, resource) when { context.task.level > 3 };\n'
)
ASK = (
    '@id("approval.level")\n@approval("required")\n'
    "forbid (principal, action, resource) when { context.task.level == 2 };\n"
)
ASK_NEVER = (
    '@id("approval.always")\n@approval("required")\n@shadow("never")\n'
    "forbid (principal, action, resource) when { context.task.level == 1 };\n"
)


def _ask(level: int) -> PolicyRequest:
    context = {"now": 1, "task": {"state": "active", "level": level}}
    return PolicyRequest("spiffe://example.org/a", "request", "Resource", "db/x", context)


def test_the_snapshot_names_the_safety_rules(tmp_path: Path) -> None:
    snapshot = load_snapshot(write_set(tmp_path / "p", {"a.cedar": PERMIT + NEVER + SCOPE}))
    assert snapshot.shadow_never == {"safety.level"}
    # the twin: a set without the annotation names none
    plain = load_snapshot(write_set(tmp_path / "q", {"a.cedar": PERMIT + SCOPE}))
    assert plain.shadow_never == frozenset()


def test_a_deny_a_safety_rule_determined_is_marked(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT + NEVER + SCOPE}))
    # both forbids match: Cedar names both, and the safety rule marks the deny
    both = engine.decide(_ask(6))
    assert (both.allowed, both.policy_ids) == (False, ("safety.level", "scope.level"))
    assert both.shadow_never
    # the twin: denied by the scope rule alone, relaxable
    scoped = engine.decide(_ask(4))
    assert (scoped.allowed, scoped.policy_ids, scoped.shadow_never) == (
        False,
        ("scope.level",),
        False,
    )
    # an allow is never marked
    allowed = engine.decide(_ask(0))
    assert (allowed.allowed, allowed.shadow_never) == (True, False)


def test_a_deny_with_no_permit_is_relaxable(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": NEVER}))
    nothing = engine.decide(_ask(0))  # no permit, no forbid matched: none named
    assert (nothing.allowed, nothing.policy_ids, nothing.shadow_never) == (False, (), False)
    # the twin: the safety rule matching as well marks it
    matched = engine.decide(_ask(6))
    assert (matched.policy_ids, matched.shadow_never) == (("safety.level",), True)


def test_an_approval_policy_may_be_a_safety_rule_too(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT + ASK + ASK_NEVER}))
    assert engine.snapshot.approval_ids == {"approval.level", "approval.always"}
    assert engine.snapshot.shadow_never == {"approval.always"}
    always = engine.decide(_ask(1))  # asks an approval, even in shadow mode
    assert (always.approval, always.policy_ids, always.shadow_never) == (
        True,
        ("approval.always",),
        True,
    )
    # the twin: a plain approval policy's ask is relaxable
    asked = engine.decide(_ask(2))
    assert (asked.approval, asked.shadow_never) == (True, False)


def test_a_safety_rule_matched_with_no_permit_stays_marked(tmp_path: Path) -> None:
    """Decided again without the approval policies, a request no permit allows names no
    policy; the safety rule that matched still keeps the deny from being relaxed."""
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": ASK_NEVER}))
    denied = engine.decide(_ask(1))
    assert (denied.allowed, denied.approval, denied.policy_ids) == (False, False, ())
    assert denied.shadow_never
    # the twin: with no safety rule, the same set without a permit is relaxable
    plain = CedarEngine(write_set(tmp_path / "q", {"a.cedar": ASK}))
    assert not plain.decide(_ask(2)).shadow_never


@pytest.mark.parametrize(
    "text",
    [
        '@id("x")\n@shadow("never")\npermit (principal, action, resource);\n',
        '@id("x")\n@shadow("always")\nforbid (principal, action, resource);\n',
        '@id("x")\n@shadow("")\nforbid (principal, action, resource);\n',
        '@id("x")\n@shadow\nforbid (principal, action, resource);\n',
    ],
    ids=["on-a-permit", "another-value", "empty", "bare"],
)
def test_a_shadow_annotation_marks_only_a_forbid_as_never(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyLoadError) as refused:
        load_snapshot(write_set(tmp_path / "p", {"a.cedar": PERMIT + text}))
    assert refused.value.reason == "policy.invalid"
    assert refused.value.errors == ('a.cedar:3:1: @shadow("never") only marks a forbid policy',)


def test_a_bare_approval_annotation_is_refused(tmp_path: Path) -> None:
    """Without a value, ``@approval`` would be read as no annotation at all."""
    bare = '@id("x")\n@approval\nforbid (principal, action, resource);\n'
    with pytest.raises(PolicyLoadError) as refused:
        load_snapshot(write_set(tmp_path / "p", {"a.cedar": PERMIT + bare}))
    assert refused.value.reason == "policy.invalid"
    assert '@approval("required") only marks a forbid policy' in refused.value.message


SAFETY_RULES = {
    "task.inactive",
    "task.expired",
    "task.budget_exhausted",
    "flow.egress_after_sensitive_read",
    "risk.high",
}


def test_the_shipped_safety_rules(default_engine: CedarEngine) -> None:
    """The shipped set marks its safety rules, not its grants (scope, open_task)."""
    snapshot = default_engine.snapshot
    assert snapshot.shadow_never == SAFETY_RULES
    assert not any(pid.startswith(("scope.", "grant.")) for pid in snapshot.shadow_never)


def test_a_shipped_flow_deny_is_marked_and_its_scope_twin_is_not(
    default_engine: CedarEngine,
) -> None:
    outside = f.request(destination="api.partner.com", destination_internal=False)
    flow = default_engine.decide(
        request_policy_request(f.AGENT, f.task(touched=int(S.CONFIDENTIAL)), outside, f.NOW)
    )
    assert (flow.policy_ids, flow.shadow_never) == (("flow.egress_after_sensitive_read",), True)
    scope = default_engine.decide(
        request_policy_request(f.AGENT, f.task(), f.request(action="delete"), f.NOW)
    )
    assert (scope.policy_ids, scope.shadow_never) == (("scope.action",), False)
