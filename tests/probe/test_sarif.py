"""The SARIF log: real runs and a made-up one validate against the official SARIF 2.1.0
schema (tests/probe/data, see its README); one rule per scenario with its framework ids,
one result per fail (error) and per inconclusive (note), none for a pass."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from tests.probe.report_fixtures import (  # noqa: F401  (fixtures)
    Run,
    accept_all_url,
    gateway_run,
    made_report,
    weak_run,
)
from zerolane.probe import mapping, sarif

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


@cache
def _validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def sarif_errors(log: dict[str, Any]) -> list[str]:
    """Where ``log`` breaks the official SARIF 2.1.0 schema (none: valid)."""
    return [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(log)]


def _run(log: dict[str, Any]) -> dict[str, Any]:
    (run,) = log["runs"]
    assert isinstance(run, dict)
    return run


def test_a_real_run_with_findings_is_valid_sarif_with_one_error_per_fail(
    weak_run: Run,  # noqa: F811
) -> None:
    text = sarif.dumps(weak_run.report)
    log = json.loads(text)
    assert sarif_errors(log) == []
    assert log["version"] == "2.1.0"
    run = _run(log)
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [s.id for s in weak_run.report.scenarios]
    failed = [r.scenario for r in weak_run.report.results if r.outcome.value == "fail"]
    assert {"token.no_proof", "proof.replayed"} <= set(failed)
    assert [r["ruleId"] for r in run["results"]] == failed
    for result in run["results"]:
        assert result["level"] == "error"
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == weak_run.report.target
        assert result["properties"]["evidence"]
    fingerprints = [r["partialFingerprints"][sarif.FINGERPRINT] for r in run["results"]]
    assert len(set(fingerprints)) == len(fingerprints)
    no_proof = rules[[r["id"] for r in rules].index("token.no_proof")]
    assert {"NHI2:2025", "NHI4:2025", "ASI03", "CSF2:PR.AA-03", "CSF1.1:PR.AC-7"} <= set(
        no_proof["properties"]["tags"]
    )
    assert no_proof["properties"]["mapping"]["nist-sp-800-207"] == ["T6"]
    assert weak_run.secrets
    for secret in weak_run.secrets:
        assert secret not in text


def test_a_real_run_where_every_attack_was_refused_has_rules_and_no_result(
    gateway_run: Run,  # noqa: F811
) -> None:
    text = sarif.dumps(gateway_run.report)
    log = json.loads(text)
    assert sarif_errors(log) == []
    run = _run(log)
    assert run["results"] == []
    assert len(run["tool"]["driver"]["rules"]) == len(gateway_run.report.scenarios)
    assert run["properties"]["counts"]["fail"] == 0
    for secret in gateway_run.secrets:
        assert secret not in text


def test_an_inconclusive_result_is_a_note_and_a_pass_or_not_applicable_no_result() -> None:
    log = sarif.to_sarif(made_report())
    assert sarif_errors(log) == []
    run = _run(log)
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {
        "token.alg_none": "error",
        "token.expired": "note",
        "custom.unmapped": "error",
    }
    rules = run["tool"]["driver"]["rules"]
    # a result of a scenario the report does not list still has its rule, found by index
    unknown = next(r for r in run["results"] if r["ruleId"] == "custom.unmapped")
    assert rules[unknown["ruleIndex"]]["id"] == "custom.unmapped"
    assert rules[unknown["ruleIndex"]]["properties"]["tags"] == ["security"]
    alg_none = rules[[r["id"] for r in rules].index("token.alg_none")]
    assert alg_none["name"] == "TokenAlgNone"
    assert alg_none["shortDescription"]["text"] == "alg none <accepted>"
    assert "NHI4:2025 Insecure Authentication (OWASP NHI)" in alg_none["help"]["text"]
    assert set(alg_none["properties"]["mapping"]) == {f.key for f in mapping.FRAMEWORKS}
    # the target's user and password never reach the log
    assert "hunter2" not in json.dumps(log)
    uri = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "https://api.example.test/"
    # a finding keeps its fingerprint from one run to the next
    again = _run(sarif.to_sarif(made_report()))
    assert [r["partialFingerprints"] for r in again["results"]] == [
        r["partialFingerprints"] for r in run["results"]
    ]
    invocation = run["invocations"][0]
    assert invocation["startTimeUtc"] == "2025-12-06T05:46:40.000Z"


def test_the_schema_refuses_a_log_that_breaks_it() -> None:
    """The vendored schema is the real check: a level SARIF does not know is refused."""
    log: Any = sarif.to_sarif(made_report())
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert sarif_errors(log) != []
    del log["runs"][0]["tool"]
    assert len(sarif_errors(log)) >= 2
