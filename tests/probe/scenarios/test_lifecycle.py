"""Tokens after their task: completed, revoked, or carried by another task's proof.
Against zerolane's gateway every attack is refused while its twin goes through; a
target that keeps revoked tokens (or ignores the proof's key) fails."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import Stack
from tests.probe.conftest import gateway_profile
from tests.probe.scenarios.doubles import Source, Target, context_of
from tests.probe.scenarios.weak_oauth import ALL, expected, oauth_context
from tests.probe.weak_target import Weakness
from zerolane.cli.probe_home import HomeSource
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import StaticBearer
from zerolane.probe.model import Need, Outcome, Scenario
from zerolane.probe.profile import Call
from zerolane.probe.runner import run, run_one
from zerolane.probe.scenarios import lifecycle
from zerolane.probe.wire import Wire
from zerolane.tokens.jws import unverified_claims, unverified_header
from zerolane.tokens.rfc9449 import access_token_hash

IDS = [scenario.id for scenario in lifecycle.SCENARIOS]


def _scenario(scenario_id: str) -> Scenario:
    return lifecycle.SCENARIOS[IDS.index(scenario_id)]


def test_every_lifecycle_scenario_passes_against_the_gateway(
    gateway_context: ProbeContext,
) -> None:
    report = run(lifecycle.SCENARIOS, gateway_context)
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == dict.fromkeys(IDS, Outcome.PASS)
    for result in report.results:
        twins = [e for e in result.evidence if e.role == "twin"]
        attacks = [e for e in result.evidence if e.role == "attack"]
        assert twins, result.scenario
        assert attacks, result.scenario
        assert all(t.status == 200 for t in twins), result.scenario
        assert all(a.status in (401, 403) for a in attacks), result.scenario
    shown = repr([[e.to_json() for e in r.evidence] for r in report.results])
    assert "eyJ" not in shown


def test_an_ended_task_is_refused_by_its_reason(gateway_context: ProbeContext) -> None:
    """The refusal after completion and after revocation names the task's end, not a
    broken proof: the attack differs from its twin only by the end of the task."""
    for scenario_id, reason in (
        ("task.reused_after_completion", "task."),
        ("task.reused_after_revocation", "task.revoked"),
    ):
        result = run_one(_scenario(scenario_id), gateway_context)
        assert result.outcome is Outcome.PASS
        assert reason in result.evidence[-1].response_excerpt, result.evidence[-1]


def test_across_tasks_sends_the_second_tasks_proof(gateway_context: ProbeContext) -> None:
    """The two tasks of the home share the probe's key, so the one attack is the first
    task's token with the second task's proof: refused for its token hash (ath)."""
    result = run_one(_scenario("task.reused_across_tasks"), gateway_context)
    assert result.outcome is Outcome.PASS
    assert [e.role for e in result.evidence] == ["twin", "twin", "attack"]
    assert "ath" in result.evidence[-1].response_excerpt.lower()


def test_a_bearer_credential_is_not_applicable(stack: Stack, home_source: HomeSource) -> None:
    context = ProbeContext(gateway_profile(stack), StaticBearer(home_source.issue().token), Wire())
    try:
        report = run(lifecycle.SCENARIOS, context)
    finally:
        context.wire.close()
    assert {r.scenario: r.outcome for r in report.results} == dict.fromkeys(
        IDS, Outcome.NOT_APPLICABLE
    )


# the verdict over time, against a target in memory (tests/probe/scenarios/doubles.py)


@pytest.mark.parametrize(
    "scenario_id", ["task.reused_after_completion", "task.reused_after_revocation"]
)
def test_an_end_heard_late_is_waited_for(scenario_id: str) -> None:
    """A target that accepts an ended task's token twice more while the end propagates,
    then refuses it, passes: every try is in the evidence, the verdict is the last."""
    source = Source(frozenset({Need.LIFECYCLE}))
    target = Target(source, lag=2)
    with context_of(source, target) as context:
        result = run_one(_scenario(scenario_id), context)
    assert result.outcome is Outcome.PASS, result.reason
    assert [e.status for e in result.evidence] == [200, 200, 200, 401]
    assert [e.role for e in result.evidence] == ["twin", "attack", "attack", "attack"]
    assert "accepted 2 more time(s)" in result.reason
    assert source.ended == ["token-1"]


def test_an_end_never_heard_fails() -> None:
    """A target that keeps an ended task's token valid fails once the settle window is
    over (the tries stop then: the probe does not wait forever)."""
    source = Source(frozenset({Need.LIFECYCLE}))
    target = Target(source, lag=None)
    with context_of(source, target) as context:
        result = run_one(_scenario("task.reused_after_revocation"), context)
    assert result.outcome is Outcome.FAIL
    assert "the token still works" in result.reason
    tries = [e for e in result.evidence if e.role == "attack"]
    assert 1 < len(tries) <= lifecycle.SETTLE_SECONDS / lifecycle.RETRY_SECONDS + 1
    assert all(e.status == 200 for e in tries)


@pytest.mark.parametrize(
    "scenario_id", ["task.reused_after_completion", "task.reused_after_revocation"]
)
def test_a_task_is_not_ended_when_its_twin_fails(scenario_id: str) -> None:
    """No twin, no attack: the task is left alone and the result is inconclusive."""
    source = Source(frozenset({Need.LIFECYCLE}))
    target = Target(source)
    with context_of(source, target, allowed=Call("GET", "/nowhere")) as context:
        result = run_one(_scenario(scenario_id), context)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert source.ended == []
    assert [e.role for e in result.evidence] == ["twin"]


def test_across_tasks_with_keys_of_their_own_sends_both_attacks() -> None:
    """Two credentials with different keys: A's token with a proof signed by B's key,
    and with B's own proof. A target that checks neither fails."""
    source = Source(frozenset({Need.SECOND_CREDENTIAL}), key_each=True)
    target = Target(source)
    with context_of(source, target) as context:
        result = run_one(_scenario("task.reused_across_tasks"), context)
    assert result.outcome is Outcome.FAIL
    assert [e.role for e in result.evidence] == ["twin", "twin", "attack", "attack"]
    first_twin, second_twin, by_key, by_proof = target.seen
    first, second = "token-1", "token-2"
    for request in (first_twin, by_key, by_proof):
        assert request.headers["authorization"] == f"DPoP {first}"
    assert second_twin.headers["authorization"] == f"DPoP {second}"

    def jwk(request: httpx.Request) -> object:
        return unverified_header(request.headers["dpop"])["jwk"]

    assert jwk(by_key) == jwk(second_twin) != jwk(first_twin)

    def ath(request: httpx.Request) -> object:
        claims = unverified_claims(request.headers["dpop"])
        assert claims is not None
        return claims["ath"]

    assert ath(by_key) == access_token_hash(first)
    assert ath(by_proof) == access_token_hash(second)


