"""The runner against zerolane's own gateway: twin first, then the attack."""

from __future__ import annotations

from zerolane.probe.context import ProbeContext
from zerolane.probe.model import Outcome
from zerolane.probe.runner import run
from zerolane.probe.scenarios import proof


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
