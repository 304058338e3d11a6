"""A posture report as SARIF 2.1.0 (``zerolane posture scan --sarif FILE``), for CI code
scanning.

One rule per rule id that found something (``secret.github_actions``...), its OWASP NHI
ids in ``properties`` and ``properties.tags``; one result per finding at its file and
line, level by severity. A result's snippet is the masked value, never the line (the
line holds the secret); its partial fingerprint (rule, file and the masked value,
hashed) lets code scanning see the same finding in the next run as the same alert even
when lines move.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

import zerolane
from zerolane.audit.events import rfc3339 as iso
from zerolane.frameworks import OWASP_NHI
from zerolane.posture.findings import Finding, Severity
from zerolane.posture.report import Report
from zerolane.posture.report_json import TOOL
from zerolane.sarif import SCHEMA_URI, VERSION, rule_name

#: the SARIF level of each severity
LEVELS = {Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
#: the partial fingerprint's name (versioned: its recipe may change)
FINGERPRINT = "zerolanePosture/v1"


def _fingerprint(finding: Finding) -> str:
    where = finding.path or finding.subject or ""
    text = f"{finding.rule}\n{where}\n{finding.secret_type or ''}\n{finding.masked or ''}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def uri(path: str) -> str:
    """A file's name as the relative URI reference SARIF's ``artifactLocation.uri`` is:
    percent-encoded (a space, ``#``, ``%``; a name's bytes that are not UTF-8, kept by
    the walk as surrogates, as their own ``%XX``)."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def rule(finding: Finding) -> dict[str, object]:
    """The rule of a finding's rule id (its title and remedy are the rule's)."""
    titled = [f"{entry} {OWASP_NHI.entries[entry]} ({OWASP_NHI.short})" for entry in finding.nhi]
    return {
        "id": finding.rule,
        "name": rule_name(finding.rule),
        "shortDescription": {"text": finding.title},
        "fullDescription": {"text": finding.title},
        "help": {"text": "\n".join([f"Remedy: {finding.remedy}", *titled])},
        "defaultConfiguration": {"level": LEVELS[finding.severity]},
        "properties": {
            "tags": ["security", *finding.nhi],
            "mapping": {OWASP_NHI.key: list(finding.nhi)},
        },
    }


def _location(finding: Finding) -> dict[str, object]:
    if finding.path is None:
        return {"logicalLocations": [{"name": finding.subject or "", "kind": "resource"}]}
    physical: dict[str, object] = {"artifactLocation": {"uri": uri(finding.path)}}
    if finding.line is not None:
        region: dict[str, object] = {"startLine": finding.line}
        if finding.masked is not None:
            region["snippet"] = {"text": finding.masked}
        physical["region"] = region
    return {"physicalLocation": physical}


def to_sarif(report: Report) -> dict[str, object]:
    """The report as a SARIF 2.1.0 log with one run."""
    first = {f.rule: f for f in reversed(report.findings)}  # each rule's first finding
    ids = sorted(first)
    index = {rule_id: i for i, rule_id in enumerate(ids)}
    results = [
        {
            "ruleId": finding.rule,
            "ruleIndex": index[finding.rule],
            "level": LEVELS[finding.severity],
            "message": {"text": finding.message},
            "locations": [_location(finding)],
            "partialFingerprints": {FINGERPRINT: _fingerprint(finding)},
            "properties": {
                "severity": finding.severity.value,
                "secretType": finding.secret_type,
                "masked": finding.masked,
                "details": dict(finding.details),
            },
        }
        for finding in report.findings
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
                        "rules": [rule(first[rule_id]) for rule_id in ids],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": iso(report.started),
                        "endTimeUtc": iso(report.finished),
                        "toolExecutionNotifications": [
                            {"level": "warning", "message": {"text": f"{n.where}: {n.reason}"}}
                            for n in report.notes
                        ],
                    }
                ],
                "results": results,
                "properties": {"counts": {"findings": report.by_severity(), **report.counts}},
            }
        ],
    }


def dumps(report: Report) -> str:
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
