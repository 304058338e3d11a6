"""``zerolane decide``: one question to a home's policies, like ``opa eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from zerolane.cli.main import app
from zerolane.server.deployment import init_home

runner = CliRunner()
REQUEST = """
task:
  actions: [read]
  resources: ["reports/*"]
  destinations: [finance.example]
request:
  action: {action}
  resource: reports/q3
  destination: finance.example
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    init_home(tmp_path / "home", "decide.example")[0].close()
    return tmp_path / "home"


def _decide(home: Path, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["decide", *args, "--home", str(home)], input=stdin)


def test_a_request_within_the_task_is_allowed(home: Path, tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text(REQUEST.format(action="read"))
    result = _decide(home, str(request))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "allow"


def test_an_action_outside_the_task_is_denied_naming_the_policy(home: Path) -> None:
    result = _decide(home, "-", "--json", stdin=REQUEST.format(action="delete"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["decision"], data["policies"], data["errors"]) == ("deny", ["scope.action"], [])


def test_invalid_input_names_the_input_not_a_temporary_file(home: Path) -> None:
    missing = _decide(home, "-", stdin="task: {}\nrequest: {action: read}\n")
    assert missing.exit_code == 2
    assert "error policy_test.invalid: -: request." in missing.output
    assert "zerolane-decide-" not in missing.output
    for text in ("[1]\n", "name: x\nopen: {}\n", "{"):
        refused = _decide(home, "-", stdin=text)
        assert refused.exit_code == 2, text
        assert refused.output.startswith("error "), refused.output
