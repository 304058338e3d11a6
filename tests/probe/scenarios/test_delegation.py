"""Delegation scenarios against zerolane: the issuer refuses a child wider than its
parent (a narrower one works), and a child dies with its parent; an issuer granting
wider children, or a target keeping revoked ones, fails."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Stack
from tests.probe.conftest import gateway_profile
from tests.probe.scenarios.doubles import Source, Target, context_of
from tests.probe.scenarios.weak_oauth import ALL, expected, oauth_context
from tests.probe.weak_target import Weakness
from zerolane.cli.probe_home import HomeSource
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import IssuerRefused, StaticBearer
from zerolane.probe.model import Need, Outcome, Result
from zerolane.probe.profile import Call
from zerolane.probe.runner import run, run_one
from zerolane.probe.scenarios import delegation
from zerolane.probe.wire import Wire

IDS = [scenario.id for scenario in delegation.SCENARIOS]


def test_every_delegation_scenario_passes_against_the_gateway(
    gateway_context: ProbeContext,
) -> None:
    report = run(delegation.SCENARIOS, gateway_context)
    results = {result.scenario: result for result in report.results}
    assert {k: r.outcome for k, r in results.items()} == dict.fromkeys(IDS, Outcome.PASS)
    wider = results["delegation.wider_than_parent"]
    assert [e.role for e in wider.evidence] == ["setup", "twin", "attack"]
    issued, twin, refused = wider.evidence
    assert issued.status == 200
    assert twin.status == 200
    assert refused.status in range(400, 500)
    assert "scope" in refused.response_excerpt  # the widened action, nothing else
    after = results["delegation.child_after_parent"]
    assert [e.role for e in after.evidence][:2] == ["setup", "twin"]
    assert after.evidence[1].status == 200
    assert after.evidence[-1].status in (401, 403)
    shown = repr([[e.to_json() for e in r.evidence] for r in report.results])
    assert "eyJ" not in shown


def test_a_bearer_credential_is_not_applicable(stack: Stack, home_source: HomeSource) -> None:
    context = ProbeContext(gateway_profile(stack), StaticBearer(home_source.issue().token), Wire())
    try:
        report = run(delegation.SCENARIOS, context)
    finally:
        context.wire.close()
    assert {r.scenario: r.outcome for r in report.results} == dict.fromkeys(
        IDS, Outcome.NOT_APPLICABLE
    )


# the issuer's other answers, with a source and target in memory (doubles.py)


def test_a_parent_is_not_ended_when_its_childs_twin_fails() -> None:
    source = Source(frozenset({Need.DELEGATION, Need.LIFECYCLE}))
    with context_of(source, Target(source), allowed=Call("GET", "/nowhere")) as context:
        result = run_one(delegation.SCENARIOS[IDS.index("delegation.child_after_parent")], context)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert source.ended == []
    assert [e.role for e in result.evidence] == ["setup", "twin"]


def _wider(source: Source) -> Result:
    with context_of(source, Target(source)) as context:
        return run_one(delegation.SCENARIOS[IDS.index("delegation.wider_than_parent")], context)


def test_a_wider_child_issued_fails() -> None:
    result = _wider(Source(frozenset({Need.DELEGATION})))
    assert result.outcome is Outcome.FAIL
    issued, twin, attack = result.evidence
    assert (issued.role, twin.role, attack.role) == ("setup", "twin", "attack")
    assert attack.status == 200
    assert "more than its parent" in attack.response_excerpt


def test_a_wider_child_refused_passes() -> None:
    refused = IssuerRefused(400, "invalid_scope", url="http://issuer.test/token")
    result = _wider(Source(frozenset({Need.DELEGATION}), wider=refused))
    assert result.outcome is Outcome.PASS
    assert result.evidence[-1].status == 400
    assert result.evidence[-1].response_excerpt == "invalid_scope"


@pytest.mark.parametrize("status", [None, 500, 503])
def test_an_issuer_that_broke_has_refused_nothing(status: int | None) -> None:
    """No answer or a server error is not the issuer's refusal: inconclusive."""
    broke = IssuerRefused(status, "unavailable", url="http://issuer.test/token")
    result = _wider(Source(frozenset({Need.DELEGATION}), wider=broke))
    assert result.outcome is Outcome.INCONCLUSIVE
    assert [e.role for e in result.evidence] == ["setup", "twin", "attack"]


def test_a_child_outliving_its_parent_fails() -> None:
    source = Source(frozenset({Need.DELEGATION, Need.LIFECYCLE}))
    with context_of(source, Target(source, lag=None)) as context:
        result = run_one(delegation.SCENARIOS[IDS.index("delegation.child_after_parent")], context)
    assert result.outcome is Outcome.FAIL
    assert "the parent task was completed" in result.reason
    assert source.ended == ["token-1"]  # the parent
    assert all(e.status == 200 for e in result.evidence)


@pytest.mark.parametrize("weakness", ALL, ids=str)
def test_against_the_weak_target_only_the_matching_weakness_fails(
    weakness: Weakness | None,
) -> None:
    """The weak target (another implementation, credentials from its OAuth server):
    sound, every scenario passes; with one weakness, the scenarios it breaks fail and
    nothing else does (a bearer-only target has no key for the proof scenarios)."""
    with oauth_context(weakness) as context:
        report = run(delegation.SCENARIOS, context)
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == expected(weakness, delegation.SCENARIOS), [r.reason for r in report.results]
