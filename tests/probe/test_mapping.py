"""The framework mapping: every scenario the probe runs carries ids of every framework,
every id is one the framework defines, and docs/mapping.md is the table as generated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zerolane.probe import mapping
from zerolane.probe.model import Outcome, Result
from zerolane.probe.scenarios import CATALOG

ROOT = Path(__file__).resolve().parents[2]
#: the scenario ids agreed in issue 14 (stable: reports and this mapping name them);
#: the catalog holds them as their modules land
AGREED = frozenset(
    {
        "token.no_proof",
        "token.replayed_elsewhere",
        "proof.replayed",
        "proof.other_key",
        "proof.other_method",
        "proof.other_url",
        "proof.stale_iat",
        "proof.future_iat",
        "task.reused_after_completion",
        "task.reused_after_revocation",
        "task.reused_across_tasks",
        "delegation.wider_than_parent",
        "delegation.child_after_parent",
        "token.expired",
        "token.nbf_future",
        "token.wrong_audience",
        "token.passthrough",
        "token.alg_none",
        "token.hs256_public_key",
        "token.jwk_injection",
        "token.jku_injection",
        "token.x5u_injection",
        "token.kid_traversal",
        "path.encoded_dots",
        "path.encoded_slash",
        "path.semicolon",
        "path.backslash",
        "path.double_encoding",
        "method.override",
        "limits.oversized_headers",
        "limits.oversized_body",
        "mcp.tool_outside_task",
        "mcp.tools_list_filtered",
    }
)
KEYS = [framework.key for framework in mapping.FRAMEWORKS]


@pytest.mark.parametrize("scenario", [s.id for s in CATALOG])
def test_every_scenario_of_the_catalog_maps_to_every_framework(scenario: str) -> None:
    assert scenario in mapping.MAPPING, f"{scenario} has no framework mapping"
    mapped = mapping.MAPPING[scenario]
    assert list(mapped) == KEYS
    assert all(mapped[key] for key in KEYS), mapped


def test_the_mapping_names_no_unknown_scenario() -> None:
    """Every mapped id is one agreed in issue 14; those not in the catalog yet are the
    ones whose modules have not landed (none once all have)."""
    assert set(mapping.MAPPING) == AGREED
    waiting = set(mapping.MAPPING) - {s.id for s in CATALOG}
    assert waiting <= AGREED


def test_every_mapped_id_is_defined_by_its_framework_once() -> None:
    for scenario, mapped in mapping.MAPPING.items():
        for framework in mapping.FRAMEWORKS:
            ids = mapped[framework.key]
            assert len(set(ids)) == len(ids), (scenario, ids)
            assert set(ids) <= set(framework.entries), (scenario, framework.key, ids)


def test_frameworks_hold_their_published_ids_and_titles() -> None:
    entries = {framework.key: framework.entries for framework in mapping.FRAMEWORKS}
    assert list(entries["owasp-nhi-2025"]) == [f"NHI{n}:2025" for n in range(1, 11)]
    assert entries["owasp-nhi-2025"]["NHI7:2025"] == "Long-Lived Secrets"
    assert entries["owasp-nhi-2025"]["NHI1:2025"] == "Improper Offboarding"
    assert list(entries["owasp-asi-2026"]) == [f"ASI{n:02d}" for n in range(1, 11)]
    assert entries["owasp-asi-2026"]["ASI03"] == "Identity and Privilege Abuse"
    assert list(entries["nist-sp-800-207"]) == [f"T{n}" for n in range(1, 8)]
    assert "per-session" in entries["nist-sp-800-207"]["T3"]
    assert list(entries["csa-maestro"]) == [f"L{n}" for n in range(1, 8)]
    assert entries["csa-maestro"]["L6"] == "Security and Compliance"
    assert list(entries["nist-csf-2.0"]) == [f"PR.AA-0{n}" for n in range(1, 7)]
    assert "least privilege" in entries["nist-csf-2.0"]["PR.AA-05"]
    assert "least privilege" in entries["nist-csf-1.1"]["PR.AC-4"]


def test_a_result_carries_its_scenarios_ids() -> None:
    found = Result("task.reused_after_revocation", Outcome.FAIL, "accepted")
    mapped = mapping.for_result(found)
    assert mapped["owasp-nhi-2025"] == ("NHI1:2025", "NHI7:2025")
    assert mapped["nist-csf-1.1"] == ("PR.AC-1", "PR.AC-4")
    assert "CSF2:PR.AA-05" in mapping.tags(found.scenario)
    assert "NHI1:2025" in mapping.tags(found.scenario)
    assert "SP800-207:T3" in mapping.tags(found.scenario)


def test_a_scenario_the_table_does_not_know_maps_to_nothing() -> None:
    unknown = mapping.for_result(Result("custom.thing", Outcome.FAIL, "accepted"))
    assert dict(unknown) == {key: () for key in KEYS}
    assert mapping.tags("custom.thing") == []


def test_docs_mapping_page_is_the_generated_table() -> None:
    page = (ROOT / "docs" / "mapping.md").read_text(encoding="utf-8")
    assert page == mapping.render_markdown(), (
        "docs/mapping.md is stale: .venv/bin/python -m zerolane.probe.mapping > docs/mapping.md"
    )
    assert "python -m zerolane.probe.mapping > docs/mapping.md" in page
    for scenario in AGREED:
        assert f"| `{scenario}` |" in page


def test_the_regeneration_command_prints_the_page() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "zerolane.probe.mapping"], capture_output=True, check=True
    )
    assert printed.stdout.decode("utf-8") == mapping.render_markdown()
