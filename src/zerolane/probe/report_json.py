"""A probe run as JSON (``zerolane probe --json``), in the shape of the schema shipped
beside this module (``report.schema.json``, :func:`schema`).

Every result carries its scenario's title, its outcome and why, its framework ids
(:mod:`zerolane.probe.mapping`) and its evidence: the exchanges as the wire kept them,
credentials masked (:meth:`~zerolane.probe.model.Exchange.to_json`; a response's raw body
is never part of it).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import zerolane
from zerolane.audit.events import rfc3339 as iso
from zerolane.probe import mapping
from zerolane.probe.model import Result, Scenario
from zerolane.probe.report import Report

#: the report's format version: a change a reader must know about raises it
VERSION = 1
SCHEMA_FILE = "report.schema.json"
TOOL = "zerolane probe"


def public_url(url: str) -> str:
    """``url`` without a user or password (``https://user:secret@host`` -> ``https://host``):
    what a report may show of a target."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host))


def scenario_of(report: Report, result: Result) -> Scenario | None:
    """The scenario a result came from (``None`` for a result of no known scenario)."""
    return next((s for s in report.scenarios if s.id == result.scenario), None)


def frameworks_json() -> dict[str, object]:
    """Every framework the mapping names: its name, where it is published, its ids."""
    return {
        framework.key: {
            "name": framework.name,
            "url": framework.url,
            "entries": dict(framework.entries),
        }
        for framework in mapping.FRAMEWORKS
    }


def result_json(report: Report, result: Result) -> dict[str, object]:
    scenario = scenario_of(report, result)
    return {
        "id": result.scenario,
        "title": scenario.title if scenario else result.scenario,
        "surface": scenario.surface if scenario else None,
        "attack": scenario.attack if scenario else None,
        "expect": scenario.expect if scenario else None,
        "outcome": result.outcome.value,
        "reason": result.reason,
        "mapping": {key: list(ids) for key, ids in mapping.for_result(result).items()},
        "evidence": [exchange.to_json() for exchange in result.evidence],
    }


def to_json(report: Report) -> dict[str, object]:
    """The report as a JSON object (see ``report.schema.json``)."""
    return {
        "version": VERSION,
        "tool": {"name": TOOL, "version": zerolane.__version__},
        "target": public_url(report.target),
        "credentials": report.credentials,
        "started": iso(report.started),
        "finished": iso(report.finished),
        "failed": report.failed,
        "counts": report.counts(),
        "results": [result_json(report, result) for result in report.results],
        "frameworks": frameworks_json(),
    }


def dumps(report: Report) -> str:
    """The report as JSON text (indented, a newline at the end)."""
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every report this module writes conforms to."""
    text = resources.files("zerolane.probe").joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
