"""Shadow mode in the decision core: what the policies alone deny is let through as a
shadow allow (naming what would have denied it and which mode let it through); the checks
in code, fail-closed refusals, a detection's hold and a safety rule (a forbid annotated
``@shadow("never")``) are never relaxed. Each test's twin is the same request enforced,
or one the policies deny by the scope alone."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conformance.test_spent_proofs import NOW
from tests.tasks.test_decision_core import (
    FACTS,
    Clock,
    Engine,
    holder,
    task,
)
from zerolane.decision import Shadow
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import RiskFacts
from zerolane.policy.defaults import DEFAULT_POLICY_DIR
from zerolane.policy.engine import PolicyRequest, PolicyResult
from zerolane.store.records import TaskHold, TaskRecord
from zerolane.tasks.decision_core import Allow, DecisionCore, Deny
from zerolane.tasks.scope import Scope
from zerolane.tasks.task_cache import TaskCache
from zerolane.types import Sensitivity, TaskState

ROUTE = "route:finance GET /reports/{id}"


class Answers:
    """An engine answering one fixed result (or raising)."""

    version = "v1"

    def __init__(self, result: PolicyResult | None) -> None:
        self.result = result

    def decide(self, request: PolicyRequest) -> PolicyResult:
        if self.result is None:
            raise RuntimeError("the engine broke")
        return self.result


def shadow_core(
    engine: Engine | Answers | None = None,
    *,
    policies: bool = False,
    held: TaskHold | None = None,
) -> DecisionCore:
    chosen = engine or Engine(allow=False)
    return DecisionCore(
        engine=lambda: chosen,
        clock=Clock(),
        cache=TaskCache(8),
        held=(lambda task_id, parent_id: held) if held is not None else None,
        shadow_policies=policies,
    )


def shadow_task(**changes: object) -> TaskRecord:
    """A task opened from a playbook in shadow mode (its scope says so)."""
    scope = Scope(
        ("read",), ("reports/**",), ("api.example.org",), Sensitivity.CONFIDENTIAL, shadow=True
    )
    return dataclasses.replace(task(), scope=scope.to_json(), **changes)  # type: ignore[arg-type]


def test_a_policy_deny_is_a_shadow_allow_under_the_policy_set_in_shadow() -> None:
    stored = task()
    allowed = shadow_core(policies=True).decide(holder(stored), FACTS, (stored,))
    assert isinstance(allowed, Allow)
    assert allowed.shadow == Shadow(("deny.reports",), ("policies",))
    assert allowed.policies == ("deny.reports",)  # the policies that would have denied it
    assert allowed.spend.expected_calls_used == 0  # it spends a call like an allow
    # the twin: the same policy set enforced denies it
    denied = shadow_core().decide(holder(stored), FACTS, (stored,))
    assert denied == Deny(("deny.reports",), ("deny.reports",))


def test_a_task_of_a_playbook_in_shadow_and_a_route_in_shadow() -> None:
    stored = shadow_task()
    allowed = shadow_core().decide(holder(stored), FACTS, (stored,))
    assert isinstance(allowed, Allow)
    assert allowed.shadow == Shadow(("deny.reports",), ("playbook:reports",))
    plain = task()
    routed = shadow_core().decide(holder(plain), FACTS, (plain,), shadow=ROUTE)
    assert isinstance(routed, Allow)
    assert routed.shadow == Shadow(("deny.reports",), (ROUTE,))
    # all three at once name all three
    every = shadow_core(policies=True).decide(holder(stored), FACTS, (stored,), shadow=ROUTE)
    assert isinstance(every, Allow)
    assert every.shadow is not None
    assert every.shadow.modes == ("policies", "playbook:reports", ROUTE)
    # the twin: the same task enforced everywhere is denied
    assert isinstance(shadow_core().decide(holder(plain), FACTS, (plain,)), Deny)


def test_an_allow_in_shadow_mode_is_a_plain_allow() -> None:
    stored = shadow_task()
    allowed = shadow_core(Engine(allow=True), policies=True).decide(
        holder(stored), FACTS, (stored,), shadow=ROUTE
    )
    assert isinstance(allowed, Allow)
    assert allowed.shadow is None
    assert allowed.policies == ("task.request",)


def test_no_permit_is_named_as_the_would_deny_reason() -> None:
    stored = task()
    result = PolicyResult(False, (), ())
    allowed = shadow_core(Answers(result)).decide(holder(stored), FACTS, (stored,), shadow=ROUTE)
    assert isinstance(allowed, Allow)
    assert allowed.shadow == Shadow(("policy.no_permit",), (ROUTE,))
    assert allowed.policies == ()


def test_an_approval_the_policies_ask_is_would_require_approval() -> None:
    stored = task()
    asked = PolicyResult(False, ("approve.exports",), (), approval=True)
    allowed = shadow_core(Answers(asked)).decide(holder(stored), FACTS, (stored,), shadow=ROUTE)
    assert isinstance(allowed, Allow)  # no approval is asked for: nothing is created
    assert allowed.shadow == Shadow(("approval.required",), (ROUTE,))
    assert allowed.policies == ("approve.exports",)
    # the twin: enforced, the approval is required (the shell asks for one)
    denied = shadow_core(Answers(asked)).decide(holder(stored), FACTS, (stored,))
    assert isinstance(denied, Deny)
    assert (denied.reasons, denied.approval) == (("approval.required",), "v1")


HOLD = TaskHold("t1", "suspicious", "scope_probing", "7", 100.0)


@pytest.mark.parametrize(
    "result",
    [
        PolicyResult(True, ("task.request",), ()),  # allowed: the hold asks approval
        PolicyResult(False, ("approve.exports",), (), approval=True),
        PolicyResult(False, ("deny.reports",), ()),  # denied under the hold
    ],
)
def test_a_held_task_is_never_relaxed(result: PolicyResult) -> None:
    stored = shadow_task()
    held = shadow_core(Answers(result), policies=True, held=HOLD)
    denied = held.decide(holder(stored), FACTS, (stored,), shadow=ROUTE)
    assert isinstance(denied, Deny)
    assert not denied.by_policies
    # the twin: the same request with no hold on the task is let through in shadow
    free = shadow_core(Answers(result), policies=True).decide(
        holder(stored), FACTS, (stored,), shadow=ROUTE
    )
    assert isinstance(free, Allow)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"token_jti": "another"}, "token.task_mismatch"),
        ({"state": TaskState.COMPLETED}, "task.completed"),
        ({"state": TaskState.REVOKED}, "task.revoked"),
        ({"state": TaskState.SUSPENDED}, "task.suspended"),
        ({"expires_at": 1.0}, "task.expired"),
        ({"calls_used": 10}, "task.budget_exhausted"),
    ],
)
def test_the_checks_in_code_are_never_relaxed(changes: dict[str, object], reason: str) -> None:
    stored = shadow_task()
    changed = dataclasses.replace(stored, **changes)  # type: ignore[arg-type]
    everything = shadow_core(Engine(allow=True), policies=True)
    denied = everything.decide(holder(stored), FACTS, (changed,), shadow=ROUTE)
    assert isinstance(denied, Deny)
    assert denied.reasons == (reason,)
    # the twin: the task as it was is allowed
    assert isinstance(everything.decide(holder(stored), FACTS, (stored,), shadow=ROUTE), Allow)


def test_an_unknown_task_is_never_relaxed() -> None:
    stored = shadow_task()
    core = shadow_core(policies=True)
    assert core.decide(holder(stored), FACTS, (None,), shadow=ROUTE) == Deny(("task.unknown",))


@pytest.mark.parametrize(
    "engine",
    [
        Answers(None),  # the engine raised
        Answers(PolicyResult(False, (), ("boom",), reasons=("policy.schema_outdated",))),
    ],
)
def test_a_policy_error_fails_closed_in_shadow_too(engine: Answers) -> None:
    stored = shadow_task()
    denied = shadow_core(engine, policies=True).decide(
        holder(stored), FACTS, (stored,), shadow=ROUTE
    )
    assert isinstance(denied, Deny)
    assert denied.reasons[0] == "policy.error"
    assert not denied.by_policies


def test_a_shadow_allow_on_a_guess_is_still_checked_by_its_write() -> None:
    """A shadow allow decided on the task as last known is an allow like any other: the
    compare-and-set of its spend checks it against what is stored."""
    stored = task()
    core = shadow_core(policies=True)
    first = core.decide(holder(stored), FACTS, (stored,))
    assert isinstance(first, Allow)
    core.handed_over(first)
    guessed = core.decide(holder(stored), FACTS, None)
    assert isinstance(guessed, Allow)
    assert guessed.shadow is not None
    assert guessed.spend.expected_calls_used == 1


# -- safety rules: a forbid annotated @shadow("never") (the shipped flow and risk rules)


@pytest.fixture(scope="module")
def shipped() -> CedarEngine:
    """The shipped policy set, as the decider runs it."""
    return CedarEngine(DEFAULT_POLICY_DIR, built_requests=True)


OUTSIDE = dataclasses.replace(FACTS, sensitivity=Sensitivity.INTERNAL)  # api.example.org
DELETE = dataclasses.replace(OUTSIDE, action="delete")  # outside the task's actions


def shipped_core(engine: CedarEngine, risk: int = 0) -> DecisionCore:
    return DecisionCore(
        engine=lambda: engine,
        clock=Clock(),
        cache=TaskCache(8),
        risk=lambda task_id, workload: RiskFacts(task=risk),
    )


def test_egress_after_a_sensitive_read_stays_denied_under_a_playbook_in_shadow(
    shipped: CedarEngine,
) -> None:
    read = shadow_task(touched=int(Sensitivity.CONFIDENTIAL))
    denied = shipped_core(shipped).decide(holder(read), OUTSIDE, (read,), shadow=ROUTE)
    assert denied == Deny(
        ("flow.egress_after_sensitive_read",), ("flow.egress_after_sensitive_read",)
    )
    assert not denied.by_policies
    # the twin: denied by the scope alone, the same task's request is a shadow allow
    fresh = shadow_task()
    let = shipped_core(shipped).decide(holder(fresh), DELETE, (fresh,))
    assert isinstance(let, Allow)
    assert let.shadow == Shadow(("scope.action",), ("playbook:reports",))
    # both at once: the flow rule keeps the deny, naming both
    both = shipped_core(shipped).decide(holder(read), DELETE, (read,))
    assert isinstance(both, Deny)
    assert both.reasons == ("flow.egress_after_sensitive_read", "scope.action")


def test_a_risky_task_stays_kept_off_sensitive_data_in_shadow(shipped: CedarEngine) -> None:
    stored = shadow_task()
    risky = shipped_core(shipped, risk=60)
    denied = risky.decide(holder(stored), FACTS, (stored,), shadow=ROUTE)
    assert denied == Deny(("risk.high",), ("risk.high",))
    # the twin: the same task at low risk reads it, and a scope deny is a shadow allow
    calm = shipped_core(shipped)
    assert isinstance(calm.decide(holder(stored), FACTS, (stored,)), Allow)
    let = calm.decide(holder(stored), DELETE, (stored,))
    assert isinstance(let, Allow)
    assert let.shadow == Shadow(("scope.action",), ("playbook:reports",))


def test_the_policy_copy_of_a_check_in_code_stays_denied_in_shadow(shipped: CedarEngine) -> None:
    """Cedar sees whole seconds: in the last second of its window a task is expired to
    the policies before the check in code says so; shadow does not relax it either."""
    ending = shadow_task(expires_at=NOW + 0.5)
    denied = shipped_core(shipped).decide(holder(ending), FACTS, (ending,), shadow=ROUTE)
    assert denied == Deny(("task.expired",), ("task.expired",))
    # the twin: with a second more of its window, the same request is allowed
    live = shadow_task(expires_at=NOW + 1.5)
    assert isinstance(shipped_core(shipped).decide(holder(live), FACTS, (live,)), Allow)


def test_an_approval_a_safety_rule_asks_is_asked_in_shadow_too() -> None:
    stored = shadow_task()
    always = PolicyResult(False, ("approve.always",), (), approval=True, shadow_never=True)
    asked = shadow_core(Answers(always), policies=True).decide(
        holder(stored), FACTS, (stored,), shadow=ROUTE
    )
    assert isinstance(asked, Deny)
    assert (asked.reasons, asked.policies, asked.approval) == (
        ("approval.required",),
        ("approve.always",),
        "v1",
    )
    # the twin: an approval an ordinary policy asks is would-require-approval
    plain = dataclasses.replace(always, shadow_never=False)
    let = shadow_core(Answers(plain), policies=True).decide(holder(stored), FACTS, (stored,))
    assert isinstance(let, Allow)
    assert let.shadow == Shadow(("approval.required",), ("policies", "playbook:reports"))
