"""A probe run's report: every scenario with its result, counted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from zerolane.probe.model import Outcome, Result, Scenario


@dataclass(frozen=True)
class Report:
    target: str
    credentials: str
    started: float
    finished: float
    scenarios: tuple[Scenario, ...]
    results: tuple[Result, ...]

    def counts(self) -> dict[str, int]:
        counted = Counter(result.outcome for result in self.results)
        return {outcome.value: counted.get(outcome, 0) for outcome in Outcome}

    @property
    def failed(self) -> bool:
        """Some attack was accepted (the command exits 1)."""
        return any(result.outcome is Outcome.FAIL for result in self.results)
