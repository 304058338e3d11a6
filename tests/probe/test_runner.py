"""The runner against zerolane's own gateway: twin first, then the attack."""

from __future__ import annotations

from tests.gateway.conftest import Stack
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import StaticBearer
from zerolane.probe.model import Exchange, Outcome, Result, Scenario
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.runner import judge, run
from zerolane.probe.scenarios import by_id, proof
from zerolane.probe.wire import Wire


def test_proof_scenarios_pass_against_the_gateway(gateway_context: ProbeContext) -> None:
    first_two = [s for s in proof.SCENARIOS if s.id in ("token.no_proof", "proof.replayed")]
    report = run(first_two, gateway_context)
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == {"token.no_proof": Outcome.PASS, "proof.replayed": Outcome.PASS}
    for result in report.results:
        twin, *attacks = [e for e in result.evidence if e.role != "setup"]
        assert twin.role == "twin"
        assert twin.status == 200
        assert all(a.status == 401 for a in attacks)
    shown = repr([r.evidence for r in report.results])
    assert gateway_context.wire.secrets
    assert not any(secret in shown for secret in gateway_context.wire.secrets)


def test_a_static_token_is_masked_even_where_the_target_echoes_it(stack: Stack) -> None:
    """The echo upstream answers with the headers it got, the bearer token among them:
    the evidence keeps the answer, never the token (the source names it a secret)."""
    token = "static-token-of-the-probe"
    profile = TargetProfile(stack.upstream.url, Call("GET", "/fin/reports/q3"))
    context = ProbeContext(profile, StaticBearer(token), Wire())
    try:
        report = run([by_id()["token.replayed_elsewhere"]], context)
    finally:
        context.wire.close()
    (result,) = report.results
    assert result.outcome is Outcome.FAIL  # a bearer token works from anywhere
    shown = repr(result.evidence)
    assert "Bearer" in shown
    assert token not in shown


def _exchange(role: str, status: int | None, error: str | None = None) -> Exchange:
    return Exchange(role, "GET", "http://target/fin", {}, 0, status, {}, "", 1.0, error=error)


def test_an_attack_without_an_answer_is_never_a_pass() -> None:
    """A timeout or a reset after the attack went out shows no refusal (the target may
    have done it): inconclusive; its twin, a refusal, passes."""
    twin = _exchange("twin", 200)
    silent = _exchange("attack", None, "ReadTimeout: timed out")
    refused = _exchange("attack", 401)
    result = judge("token.no_proof", twin, [refused, silent])
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "ReadTimeout" in result.reason
    assert judge("token.no_proof", twin, [refused]).outcome is Outcome.PASS
    # an attack accepted stays a fail whatever else got no answer
    assert judge("token.no_proof", twin, [silent, _exchange("attack", 200)]).outcome is (
        Outcome.FAIL
    )
    # where a sound target may drop the connection (a head past its limits): a refusal
    dropped = judge("limits.oversized_body", twin, [silent], silence_refuses=True)
    assert dropped.outcome is Outcome.PASS


def test_no_attack_is_no_pass() -> None:
    result = judge("token.expired", _exchange("twin", 200), [])
    assert result.outcome is Outcome.INCONCLUSIVE


def test_a_scenario_that_asks_what_its_source_cannot_do_is_not_applicable() -> None:
    """A need the scenario did not declare, met by a source that cannot: never a pass,
    never a crash."""

    def ends_its_task(context: ProbeContext) -> Result:
        context.source.complete(context.credential())
        raise AssertionError("unreachable: a static token has no task")

    scenario = Scenario("test.lifecycle", "t", "a", "e", "http", ends_its_task)
    profile = TargetProfile("http://127.0.0.1:9", Call("GET", "/x"))
    context = ProbeContext(profile, StaticBearer("a-static-token"), Wire())
    try:
        (result,) = run([scenario], context).results
    finally:
        context.wire.close()
    assert result.outcome is Outcome.NOT_APPLICABLE
    assert (
        result.reason == "the credentials do not offer it: a static token has no task to complete"
    )
