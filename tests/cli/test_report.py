"""``zerolane report shadow``: would-deny events of a home's audit log grouped by reason,
as a table or JSON; a bad ``--since`` is a usage error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.audit.test_shadow import AGENT, ROUTE, shadow_details
from zerolane.cli.main import app
from zerolane.server.deployment import init_home
from zerolane.types import Outcome

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose log holds three shadow allows (two reasons) and a plain deny."""
    deployment, _ = init_home(tmp_path / "home", "example.org")
    audit = deployment.audit
    for task, reasons in [("t1", ["scope.action"]), ("t2", ["scope.action", "flow.egress"])]:
        audit.record(
            "decision",
            actor=AGENT,
            subject=task,
            outcome=Outcome.SUCCESS,
            reason="shadow",
            details=shadow_details(reasons),
        )
    audit.record(
        "decision",
        actor=AGENT,
        subject="t3",
        outcome=Outcome.DENIED,
        reason="scope.action",
        details={"decision": "deny", "reasons": ["scope.action"]},
    )
    deployment.close()
    return tmp_path / "home"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["report", "shadow", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_the_report_groups_would_denies_by_reason(home: Path) -> None:
    code, output = run("--home", str(home), "--json", "--since", "1h")
    assert code == 0, output
    shown = json.loads(output)
    assert shown["total"] == 2
    assert [(r["reason"], r["count"], r["tasks"]) for r in shown["reasons"]] == [
        ("scope.action", 2, 2),
        ("flow.egress", 1, 1),
    ]
    assert shown["reasons"][0]["modes"] == [ROUTE]
    assert shown["reasons"][0]["playbooks"] == ["reports"]

    code, output = run("--home", str(home), "--wide")
    assert code == 0, output
    lines = [line for line in output.splitlines() if "scope.action" in line]
    assert len(lines) == 1
    row = [cell.strip() for cell in lines[0].split("│")[1:-1]]
    assert row[:5] == ["scope.action", "2", "2", "reports", ROUTE]
    assert row[5] == "delete finance/reports/q3 @finance-api.internal"


def test_an_empty_period_says_so(tmp_path: Path) -> None:
    deployment, _ = init_home(tmp_path / "home", "example.org")
    deployment.close()
    code, output = run("--home", str(tmp_path / "home"))
    assert code == 0, output
    assert "no shadow allows since" in output


@pytest.mark.parametrize("since", ["yesterday", "0", "-1h", "400d"])
def test_a_bad_since_is_a_usage_error(home: Path, since: str) -> None:
    code, output = run("--home", str(home), "--since", since)
    assert code == 2
    assert "Traceback" not in output
    assert "duration" in output or "longer than" in output
