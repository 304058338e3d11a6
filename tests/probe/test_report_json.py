"""The JSON report: real runs and a made-up one conform to the schema shipped in the
package, carry every result with its mapping and evidence, and never a secret."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.probe.report_fixtures import (  # noqa: F401  (fixtures)
    HOSTILE,
    Run,
    accept_all_url,
    gateway_run,
    made_report,
    weak_run,
)
from tests.probe.test_sarif import sarif_errors
from zerolane.probe import html, mapping, report_json, sarif
from zerolane.probe.context import ProbeContext
from zerolane.probe.runner import run
from zerolane.probe.scenarios import CATALOG


def _validator() -> jsonschema.Draft202012Validator:
    schema = report_json.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _valid(document: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(document)]
    assert errors == []


def _no_secret(text: str, run: Run) -> None:
    assert run.secrets, "the run held no credential: nothing was checked"
    for secret in run.secrets:
        assert secret not in text


def test_a_real_run_against_the_gateway_conforms_and_shows_every_attack_refused(
    gateway_run: Run,  # noqa: F811
) -> None:
    text = report_json.dumps(gateway_run.report)
    document = json.loads(text)
    _valid(document)
    assert document["target"] == gateway_run.report.target
    assert document["credentials"] == gateway_run.report.credentials
    assert document["failed"] is False
    assert document["counts"]["fail"] == 0
    assert document["counts"]["pass"] >= 2
    by_id = {r["id"]: r for r in document["results"]}
    assert by_id["proof.replayed"]["outcome"] == "pass"
    assert by_id["proof.replayed"]["title"] == "Proof replayed"
    assert by_id["proof.replayed"]["mapping"]["owasp-nhi-2025"] == ["NHI4:2025"]
    roles = [e["role"] for e in by_id["proof.replayed"]["evidence"]]
    assert roles[-2:] == ["twin", "attack"]
    assert by_id["proof.replayed"]["evidence"][-1]["response"]["status"] == 401
    assert set(document["frameworks"]) == {f.key for f in mapping.FRAMEWORKS}
    _no_secret(text, gateway_run)


def test_a_real_run_against_a_target_that_accepts_anything_reports_the_findings(
    weak_run: Run,  # noqa: F811
) -> None:
    text = report_json.dumps(weak_run.report)
    document = json.loads(text)
    _valid(document)
    assert document["failed"] is True
    failed = {r["id"]: r for r in document["results"] if r["outcome"] == "fail"}
    assert {"token.no_proof", "proof.replayed"} <= set(failed)
    assert document["counts"]["fail"] == len(failed)
    attack = failed["token.no_proof"]["evidence"][-1]
    assert attack["role"] == "attack"
    assert attack["response"]["status"] == 200
    assert failed["token.no_proof"]["mapping"]["owasp-asi-2026"] == ["ASI03"]
    _no_secret(text, weak_run)


def test_the_whole_catalog_against_the_gateway_gives_reports_that_conform(
    gateway_context: ProbeContext,
) -> None:
    """Every scenario's evidence, as its module records it, fits the JSON schema and the
    SARIF schema; every result carries ids of every framework; no credential leaks."""
    report = run(CATALOG, gateway_context)
    held = {gateway_context.credential().token, *gateway_context.wire.secrets}
    texts = [report_json.dumps(report), sarif.dumps(report), html.render(report)]
    document = json.loads(texts[0])
    _valid(document)
    assert sarif_errors(json.loads(texts[1])) == []
    assert [r["id"] for r in document["results"]] == [s.id for s in CATALOG]
    assert document["counts"]["fail"] == 0, [
        (r["id"], r["reason"]) for r in document["results"] if r["outcome"] == "fail"
    ]
    for result in document["results"]:
        assert all(result["mapping"][f.key] for f in mapping.FRAMEWORKS), result["id"]
    secrets = [s for s in held if len(s) >= 16]
    assert secrets
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_a_made_report_with_every_outcome_conforms() -> None:
    document: Any = report_json.to_json(made_report())
    _valid(document)
    assert document["counts"] == {"pass": 1, "fail": 2, "inconclusive": 1, "not_applicable": 1}
    assert document["started"] == "2025-12-06T05:46:40.000Z"
    assert document["finished"] == "2025-12-06T05:46:43.500Z"
    # the target's user and password never reach a report
    assert document["target"] == "https://api.example.test/"
    assert "hunter2" not in json.dumps(document)
    by_id = {r["id"]: r for r in document["results"]}
    assert by_id["token.expired"]["evidence"][0]["response"]["status"] is None
    assert by_id["mcp.tool_outside_task"]["evidence"] == []
    unknown = by_id["custom.unmapped"]
    assert unknown["title"] == "custom.unmapped"
    assert unknown["surface"] is None
    assert all(ids == [] for ids in unknown["mapping"].values())
    # what the target answered is kept as text (escaping is the HTML report's job)
    assert HOSTILE in by_id["token.alg_none"]["evidence"][1]["response"]["excerpt"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("results", 0, "outcome"), "passed"),
        (("results", 0, "evidence", 0, "role"), "victim"),
        (("counts", "fail"), -1),
        (("started",), "yesterday"),
        (("target",), "https://user:secret@api.example.test/"),
        (("version",), 2),
    ],
    ids=["outcome", "role", "count", "instant", "userinfo", "version"],
)
def test_the_schema_refuses_a_report_that_breaks_it(
    path: tuple[str | int, ...], value: object
) -> None:
    document: Any = report_json.to_json(made_report())
    holder = document
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value
    assert list(_validator().iter_errors(document)) != []


def test_the_schema_refuses_a_result_without_its_mapping() -> None:
    document: Any = report_json.to_json(made_report())
    del document["results"][0]["mapping"]
    assert list(_validator().iter_errors(document)) != []


def test_the_schema_ships_in_the_package() -> None:
    schema = report_json.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["version"]["const"] == report_json.VERSION
