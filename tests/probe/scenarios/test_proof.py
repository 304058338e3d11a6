"""Sender constraint and proof scenarios: every one passes against zerolane's gateway
(the twin allowed, each attack refused), none passes for a bearer credential, and each
weakness of the weak target fails exactly the scenarios it should."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Stack
from tests.probe.conftest import gateway_profile
from tests.probe.scenarios.doubles import Source, Target, context_of
from tests.probe.scenarios.weak_oauth import ALL, expected, oauth_context
from tests.probe.weak_target import Weakness
from zerolane.cli.background import free_port
from zerolane.cli.probe_home import HomeSource
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import StaticBearer
from zerolane.probe.model import Outcome, Result
from zerolane.probe.runner import run, run_one
from zerolane.probe.scenarios import proof
from zerolane.probe.wire import Wire

IDS = [scenario.id for scenario in proof.SCENARIOS]


def _twin_and_attacks(result: Result) -> tuple[int | None, list[int | None]]:
    twin, *attacks = [e for e in result.evidence if e.role != "setup"]
    assert twin.role == "twin"
    assert all(a.role == "attack" for a in attacks)
    assert attacks
    return twin.status, [a.status for a in attacks]


def test_every_proof_scenario_passes_against_the_gateway(gateway_context: ProbeContext) -> None:
    report = run(proof.SCENARIOS, gateway_context)
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == dict.fromkeys(IDS, Outcome.PASS)
    for result in report.results:
        twin, attacks = _twin_and_attacks(result)
        assert twin == 200, result.scenario
        assert all(status == 401 for status in attacks), result.scenario
    shown = repr([[e.to_json() for e in r.evidence] for r in report.results])
    assert gateway_context.wire.secrets  # the tokens and proofs sent
    assert not any(secret in shown for secret in gateway_context.wire.secrets)
    assert "eyJ" not in shown


def test_each_scenario_has_a_task_of_its_own(gateway_context: ProbeContext) -> None:
    """A refused thief's proof marks its task at zerolane (risk.high): every scenario
    opens its own, so the run may go in any order, or again, and still pass."""
    twice = [*proof.SCENARIOS, *reversed(proof.SCENARIOS)]
    report = run(twice, gateway_context)
    assert {r.outcome for r in report.results} == {Outcome.PASS}
    tokens = {r.evidence[0].request_headers["authorization"] for r in report.results}
    assert len(tokens) == len(twice)


def test_each_attack_is_the_one_described(gateway_context: ProbeContext) -> None:
    """The other-URL scenario sends the allowed request (the proof is what differs);
    the elsewhere scenario presents the token alone, as a bearer token."""
    other_url = run_one(proof.SCENARIOS[IDS.index("proof.other_url")], gateway_context)
    allowed = gateway_context.profile.absolute(gateway_context.profile.allowed.path)
    assert [e.url for e in other_url.evidence] == [allowed] * 3
    elsewhere = run_one(proof.SCENARIOS[IDS.index("token.replayed_elsewhere")], gateway_context)
    attack = elsewhere.evidence[-1]
    assert attack.request_headers["authorization"].startswith("Bearer ")
    assert "dpop" not in attack.request_headers


def test_a_bearer_credential_is_not_applicable_or_inconclusive(
    stack: Stack, home_source: HomeSource
) -> None:
    """A static bearer token offers no key: the proof scenarios are not applicable; the
    gateway refuses a bearer token, so replaying one elsewhere is inconclusive (its twin
    is refused), never a pass."""
    token = home_source.issue().token
    context = ProbeContext(gateway_profile(stack), StaticBearer(token), Wire())
    try:
        report = run(proof.SCENARIOS, context)
    finally:
        context.wire.close()
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == {
        **dict.fromkeys(IDS, Outcome.NOT_APPLICABLE),
        "token.replayed_elsewhere": Outcome.INCONCLUSIVE,
    }


@pytest.mark.parametrize("skew", [-proof.SKEW_SECONDS, proof.SKEW_SECONDS])
def test_a_proof_within_the_window_goes_through(gateway_context: ProbeContext, skew: int) -> None:
    """The skew scenarios' attacks are refused for their iat, not their shape: the same
    proof with an iat a few seconds off is accepted."""
    credential = gateway_context.credential()
    call = gateway_context.profile.allowed
    url = gateway_context.profile.absolute(call.path)
    iat = int(gateway_context.clock()) + skew // 120
    near = gateway_context.proof(credential, call.method, url, iat=iat)
    assert gateway_context.send("twin", call, credential, proof=near).status == 200


def test_no_answer_from_the_other_client_is_inconclusive() -> None:
    """The probe's own wire reaches the target; the other client finds nobody at the
    address: no answer is not a refusal."""
    source = Source(frozenset())
    nobody = f"http://127.0.0.1:{free_port()}"
    with context_of(source, Target(source), url=nobody) as context:
        result = run_one(proof.SCENARIOS[IDS.index("token.replayed_elsewhere")], context)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "no answer" in result.reason
    twin, attack = result.evidence
    assert twin.status == 200
    assert attack.status is None


def test_a_target_that_ignores_proofs_fails_every_proof_scenario() -> None:
    """A target that takes any token it issued, whatever the proof (or none): every
    scenario of this module reports fail."""
    source = Source(frozenset())
    with context_of(source, Target(source)) as context:
        report = run([s for s in proof.SCENARIOS if s.id != "token.replayed_elsewhere"], context)
    assert {r.outcome for r in report.results} == {Outcome.FAIL}


@pytest.mark.parametrize("weakness", ALL, ids=str)
def test_against_the_weak_target_only_the_matching_weakness_fails(
    weakness: Weakness | None,
) -> None:
    """The weak target (another implementation, credentials from its OAuth server):
    sound, every scenario passes; with one weakness, the scenarios it breaks fail and
    nothing else does (a bearer-only target has no key for the proof scenarios)."""
    with oauth_context(weakness) as context:
        report = run(proof.SCENARIOS, context)
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == expected(weakness, proof.SCENARIOS), [r.reason for r in report.results]
