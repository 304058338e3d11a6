"""``zerolane posture scan``: exit 1 with findings and 0 without, 2 for a path that does
not exist or a report that cannot be written; --json conforms to its schema, --sarif to
SARIF 2.1.0; no raw secret in any output."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner, Result

from tests.posture.planted import clean_tree, github_token, plant_tree
from tests.posture.test_report import _valid
from tests.probe.test_sarif import sarif_errors
from zerolane.cli.main import app

runner = CliRunner()


def _run(*args: str) -> Result:
    return runner.invoke(app, ["posture", *args], env={"NO_COLOR": "1", "COLUMNS": "200"})


def test_findings_exit_1_in_every_format_without_a_raw_secret(tmp_path: Path) -> None:
    tree = plant_tree(tmp_path / "repo")
    out = tmp_path / "scan.sarif"
    as_json = _run("scan", str(tree.root), "--json", "--sarif", str(out))
    assert as_json.exit_code == 1, as_json.output
    document = json.loads(as_json.stdout)  # nothing but the document on stdout
    _valid(document)
    found = {(f["path"], f["line"], f["rule"]) for f in document["findings"]}
    assert found == set(tree.expected)
    log = json.loads(out.read_text())
    assert sarif_errors(log) == []
    assert len(log["runs"][0]["results"]) == len(tree.expected)
    table = _run("scan", str(tree.root))
    assert table.exit_code == 1
    assert ".github/workflows/deploy.yml" in table.stdout
    assert "secret.terraform_state: A state file holds" in table.stdout
    assert f"{len(tree.expected)} findings (" in table.stdout
    outputs = [as_json.stdout, as_json.stderr, out.read_text(), table.stdout, table.stderr]
    for value in tree.expected.values():
        for output in outputs:
            assert value not in output


def test_a_clean_tree_exits_0(tmp_path: Path) -> None:
    root = clean_tree(tmp_path / "clean")
    table = _run("scan", str(root))
    assert table.exit_code == 0, table.output
    assert "no findings (" in table.stdout
    as_json = _run("scan", "--json", str(root))
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["findings"] == []
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "tool.py").write_text("print('hello')\n")
    assert "no findings (1 file)" in _run("scan", str(tmp_path / "one")).stdout


def test_the_current_folder_by_default_and_notes_are_shown(tmp_path: Path) -> None:
    (tmp_path / "pipe").parent.mkdir(exist_ok=True)
    os.mkfifo(tmp_path / "pipe")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = _run("scan")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert "note: pipe: not a regular file" in result.stdout
    assert "no findings (0 files)" in result.stdout


def test_bad_input_exits_2(tmp_path: Path) -> None:
    missing = _run("scan", str(tmp_path / "missing"))
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error posture.path: no such file or folder")
    as_json = _run("scan", "--json", str(tmp_path / "missing"))
    assert json.loads(as_json.stderr)["reason"] == "posture.path"
    unwritable = _run("scan", str(tmp_path), "--sarif", str(tmp_path / "no" / "x.sarif"))
    assert unwritable.exit_code == 2
    assert unwritable.stderr.startswith("error posture.output: cannot write")


def test_help_names_the_command() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    assert "scan" in result.stdout
    assert "OWASP NHI" in result.stdout


def test_a_file_name_of_bytes_that_are_not_utf8_is_reported_everywhere(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    odd = os.fsencode(root) + b"/bad\xff"
    os.makedirs(odd)
    token = github_token()
    with open(odd + b"/x.txt", "w") as file:
        file.write(f"t = {token}\n")
    out = tmp_path / "scan.sarif"
    as_json = _run("scan", str(root), "--json", "--sarif", str(out))
    assert as_json.exit_code == 1, as_json.output
    assert [f["path"] for f in json.loads(as_json.stdout)["findings"]] == ["bad\udcff/x.txt"]
    log = json.loads(out.read_text())
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "bad%FF/x.txt"
    table = _run("scan", str(root))
    assert table.exit_code == 1
    assert "bad\\udcff/x.txt" in table.stdout
    assert token not in as_json.stdout + out.read_text() + table.stdout
