"""Delegation (RFC 8693 token exchange with ``act``): a child never holds more than its
parent, and never outlives it."""

from __future__ import annotations

from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential, IssuerRefused
from zerolane.probe.model import Exchange, Need, Outcome, Result, Scenario
from zerolane.probe.runner import judge
from zerolane.probe.scenarios.lifecycle import after_end, judge_last

#: where an issuer's answer that was not an HTTP exchange of the probe's is shown
ISSUER = "(the issuer: delegation)"


def _issued(context: ProbeContext, role: str, child: Credential, what: str) -> Exchange:
    """The issuer's yes, as an exchange in the evidence (the token itself masked)."""
    context.wire.remember(child.token)
    return Exchange(role, "POST", ISSUER, {}, 0, 200, {}, what, 0.0)


def _child(context: ProbeContext, parent: Credential) -> tuple[Credential, Exchange]:
    child = context.source.delegate(parent, wider=False)
    return child, _issued(context, "setup", child, f"a narrower child was issued ({child.scheme})")


def _wider_than_parent(context: ProbeContext) -> Result:
    scenario = "delegation.wider_than_parent"
    parent = context.credential()
    child, issued = _child(context, parent)
    twin = context.twin(child)
    try:
        wider = context.source.delegate(parent, wider=True)
    except IssuerRefused as refused:
        attack = context.refusal("attack", refused)
        if refused.status is None or refused.status >= 500:
            # an issuer that could not be reached or broke has not refused anything
            return Result(
                scenario,
                Outcome.INCONCLUSIVE,
                f"the issuer did not answer the wider request with a refusal ({refused})",
                (issued, twin, attack),
            )
    else:
        attack = _issued(
            context, "attack", wider, "a child asking for more than its parent holds was issued"
        )
    return judge(scenario, twin, [attack], evidence=[issued])


def _child_after_parent(context: ProbeContext) -> Result:
    parent = context.credential()
    child, issued = _child(context, parent)
    twin = context.twin(child)
    if not twin.accepted:
        return judge("delegation.child_after_parent", twin, [], evidence=[issued])
    context.source.complete(parent)
    tries = after_end(context, child)
    result = judge_last(
        "delegation.child_after_parent", twin, tries, "the parent task was completed"
    )
    return Result(result.scenario, result.outcome, result.reason, (issued, *result.evidence))


SCENARIOS = (
    Scenario(
        id="delegation.wider_than_parent",
        title="Delegation wider than its parent",
        attack=(
            "Delegate a task to another workload asking for an action its parent does not "
            "hold (after a narrower delegation whose child works)."
        ),
        expect="Refused by the issuer: a child's scope is within its parent's, never wider.",
        surface="token",
        run=_wider_than_parent,
        needs=frozenset({Need.DELEGATION}),
    ),
    Scenario(
        id="delegation.child_after_parent",
        title="Child used after its parent ended",
        attack=(
            "Delegate a task, check the child works, complete the parent, then use the "
            "child's token again with a fresh, correct proof."
        ),
        expect=(
            "Refused: ending a task ends its whole delegation tree; the child dies with its parent."
        ),
        surface="http",
        run=_child_after_parent,
        needs=frozenset({Need.DELEGATION, Need.LIFECYCLE}),
    ),
)
