"""A task's token after its task: completed, revoked, or presented for another task.

Ending a task is heard by the enforcement points through a bus or a store read, which
may take a moment (zerolane's scale-out bus has a documented bound). The probe gives the
target :data:`SETTLE_SECONDS` to hear it: the attack is sent again while it is accepted,
and the verdict is the last answer. A target still accepting the token after that keeps
it valid past its task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential
from zerolane.probe.model import Exchange, Need, Outcome, Result, Scenario
from zerolane.probe.runner import judge
from zerolane.tokens.rfc9449 import proof_jwk

#: how long the target is given to hear that a task ended
SETTLE_SECONDS = 2.0
#: the pause between two tries while it has not
RETRY_SECONDS = 0.25


def after_end(
    context: ProbeContext,
    credential: Credential,
    *,
    settle: float = SETTLE_SECONDS,
    pause: float = RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Exchange]:
    """The allowed request with ``credential`` (a fresh proof each time) after its task
    ended: sent again while accepted, for up to ``settle`` seconds. Every try is kept;
    the last one is the target's answer."""
    deadline = time.monotonic() + settle
    tries = [context.send("attack", context.profile.allowed, credential)]
    while tries[-1].accepted and time.monotonic() < deadline:
        sleep(pause)
        tries.append(context.send("attack", context.profile.allowed, credential))
    return tries


def judge_last(scenario: str, twin: Exchange, tries: list[Exchange], ended: str) -> Result:
    """The verdict on the last try (the earlier ones are kept as evidence): the target
    had the settle window to hear that the task ended."""
    last = tries[-1]
    result = judge(
        scenario, twin, tries, accepted=lambda exchange: exchange is last and exchange.accepted
    )
    if result.outcome is Outcome.FAIL:
        waited = f", {len(tries)} tries over ~{SETTLE_SECONDS:g} s"
        return replace(result, reason=f"{ended}, the token still works: {result.reason}{waited}")
    if result.outcome is Outcome.PASS and len(tries) > 1:
        answer = last.status if last.status is not None else "no answer"
        return replace(
            result,
            reason=f"{ended}: accepted {len(tries) - 1} more time(s) while the end "
            f"propagated, then refused ({answer})",
        )
    return replace(result, reason=f"{ended}: {result.reason}")


def _reused_after_completion(context: ProbeContext) -> Result:
    credential = context.credential()
    twin = context.twin(credential)
    if not twin.accepted:
        return judge("task.reused_after_completion", twin, [])
    context.source.complete(credential)
    tries = after_end(context, credential)
    return judge_last("task.reused_after_completion", twin, tries, "the task was completed")


def _reused_after_revocation(context: ProbeContext) -> Result:
    credential = context.credential()
    twin = context.twin(credential)
    if not twin.accepted:
        return judge("task.reused_after_revocation", twin, [])
    context.source.revoke(credential)
    tries = after_end(context, credential)
    return judge_last("task.reused_after_revocation", twin, tries, "the task was revoked")


def _reused_across_tasks(context: ProbeContext) -> Result:
    scenario = "task.reused_across_tasks"
    first, second = context.credential(), context.fresh()
    if first.token == second.token:
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            "the source gave the same token for two credentials: there is no other task",
        )
    if first.key is None or second.key is None:
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            "a credential is not bound to a key: there is no proof of another task to carry",
        )
    twins = [context.twin(first), context.twin(second)]
    lead = next((twin for twin in twins if not twin.accepted), twins[0])
    call = context.profile.allowed
    url = context.profile.absolute(call.path)
    attacks = []
    if proof_jwk(first.key) != proof_jwk(second.key):
        # the first task's token with a proof for it signed by the second task's key
        proof = context.proof(first, call.method, url, key=second.key)
        attacks.append(context.send("attack", call, first, proof=proof))
    # the first task's token with the second task's own proof of the same request
    proof = context.proof(second, call.method, url)
    attacks.append(context.send("attack", call, first, proof=proof))
    result = judge(scenario, lead, attacks)
    return replace(result, evidence=(*twins, *attacks))


_ENDS = frozenset({Need.LIFECYCLE})

SCENARIOS = (
    Scenario(
        id="task.reused_after_completion",
        title="Token reused after its task completed",
        attack=(
            "Complete a task, then send its allowed request again with the same token "
            "and a fresh, correct proof."
        ),
        expect=(
            "Refused: a task's privileges end with it; the token is dead once the "
            f"completion is heard (the probe allows {SETTLE_SECONDS:g} s for that)."
        ),
        surface="http",
        run=_reused_after_completion,
        needs=_ENDS,
    ),
    Scenario(
        id="task.reused_after_revocation",
        title="Token reused after its task was revoked",
        attack=(
            "Revoke a task, then send its allowed request again with the same token and a "
            "fresh, correct proof."
        ),
        expect=(
            "Refused: a revoked task's token is refused everywhere once the revocation is "
            f"heard (the probe allows {SETTLE_SECONDS:g} s for that)."
        ),
        surface="http",
        run=_reused_after_revocation,
        needs=_ENDS,
    ),
    Scenario(
        id="task.reused_across_tasks",
        title="Token reused across tasks",
        attack=(
            "Hold two tasks; present the first task's token with a proof made for the "
            "second task's token (and, when their keys differ, with a proof signed by the "
            "second task's key)."
        ),
        expect=(
            "Refused: a token belongs to its one task, and a proof binds one token (ath) "
            "and one key (cnf.jkt), so nothing made for one task carries another's "
            "token, even from the same workload with the same key."
        ),
        surface="http",
        run=_reused_across_tasks,
        needs=frozenset({Need.SECOND_CREDENTIAL, Need.PROOF_KEY}),
    ),
)