def test_across_tasks_without_a_second_token_is_inconclusive() -> None:
    source = Source(frozenset({Need.SECOND_CREDENTIAL}), same_token=True)
    with context_of(source, Target(source)) as context:
        result = run_one(_scenario("task.reused_across_tasks"), context)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "same token" in result.reason


@pytest.mark.parametrize("weakness", ALL, ids=str)
def test_against_the_weak_target_only_the_matching_weakness_fails(
    weakness: Weakness | None,
) -> None:
    """The weak target (another implementation, credentials from its OAuth server):
    sound, every scenario passes; with one weakness, the scenarios it breaks fail and
    nothing else does (a bearer-only target has no key for the proof scenarios)."""
    with oauth_context(weakness) as context:
        report = run(lifecycle.SCENARIOS, context)
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == expected(weakness, lifecycle.SCENARIOS), [r.reason for r in report.results]


def test_across_tasks_with_an_unbound_second_credential_is_inconclusive() -> None:
    """No key, no proof of the second task to carry (and nothing sent)."""
    source = Source(frozenset({Need.SECOND_CREDENTIAL}), unbound=frozenset({2}))
    target = Target(source)
    with context_of(source, target) as context:
        result = run_one(_scenario("task.reused_across_tasks"), context)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "not bound to a key" in result.reason
    assert target.seen == []
