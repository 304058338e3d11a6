"""A posture report as JSON (``zerolane posture scan --json``), in the shape of the
schema shipped beside this module (``report.schema.json``, :func:`schema`).

A finding carries its rule, where it is (file and line, or a subject), its OWASP NHI
ids and the zerolane remedy; a secret only as :func:`~zerolane.posture.findings.mask`
left it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import zerolane
from zerolane.audit.events import rfc3339 as iso
from zerolane.frameworks import OWASP_NHI
from zerolane.posture.findings import Finding
from zerolane.posture.report import Report

#: the report's format version: a change a reader must know about raises it
VERSION = 1
SCHEMA_FILE = "report.schema.json"
TOOL = "zerolane posture"


def finding_json(finding: Finding) -> dict[str, object]:
    return {
        "rule": finding.rule,
        "title": finding.title,
        "severity": finding.severity.value,
        "message": finding.message,
        "remedy": finding.remedy,
        "path": finding.path,
        "line": finding.line,
        "subject": finding.subject,
        "secret_type": finding.secret_type,
        "masked": finding.masked,
        "mapping": {OWASP_NHI.key: list(finding.nhi)},
        "details": dict(finding.details),
    }


def to_json(report: Report) -> dict[str, object]:
    """The report as a JSON object (see ``report.schema.json``)."""
    return {
        "version": VERSION,
        "tool": {"name": TOOL, "version": zerolane.__version__},
        "started": iso(report.started),
        "finished": iso(report.finished),
        "failed": report.failed,
        "counts": {"findings": report.by_severity(), **report.counts},
        "findings": [finding_json(finding) for finding in report.findings],
        "notes": [{"where": note.where, "reason": note.reason} for note in report.notes],
        "frameworks": {
            OWASP_NHI.key: {
                "name": OWASP_NHI.name,
                "url": OWASP_NHI.url,
                "entries": dict(OWASP_NHI.entries),
            }
        },
    }


def dumps(report: Report) -> str:
    """The report as JSON text (indented, a newline at the end)."""
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every report this module writes conforms to."""
    text = resources.files("zerolane.posture").joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
