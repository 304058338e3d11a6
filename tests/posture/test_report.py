"""A posture report joins its sources' parts; its JSON conforms to the shipped schema
and its SARIF to the official SARIF 2.1.0 schema, neither holding a raw secret."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.posture.planted import plant_tree
from tests.probe.test_sarif import sarif_errors
from zerolane.posture import report_json, sarif
from zerolane.posture.findings import Finding, Note, Severity
from zerolane.posture.report import Part, Report, combine
from zerolane.posture.secrets import scan_files


def _valid(document: object) -> None:
    schema = report_json.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)] == []


def _planted_report(root: Path) -> tuple[Report, dict[tuple[str, int, str], str]]:
    tree = plant_tree(root)
    found = scan_files([root])
    part = Part(tuple(found.findings), (Note("x.py", "cannot read: denied"),), {"files": 3})
    return combine([part], 1.0, 2.0), tree.expected


def test_combine_adds_counts_and_orders_findings() -> None:
    a = Finding("secret.file", "t", Severity.HIGH, ("NHI2:2025",), "m", "r", path="b", line=1)
    b = Finding("secret.file", "t", Severity.LOW, ("NHI2:2025",), "m", "r", path="a", line=9)
    c = Finding("inventory.x", "t", Severity.MEDIUM, ("NHI1:2025",), "m", "r", subject="s")
    report = combine([Part((c, a), (), {"files": 2}), Part((b,), (), {"files": 1})], 1, 2)
    assert report.findings == (b, a, c)
    assert report.counts == {"files": 3}
    assert report.by_severity() == {"high": 1, "medium": 1, "low": 1}
    assert report.failed
    assert not combine([], 1, 2).failed


def test_json_report_conforms_and_holds_no_secret(tmp_path: Path) -> None:
    report, expected = _planted_report(tmp_path)
    document = report_json.to_json(report)
    _valid(document)
    text = report_json.dumps(report)
    assert json.loads(text) == document
    assert document["counts"] == {"findings": report.by_severity(), "files": 3}
    for value in expected.values():
        assert value not in text
    _valid(report_json.to_json(combine([], 1, 2)))  # an empty one too


def test_sarif_is_valid_and_holds_masked_snippets_only(tmp_path: Path) -> None:
    report, expected = _planted_report(tmp_path)
    subject = Finding("inventory.x", "t", Severity.LOW, ("NHI1:2025",), "m", "r", subject="s")
    report = combine([Part((*report.findings, subject), report.notes, report.counts)], 1, 2)
    text = sarif.dumps(report)
    log = json.loads(text)
    assert sarif_errors(log) == []
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert len(run["results"]) == len(report.findings)
    for result, finding in zip(run["results"], report.findings, strict=True):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == finding.rule
        location = result["locations"][0]
        if finding.path is None:
            assert location["logicalLocations"][0]["name"] == "s"
            continue
        region = location["physicalLocation"]["region"]
        assert region["startLine"] == finding.line
        assert region["snippet"]["text"] == finding.masked
    levels = {r["level"] for r in run["results"]}
    assert levels == {"error", "warning", "note"}
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["message"]["text"] == "x.py: cannot read: denied"
    for value in expected.values():
        assert value not in text


def test_sarif_names_an_odd_file_name_by_its_uri() -> None:
    # a name of bytes that are not UTF-8 (the walk keeps them as surrogates) made the
    # fingerprint raise UnicodeEncodeError: no SARIF, and an error about the arguments
    odd = Finding(
        "secret.file", "t", Severity.HIGH, ("NHI2:2025",), "m", "r", "bad\udcff/a b#%.txt", 1
    )
    plain = Finding("secret.file", "t", Severity.HIGH, ("NHI2:2025",), "m", "r", "app/.env", 2)
    log = json.loads(sarif.dumps(combine([Part((odd, plain))], 1, 2)))
    assert sarif_errors(log) == []
    results = log["runs"][0]["results"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert uris == ["app/.env", "bad%FF/a%20b%23%25.txt"]
    prints = {r["partialFingerprints"][sarif.FINGERPRINT] for r in results}
    assert len(prints) == 2
