"""The decision core on its own: no store, no thread, no loop. Each step's outcome is a
value (allow with the write to commit, deny with its reasons, the stored task is
needed, the compare-and-set lost: back off), which the decider's shells act on."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conformance.test_spent_proofs import NOW, _task
from zerolane.errors import ProofReplayed, Refusal, Unavailable
from zerolane.policy.context import RequestFacts, RiskFacts
from zerolane.policy.engine import PolicyRequest, PolicyResult
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import TaskHolder
from zerolane.tasks.decision_core import (
    BACKOFF_CAP,
    MAX_ATTEMPTS,
    NEEDS_READ,
    Allow,
    DecisionCore,
    Deny,
    Retry,
    Spent,
)
from zerolane.tasks.scope import Scope
from zerolane.tasks.task_cache import TaskCache
from zerolane.tokens.rfc9068 import TaskTokenClaims
from zerolane.types import Sensitivity

OWNER = "spiffe://example.org/agent"
FACTS = RequestFacts("read", "reports/q3", "api.example.org", Sensitivity.CONFIDENTIAL)
CONFIDENTIAL = int(Sensitivity.CONFIDENTIAL)


class Clock:
    def now(self) -> float:
        return NOW


class Engine:
    """Allows, or denies naming one policy; records what it was asked."""

    version = "test"

    def __init__(self, allow: bool = True) -> None:
        self.allow = allow
        self.asked: list[PolicyRequest] = []

    def decide(self, request: PolicyRequest) -> PolicyResult:
        self.asked.append(request)
        if self.allow:
            return PolicyResult(True, ("task.request",), ())
        return PolicyResult(False, ("deny.reports",), ())


def task(**changes: object) -> TaskRecord:
    scope = Scope(("read",), ("reports/**",), ("api.example.org",), Sensitivity.CONFIDENTIAL)
    return dataclasses.replace(_task(), scope=scope.to_json(), **changes)  # type: ignore[arg-type]


def holder(stored: TaskRecord) -> TaskHolder:
    claims = TaskTokenClaims(
        issuer="spiffe://example.org",
        subject=stored.owner,
        audience=("spiffe://example.org",),
        issued_at=int(NOW) - 10,
        not_before=int(NOW) - 10,
        expires_at=int(NOW) + 600,
        jti=stored.token_jti,
        jkt="jkt",
        task_id=stored.task_id,
        authorization_details=(),
    )
    return TaskHolder(claims, None, "token")


def core(engine: Engine | None = None, *, last_call_heard: bool = False) -> DecisionCore:
    return DecisionCore(
        engine=lambda: engine or Engine(),
        clock=Clock(),
        cache=TaskCache(8),
        last_call_heard=last_call_heard,
    )


def test_an_unknown_task_needs_a_read_and_an_allow_names_its_write() -> None:
    decider, stored = core(), task()
    assert decider.decide(holder(stored), FACTS, None) is NEEDS_READ  # nothing known yet
    allow = decider.decide(holder(stored), FACTS, (stored,))
    assert isinstance(allow, Allow)
    assert allow.policies == ("task.request",)
    spend = allow.spend
    assert (spend.task_id, spend.expected_calls_used, spend.expected_max_calls) == ("t1", 0, 10)
    assert (spend.expected_touched, spend.touched, spend.now) == (0, CONFIDENTIAL, NOW)
    # the twin: a task the store does not hold is a deny, final
    assert decider.decide(holder(stored), FACTS, (None,)) == Deny(("task.unknown",))


def test_the_next_request_is_decided_on_the_task_as_the_write_will_leave_it() -> None:
    decider, stored = core(), task()
    allow = decider.decide(holder(stored), FACTS, (stored,))
    assert isinstance(allow, Allow)
    decider.handed_over(allow)
    guessed = decider.decide(holder(stored), FACTS, None)  # no read: the guess
    assert isinstance(guessed, Allow)
    assert (guessed.spend.expected_calls_used, guessed.spend.expected_touched) == (1, CONFIDENTIAL)
    # the write lost: the guess is dropped, the next attempt needs the stored task
    assert decider.spent("t1", None, 1) == Retry(0.0)
    assert decider.decide(holder(stored), FACTS, None) is NEEDS_READ


def test_the_guess_keeps_every_other_field_of_the_task() -> None:
    stored = task(
        touched=1,
        parent_id="t0",
        depth=1,
        on_behalf_of="alice",
        user_subject="alice",
        user_issuer="https://idp.example.org",
    )
    decider = core()
    allow = decider.decide(holder(stored), FACTS, (stored,))
    assert isinstance(allow, Allow)
    decider.handed_over(allow)
    guessed = decider.decide(holder(stored), FACTS, None)
    assert isinstance(guessed, Allow)
    assert guessed.task == dataclasses.replace(stored, calls_used=1, touched=CONFIDENTIAL)


def test_a_deny_on_a_guess_is_never_final() -> None:
    engine = Engine()
    decider, stored = core(engine), task()
    allow = decider.decide(holder(stored), FACTS, (stored,))
    assert isinstance(allow, Allow)
    decider.handed_over(allow)
    engine.allow = False
    assert decider.decide(holder(stored), FACTS, None) is NEEDS_READ
    denied = decider.decide(holder(stored), FACTS, (stored,))  # on what is stored: final
    assert denied == Deny(("deny.reports",), ("deny.reports",))


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"owner": "spiffe://example.org/other"}, ("token.task_mismatch",)),
        ({"calls_used": 10}, ("task.budget_exhausted",)),
    ],
)
def test_the_checks_in_code_deny_before_any_policy(
    changes: dict[str, object], reasons: tuple[str, ...]
) -> None:
    engine = Engine()
    stored = task(**changes)
    theirs = holder(task())  # the token as issued
    assert core(engine).decide(theirs, FACTS, (stored,)) == Deny(reasons)
    assert engine.asked == []
    # the twin: the task as issued goes on to the policies, which allow
    assert isinstance(core(engine).decide(theirs, FACTS, (task(),)), Allow)
    assert len(engine.asked) == 1


def test_a_task_past_its_window_is_denied_and_named_for_the_expiry_hook() -> None:
    stored = task(expires_at=NOW - 1)
    denied = core().decide(holder(stored), FACTS, (stored,))
    assert denied == Deny(("task.expired",), expired=(stored, NOW))


def test_an_engine_that_raises_denies() -> None:
    class Broken(Engine):
        def decide(self, request: PolicyRequest) -> PolicyResult:
            raise RuntimeError("cedar crashed")

    stored = task()
    assert core(Broken()).decide(holder(stored), FACTS, (stored,)) == Deny(("policy.error",))


def test_an_engine_error_with_its_reason_denies_naming_both() -> None:
    """An outdated schema (the engine says so): every request is denied ``policy.error``
    and the reason that tells the admin what to do; an engine that knows no reason
    denies ``policy.error`` alone."""

    class Outdated(Engine):
        def decide(self, request: PolicyRequest) -> PolicyResult:
            errors = ("context.risk is not in the schema",)
            return PolicyResult(False, (), errors, reasons=("policy.schema_outdated",))

    class Erring(Engine):
        def decide(self, request: PolicyRequest) -> PolicyResult:
            return PolicyResult(False, ("p",), ("an evaluation error",))

    stored = task()
    denied = core(Outdated()).decide(holder(stored), FACTS, (stored,))
    assert denied == Deny(("policy.error", "policy.schema_outdated"))
    plain = core(Erring()).decide(holder(stored), FACTS, (stored,))
    assert plain == Deny(("policy.error",), ("p",))


def test_lost_compare_and_sets_back_off_then_end_in_contention() -> None:
    decider = core()
    assert decider.spent("t1", None, 1) == Retry(0.0)  # the first: at once
    for losses in range(2, MAX_ATTEMPTS):
        retry = decider.spent("t1", None, losses)
        assert isinstance(retry, Retry)
        assert 0.0 <= retry.delay <= BACKOFF_CAP
    assert decider.spent("t1", None, MAX_ATTEMPTS) == Deny(("task.contention",))


def test_a_durable_write_says_whether_it_spent_the_last_call() -> None:
    last = task(calls_used=10)
    assert core(last_call_heard=True).spent("t1", last, 0) == Spent(last, True)
    assert core().spent("t1", last, 0) == Spent(last, False)  # nobody to tell
    other = task(calls_used=3)
    assert core(last_call_heard=True).spent("t1", other, 0) == Spent(other, False)


def test_a_failed_write_is_a_deny_of_its_kind() -> None:
    decider = core()
    replayed = decider.failed("t1", ProofReplayed())
    assert replayed == Deny(("dpop.replayed",), refusal=Refusal.UNAUTHENTICATED)
    for err in (OSError("disk full"), Unavailable("store.timeout", "slow")):
        assert decider.failed("t1", err) == Deny(("audit.write",), refusal=Refusal.UNAVAILABLE)


def test_the_risk_of_the_task_and_its_workload_reaches_the_policies() -> None:
    """``context.risk`` comes from the risk callback (in memory), asked per decision with
    the task and its owner; without one, it is zero."""
    asked: list[tuple[str, str]] = []

    def risk(task_id: str, workload: str) -> RiskFacts:
        asked.append((task_id, workload))
        return RiskFacts(task=70, workload=20)

    engine, stored = Engine(), task()
    scored = DecisionCore(engine=lambda: engine, clock=Clock(), cache=TaskCache(8), risk=risk)
    assert isinstance(scored.decide(holder(stored), FACTS, (stored,)), Allow)
    assert asked == [(stored.task_id, stored.owner)]
    assert engine.asked[-1].context["risk"] == {"task": 70, "workload": 20}
    assert isinstance(core(engine).decide(holder(stored), FACTS, (stored,)), Allow)
    assert engine.asked[-1].context["risk"] == {"task": 0, "workload": 0}
