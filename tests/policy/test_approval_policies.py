"""Policies that ask for a human approval: a ``forbid`` annotated ``@approval("required")``
whose match alone denies a request that would otherwise be allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy.conftest import PERMIT, write_set
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.engine import PolicyLoadError, PolicyRequest

ASK = (
    '@id("approval.level")\n@approval("required")\n'
    "forbid (principal, action, resource) when { context.task.level > 5 };\n"
)
HARD = '@id("deny.level")\nforbid (principal, action, resource) when { context.task.level > 8 };\n'


def _ask(level: int) -> PolicyRequest:
    context = {"now": 1, "task": {"state": "active", "level": level}}
    return PolicyRequest("spiffe://example.org/a", "request", "Resource", "db/x", context)


def test_a_request_denied_only_by_an_approval_policy_asks_for_approval(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT + ASK + HARD}))
    assert engine.snapshot.approval_ids == {"approval.level"}
    asked = engine.decide(_ask(6))
    assert (asked.allowed, asked.approval, asked.policy_ids) == (False, True, ("approval.level",))
    # the twin below the line is allowed outright, no approval
    plain = engine.decide(_ask(1))
    assert (plain.allowed, plain.approval) == (True, False)
    # another forbid matching too: a plain deny, an approval would not help
    both = engine.decide(_ask(9))
    assert (both.allowed, both.approval) == (False, False)
    assert both.policy_ids == ("approval.level", "deny.level")


def test_no_permit_means_no_approval(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": ASK}))
    result = engine.decide(_ask(6))
    assert (result.allowed, result.approval, result.policy_ids) == (False, False, ())


def test_a_set_without_approval_policies_never_asks(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT + HARD}))
    assert engine.snapshot.without_approval is None
    result = engine.decide(_ask(9))
    assert (result.allowed, result.approval) == (False, False)


@pytest.mark.parametrize(
    "text",
    [
        '@id("x")\n@approval("required")\npermit (principal, action, resource);\n',
        '@id("x")\n@approval("maybe")\nforbid (principal, action, resource);\n',
    ],
)
def test_an_approval_annotation_marks_only_a_forbid_as_required(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyLoadError) as refused:
        CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT + text}))
    assert refused.value.reason == "policy.invalid"
    assert "@approval" in refused.value.message
