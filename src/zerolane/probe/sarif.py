"""A probe run as SARIF 2.1.0 (``zerolane probe --sarif FILE``), for CI code scanning.

One rule per scenario that ran, its framework ids in ``properties`` (by framework) and
as ``properties.tags`` (flat, :func:`zerolane.probe.mapping.tags`); one result per
``fail`` (level ``error``) and per ``inconclusive`` (level ``note``: nothing is known
about that attack, someone should look). A pass or a scenario that did not apply is
no result. A result's location is the target's URL; its evidence (masked) is in its
``properties``; its partial fingerprint (the target and the scenario, hashed) lets code
scanning see the same finding in the next run as the same alert.
"""

from __future__ import annotations

import hashlib
import json

import zerolane
from zerolane.audit.events import rfc3339 as iso
from zerolane.probe import mapping
from zerolane.probe.model import Outcome, Scenario
from zerolane.probe.report import Report
from zerolane.probe.report_json import TOOL, public_url
from zerolane.sarif import SCHEMA_URI, VERSION, rule_name

#: the SARIF level of each outcome that makes a result
LEVELS = {Outcome.FAIL: "error", Outcome.INCONCLUSIVE: "note"}


#: the partial fingerprint's name (versioned: its recipe may change)
FINGERPRINT = "zerolaneProbe/v1"


def _fingerprint(target: str, scenario: str) -> str:
    return hashlib.sha256(f"{target}\n{scenario}".encode()).hexdigest()


def rule(scenario_id: str, scenario: Scenario | None) -> dict[str, object]:
    """The rule of one scenario (``scenario`` ``None``: a result of a scenario the
    report does not list, named by its id alone)."""
    title = scenario.title if scenario else scenario_id
    attack = scenario.attack if scenario else ""
    expect = scenario.expect if scenario else ""
    titled = mapping.titled(scenario_id)
    framework_lines = [f"{entry} {name} ({f.short})" for f, entry, name in titled]
    return {
        "id": scenario_id,
        "name": rule_name(scenario_id),
        "shortDescription": {"text": title},
        "fullDescription": {"text": f"{attack} Expected: {expect}" if scenario else title},
        "help": {"text": "\n".join([f"Attack: {attack}", f"Expected: {expect}", *framework_lines])},
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": ["security", *mapping.tags(scenario_id)],
            "surface": scenario.surface if scenario else "",
            "mapping": {key: list(ids) for key, ids in mapping.for_scenario(scenario_id).items()},
        },
    }


def to_sarif(report: Report) -> dict[str, object]:
    """The report as a SARIF 2.1.0 log with one run."""
    target = public_url(report.target)
    listed = {scenario.id: scenario for scenario in report.scenarios}
    # a result of a scenario the report does not list still gets its rule
    ids = list(dict.fromkeys([*listed, *(result.scenario for result in report.results)]))
    index = {scenario_id: i for i, scenario_id in enumerate(ids)}
    results = [
        {
            "ruleId": result.scenario,
            "ruleIndex": index[result.scenario],
            "level": LEVELS[result.outcome],
            "message": {"text": f"{result.outcome.value}: {result.reason}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": target}}}],
            # the same scenario failing at the same target is the same alert run after run
            "partialFingerprints": {FINGERPRINT: _fingerprint(target, result.scenario)},
            "properties": {
                "outcome": result.outcome.value,
                "evidence": [exchange.to_json() for exchange in result.evidence],
            },
        }
        for result in report.results
        if result.outcome in LEVELS
    ]
    return {
        "$schema": SCHEMA_URI,
        "version": VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL,
                        "version": zerolane.__version__,
                        "rules": [rule(i, listed.get(i)) for i in ids],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": iso(report.started),
                        "endTimeUtc": iso(report.finished),
                    }
                ],
                "results": results,
                "properties": {
                    "target": target,
                    "credentials": report.credentials,
                    "counts": report.counts(),
                },
            }
        ],
    }


def dumps(report: Report) -> str:
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
