"""Running scenarios: needs checked first, the twin before the attack, nothing that
goes wrong counted as a pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import IssuerRefused, NotOffered
from zerolane.probe.model import Exchange, Outcome, Result, Scenario
from zerolane.probe.report import Report

Progress = Callable[[Scenario, Result], None]


def judge(
    scenario: str,
    twin: Exchange,
    attacks: Sequence[Exchange],
    *,
    accepted: Callable[[Exchange], bool] | None = None,
    evidence: Sequence[Exchange] = (),
    silence_refuses: bool = False,
) -> Result:
    """The verdict of one scenario: ``inconclusive`` when the twin was not accepted,
    ``fail`` when any attack was (``accepted`` says what accepted means; a 2xx/3xx
    answer by default), ``inconclusive`` when an attack got no answer (a timeout or a
    reset after the request went out: the target may have done what it asked; unless
    ``silence_refuses``, for an attack a sound target may drop the connection on) or
    there was no attack, ``pass`` otherwise. ``evidence``: setup exchanges kept first."""
    took = accepted or (lambda exchange: exchange.accepted)
    kept = (*evidence, twin, *attacks)
    if not twin.accepted:
        answer = twin.error or f"status {twin.status}"
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            f"the legitimate twin was not accepted ({answer}): nothing is known about the attack",
            kept,
        )
    through = [a for a in attacks if took(a)]
    if through:
        shown = ", ".join(f"{a.method} {a.url} -> {a.status}" for a in through[:3])
        return Result(scenario, Outcome.FAIL, f"the attack was accepted: {shown}", kept)
    if not attacks:  # never a pass for an attack that was not made
        return Result(scenario, Outcome.INCONCLUSIVE, "no attack was sent", kept)
    silent = [a for a in attacks if a.status is None]
    if silent and not silence_refuses:
        error = silent[0].error or "no answer"
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            f"an attack got no answer ({error}): no refusal was seen, nothing is known",
            kept,
        )
    answers = sorted({str(a.status) if a.status is not None else "no answer" for a in attacks})
    return Result(scenario, Outcome.PASS, f"refused ({', '.join(answers)})", kept)


def run_one(scenario: Scenario, context: ProbeContext) -> Result:
    """Run one scenario; a missing need is ``not_applicable``, an error
    ``inconclusive``. Its reason is masked as the evidence is (it may quote what the
    target answered, and a target may quote the credential it was sent)."""
    result = _run_one(scenario, context)
    return replace(result, reason=context.wire.mask(result.reason))


def _run_one(scenario: Scenario, context: ProbeContext) -> Result:
    context.next_scenario()
    try:
        missing = scenario.needs - context.meets()
    except IssuerRefused as refused:
        return Result(
            scenario.id,
            Outcome.INCONCLUSIVE,
            f"no credential could be had: {refused}",
            (context.refusal("setup", refused),),
        )
    if missing:
        named = ", ".join(sorted(missing))
        return Result(
            scenario.id, Outcome.NOT_APPLICABLE, f"the credentials or target do not offer: {named}"
        )
    try:
        return scenario.run(context)
    except IssuerRefused as refused:
        return Result(
            scenario.id,
            Outcome.INCONCLUSIVE,
            f"the issuer refused a legitimate request: {refused}",
            (context.refusal("setup", refused),),
        )
    except NotOffered as lacking:  # a need its ``needs`` did not name
        return Result(
            scenario.id, Outcome.NOT_APPLICABLE, f"the credentials do not offer it: {lacking}"
        )
    except Exception as error:  # a scenario that breaks is never a pass
        message = context.wire.mask(str(error))[:300]
        return Result(
            scenario.id,
            Outcome.INCONCLUSIVE,
            f"the scenario could not run: {type(error).__name__}: {message}",
        )


def run(
    scenarios: Iterable[Scenario],
    context: ProbeContext,
    *,
    progress: Progress | None = None,
) -> Report:
    """Run ``scenarios`` in order against the context's target; the report holds every
    result (in the same order)."""
    started = time.time()
    results: list[Result] = []
    chosen = list(scenarios)
    for scenario in chosen:
        result = run_one(scenario, context)
        results.append(result)
        if progress is not None:
            progress(scenario, result)
    return Report(
        target=context.wire.mask(context.profile.url),  # ?access_token=... masked
        credentials=context.source.kind,
        started=started,
        finished=time.time(),
        scenarios=tuple(chosen),
        results=tuple(results),
    )
