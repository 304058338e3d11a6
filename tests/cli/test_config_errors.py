"""A configuration file with problems: ``error <reason>: <file>: <key>: <problem>``, one
line per problem, exit 2; the JSON error under ``--json`` holds the same lines."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from zerolane.cli.main import app
from zerolane.config import CONFIG_NAME
from zerolane.server.deployment import init_home

runner = CliRunner()


def _home(tmp_path: Path, *lines: str) -> Path:
    home = tmp_path / "home"
    deployment, _ = init_home(home, "example.org")
    deployment.close()
    config = home / CONFIG_NAME
    config.write_text(config.read_text() + "\n".join(lines) + "\n")
    return home


def test_every_problem_of_zerolane_toml_is_a_line(tmp_path: Path) -> None:
    home = _home(tmp_path, "[limits]", "x = 1", "[http]", 'max_header_count = "100"')
    result = runner.invoke(app, ["task", "list", "--home", str(home)])
    assert result.exit_code == 2
    path = home / CONFIG_NAME
    first, second = result.output.splitlines()
    assert first == (
        f"error config.invalid: {path}: http.max_header_count: must be an integer, not str"
    )
    assert second.startswith(f"error config.invalid: {path}: limits: unknown key (known: ")
    as_json = runner.invoke(app, ["task", "list", "--home", str(home), "--json"])
    error = json.loads(as_json.output)
    assert (as_json.exit_code, error["reason"]) == (2, "config.invalid")
    assert error["message"].splitlines()[1].startswith(f"{path}: limits: unknown key")


def test_one_kind_of_problem_keeps_its_reason_and_the_valid_twin_runs(tmp_path: Path) -> None:
    home = _home(tmp_path, "[http]", "max_header_count = 0")
    result = runner.invoke(app, ["task", "list", "--home", str(home)])
    assert result.exit_code == 2
    assert result.output.startswith("error config.http: ")
    assert "http.max_header_count: must be 1 to 10000, not 0" in result.output
    twin = _home(tmp_path / "twin", "[http]", "max_header_count = 10")
    assert runner.invoke(app, ["task", "list", "--home", str(twin)]).exit_code == 0
