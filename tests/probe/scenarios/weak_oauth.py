"""The weak target (``tests/probe/weak_target.py``) as the replay, reuse and delegation
scenarios see it: credentials from its authorization server through the probe's own
OAuth source (client credentials, DPoP-bound unless the target is bearer-only, RFC 7009
revocation for the lifecycle, RFC 8693 exchange for delegation), so these scenarios are
measured against an implementation that is not zerolane's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from tests.probe.weak_target import PROBE_SCOPE, Weakness, WeakTarget
from zerolane.probe.context import ProbeContext
from zerolane.probe.model import Outcome, Scenario
from zerolane.probe.oauth import ClientCredentials, ClientSecret
from zerolane.probe.wire import Wire

#: the scenarios of proof, lifecycle and delegation each weakness must fail (none other)
FAILS: dict[Weakness, frozenset[str]] = {
    Weakness.BEARER_ONLY: frozenset({"token.replayed_elsewhere"}),
    Weakness.PROOF_OPTIONAL: frozenset({"token.no_proof", "token.replayed_elsewhere"}),
    Weakness.REPLAYED_PROOFS: frozenset({"proof.replayed"}),
    # the first task's token with a proof for it signed by the second task's key
    Weakness.PROOF_ANY_KEY: frozenset({"proof.other_key", "task.reused_across_tasks"}),
    Weakness.PROOF_ANY_METHOD: frozenset({"proof.other_method"}),
    Weakness.PROOF_ANY_URL: frozenset({"proof.other_url"}),
    Weakness.PROOF_ANY_TIME: frozenset({"proof.stale_iat", "proof.future_iat"}),
    Weakness.KEEPS_REVOKED: frozenset(
        {
            "task.reused_after_completion",
            "task.reused_after_revocation",
            "delegation.child_after_parent",
        }
    ),
    Weakness.WIDER_DELEGATION: frozenset({"delegation.wider_than_parent"}),
}
#: the sound target and every weakness
ALL: list[Weakness | None] = [None, *Weakness]


def expected(weakness: Weakness | None, scenarios: Iterable[Scenario]) -> dict[str, Outcome]:
    """What each scenario reports against ``weakness``: fail for its own scenarios;
    not applicable for those needing a key when the target binds none; pass otherwise."""
    fails = FAILS.get(weakness, frozenset()) if weakness is not None else frozenset()
    outcomes = {}
    for scenario in scenarios:
        if scenario.id in fails:
            outcomes[scenario.id] = Outcome.FAIL
        elif weakness is Weakness.BEARER_ONLY and "proof_key" in scenario.needs:
            outcomes[scenario.id] = Outcome.NOT_APPLICABLE
        else:
            outcomes[scenario.id] = Outcome.PASS
    return outcomes


@contextmanager
def oauth_context(weakness: Weakness | None) -> Iterator[ProbeContext]:
    """A probe context against the weak target with ``weakness`` (sound for ``None``),
    its credentials from the target's token endpoint."""
    with WeakTarget(weakness) as target:
        source = ClientCredentials(
            target.token_url,
            client=ClientSecret(target.client_id, target.client_secret),
            scope=PROBE_SCOPE,
            resource=target.audience,
            revocation_endpoint=target.revoke_url,
            exchange=True,
        )
        context = ProbeContext(target.profile(), source, Wire(timeout=10))
        try:
            yield context
        finally:
            context.close()
            context.wire.close()
