"""Listings say when there is nothing, show ids in full off a terminal (and with
``--wide``), and ``playbook apply`` lists every problem and warns of likely mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from zerolane.cli.main import app

runner = CliRunner()
LONG_ID = "spiffe://example.org/agents/" + "/".join(f"team-{i}-reports-writer" for i in range(6))
WARNED = """\
name: warned
description: A playbook with likely mistakes.
actions: [GET, read]
resources: [reports/*]
destinations: [api.example.org]
data_ceiling: internal
max_ttl: 5m
max_calls: 3
openers:
  spiffe_ids: ["spiffe://other.example/agents/*"]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    done = runner.invoke(app, ["init", "--trust-domain", "example.org", "--home", str(path)])
    assert done.exit_code == 0, done.output
    return path


def _run(home: Path, *args: str) -> Result:
    return runner.invoke(app, [*args, "--home", str(home)])


@pytest.mark.parametrize(
    ("command", "empty"),
    [
        (("task", "list"), "no tasks"),
        (("workload", "list"), "no workloads"),
        (("playbook", "list"), "no playbooks"),
        (("grant", "list"), "no leases"),
        (("federation", "list"), "no federated trust domains"),
        (("enforcement-point", "list"), "no enforcement points"),
    ],
)
def test_an_empty_listing_says_so(home: Path, command: tuple[str, ...], empty: str) -> None:
    result = _run(home, *command)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == empty


def test_ids_are_whole_when_the_output_is_not_a_terminal(home: Path) -> None:
    assert _run(home, "workload", "register", LONG_ID).exit_code == 0
    for extra in ((), ("--wide",)):
        listed = _run(home, "workload", "list", *extra)
        assert listed.exit_code == 0, listed.output
        assert LONG_ID in listed.output  # on one line, not folded or cut
        assert "…" not in listed.output


def test_apply_warns_of_likely_mistakes_and_applies(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "warned.yaml"
    path.write_text(WARNED)
    result = _run(home, "playbook", "apply", str(path))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert [w.split(":")[1].strip() for w in warnings] == ["actions", "openers.spiffe_ids"]
    assert "version 1" in result.stdout
    # the twin: the same playbook without the mistakes applies without a word
    clean = WARNED.replace("[GET, read]", "[http:GET, read]").replace(
        "other.example", "example.org"
    )
    path.write_text(clean)
    again = _run(home, "playbook", "apply", str(path))
    assert again.exit_code == 0
    assert "warning" not in again.stderr


def test_apply_lists_every_problem_one_line_each(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        WARNED.replace("max_ttl: 5m", "max_ttl: 9d").replace("max_calls: 3", "max_call: 3")
    )
    result = _run(home, "playbook", "apply", str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    # in the playbook's field order, an unknown key last
    assert [line.split(": ")[2] for line in lines] == ["max_ttl", "max_calls", "max_call"]
    assert all(line.startswith("error playbook.invalid: ") for line in lines)


def test_enforcement_points_are_added_listed_and_removed_with_json(home: Path) -> None:
    added = _run(home, "enforcement-point", "add", "edge", "--url", "https://a.example", "--json")
    assert added.exit_code == 0, added.output
    assert '"credential": "zlep_' in added.stdout
    listed = _run(home, "enforcement-point", "list", "--json")
    assert '"name": "edge"' in listed.stdout
    assert "zlep_" not in listed.stdout  # the credential is shown once, never listed
    removed = _run(home, "enforcement-point", "remove", "edge", "--json")
    assert removed.exit_code == 0, removed.output
    assert '"urls": [\n    "https://a.example/"\n  ]' in removed.stdout
    again = _run(home, "enforcement-point", "remove", "edge", "--json")
    assert again.exit_code == 2
    assert '"reason": "enforcement_point.unknown"' in again.stderr
