"""``zerolane audit tail``: ``-n`` outside SQLite's integer range is a usage error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from zerolane.cli import audit
from zerolane.server.deployment import init_home

runner = CliRunner()
app = typer.Typer()
app.add_typer(audit.app, name="audit")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    deployment, _ = init_home(tmp_path / "home", "example.org")
    deployment.close()
    return tmp_path / "home"


@pytest.mark.parametrize("lines", [str(2**63), str(10**30), "0", "-1"])
def test_tail_refuses_a_count_out_of_range(home: Path, lines: str) -> None:
    result = runner.invoke(app, ["audit", "tail", "--home", str(home), "-n", lines])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("lines", ["1000", "1"])
def test_tail_accepts_a_count_in_range(home: Path, lines: str) -> None:
    result = runner.invoke(app, ["audit", "tail", "--home", str(home), "--json", "-n", lines])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert events
    assert len(events) <= int(lines)
