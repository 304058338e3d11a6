"""``zerolane playbook apply|list|show`` against a real home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from zerolane.cli import home as home_cli
from zerolane.cli import playbook

EXAMPLES = Path(__file__).parents[2] / "examples" / "playbooks"
runner = CliRunner()
app = typer.Typer()
home_cli.register(app)
app.add_typer(playbook.app, name="playbook")

VALID = """\
name: nightly-backup
description: Back up the orders database.
actions: [read]
resources: [db/orders/**]
destinations: [backup.internal]
data_ceiling: internal
max_ttl: 2h
max_calls: 10
delegable: true
max_depth: 2
openers:
  spiffe_ids: ["spiffe://example.org/jobs/*"]
  selectors: ["k8s-ns:ops"]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    result = runner.invoke(app, ["init", "--trust-domain", "example.org", "--home", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _run(home: Path, *args: str) -> Result:
    return runner.invoke(app, ["playbook", *args, "--home", str(home)])


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["quarterly-report.yaml", "ci-deploy.toml"])
def test_the_examples_apply_cleanly(home: Path, name: str) -> None:
    result = _run(home, "apply", str(EXAMPLES / name))
    assert result.exit_code == 0, result.output
    assert f"Applied playbook {name.rsplit('.', 1)[0]} version 1" in result.output


def test_apply_list_show(home: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, "backup.yaml", VALID)
    first = _run(home, "apply", str(path), "--json")
    assert first.exit_code == 0, first.output
    applied = json.loads(first.output)
    assert (applied["name"], applied["version"]) == ("nightly-backup", 1)
    assert applied["playbook"]["max_ttl"] == 7200
    assert _run(home, "apply", str(EXAMPLES / "quarterly-report.yaml")).exit_code == 0
    unchanged = _run(home, "apply", str(path))  # the same file again: nothing changes
    assert "nightly-backup version 1" in unchanged.output
    _write(tmp_path, "backup.yaml", VALID.replace("max_calls: 10", "max_calls: 12"))
    again = _run(home, "apply", str(path))
    assert "Applied playbook nightly-backup version 2" in again.output

    listed = _run(home, "list", "--json")
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.output)
    assert [(e["name"], e["version"]) for e in entries] == [
        ("nightly-backup", 2),
        ("quarterly-report", 1),
    ]

    table = _run(home, "list")
    assert table.exit_code == 0, table.output
    for text in ("nightly-backup", "quarterly-report", "confidential", "2h", "15m", "depth 2"):
        assert text in table.output

    shown = _run(home, "show", "nightly-backup")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["version"] == 2
    assert doc["playbook"]["openers"] == {
        "spiffe_ids": ["spiffe://example.org/jobs/*"],
        "selectors": ["k8s-ns:ops"],
    }
    assert (doc["playbook"]["delegable"], doc["playbook"]["max_depth"]) == (True, 2)


def test_the_shown_document_applies_as_a_json_file(home: Path, tmp_path: Path) -> None:
    _run(home, "apply", str(EXAMPLES / "ci-deploy.toml"))
    shown = json.loads(_run(home, "show", "ci-deploy").output)
    path = _write(tmp_path, "ci-deploy.json", json.dumps(shown["playbook"]))
    result = _run(home, "apply", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["playbook"] == shown["playbook"]
    assert json.loads(result.output)["version"] == 1  # the very same playbook: unchanged


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("bad.yaml", VALID.replace("max_ttl: 2h", "max_ttl: 8d"), "playbook.ttl"),
        ("bad.yaml", VALID + "max_call: 5\n", "playbook.unknown_key"),
        ("bad.yaml", VALID + "---\n" + VALID, "playbook.documents"),
        ("bad.yaml", VALID.replace("[db/orders/**]", "['db/**/x']"), "playbook.pattern"),
        ("bad.toml", "name = [\n", "playbook.syntax"),
        ("bad.txt", VALID, "playbook.file"),
    ],
)
def test_an_invalid_file_is_one_error_line_and_exit_2(
    home: Path, tmp_path: Path, name: str, text: str, reason: str
) -> None:
    path = _write(tmp_path, name, text)
    result = _run(home, "apply", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error {reason}: {path}: ")
    assert json.loads(_run(home, "list", "--json").output) == []


def test_a_missing_file_is_refused(home: Path, tmp_path: Path) -> None:
    result = _run(home, "apply", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error playbook.file: ")


def test_show_an_unknown_playbook(home: Path) -> None:
    result = _run(home, "show", "nope")
    assert result.exit_code == 2
    assert result.stderr == "error playbook.unknown: no playbook 'nope' is registered\n"


def test_without_a_home(tmp_path: Path) -> None:
    result = _run(tmp_path / "none", "list")
    assert result.exit_code == 2
    assert result.stderr.startswith("error home.missing: ")


def test_an_empty_list(home: Path) -> None:
    assert json.loads(_run(home, "list", "--json").output) == []
    assert _run(home, "list").exit_code == 0
