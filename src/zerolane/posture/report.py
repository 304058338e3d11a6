"""One posture run's report: the findings of every source that ran (files scanned for
secrets; a home's inventory), what could not be looked at, and what was covered.

A source is anything that returns a :class:`Part`; :func:`combine` joins them, so a new
kind of finding is one more source, not a change to the reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zerolane.posture.findings import Finding, Note, Severity


@dataclass(frozen=True, slots=True)
class Part:
    """What one source found: its findings, its notes, and counts of what it covered
    (``{"files": 120}``)."""

    findings: tuple[Finding, ...]
    notes: tuple[Note, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    """A posture run: every source's findings in one order (files by path and line,
    then subjects), their notes, the counts of what was covered, and when it ran."""

    findings: tuple[Finding, ...]
    notes: tuple[Note, ...]
    counts: Mapping[str, int]
    started: float
    finished: float

    @property
    def failed(self) -> bool:
        """Some finding (``zerolane posture scan`` exits 1)."""
        return bool(self.findings)

    def by_severity(self) -> dict[str, int]:
        """How many findings of each severity, every severity named."""
        return {s.value: sum(f.severity is s for f in self.findings) for s in Severity}


def combine(parts: Iterable[Part], started: float, finished: float) -> Report:
    """One report of ``parts`` (counts of one name added up)."""
    findings: list[Finding] = []
    notes: list[Note] = []
    counts: dict[str, int] = {}
    for part in parts:
        findings.extend(part.findings)
        notes.extend(part.notes)
        for name, count in part.counts.items():
            counts[name] = counts.get(name, 0) + count
    findings.sort(key=Finding.sort_key)
    return Report(tuple(findings), tuple(notes), counts, started, finished)
