"""``zerolane playbook suggest`` on a seeded home (SQLite): the table, the unused grants,
the denied requests and the diff; ``--json``; ``--write`` makes a file that loads back
and applies; no evidence, an unknown playbook and a bad ``--since`` are clear errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.posture.test_suggest import WIDE_DOC, used
from tests.tasks.conftest import ADMIN, AGENT, FINANCE, build_world
from zerolane.audit.events import Actor
from zerolane.cli import playbook as playbook_cli
from zerolane.cli.main import app
from zerolane.posture import suggest as suggest_module
from zerolane.tasks.playbooks import load_playbook_file, parse_playbook
from zerolane.types import Outcome

runner = CliRunner()


def _home(tmp_path: Path) -> tuple[Path, Any]:
    home = tmp_path / "home"
    world = build_world(home, f"sqlite:///{home / 'state.db'}", at=time.time() - 3600)
    world.deployment.playbooks.apply(parse_playbook(WIDE_DOC, "tests"), ADMIN)
    return home, world


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose ``wide`` playbook had two tasks an hour ago (tests.posture)."""
    path, world = _home(tmp_path)
    used(world, world.agent(AGENT))
    world.deployment.close()
    return path


def run(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["playbook", "suggest", *args, "--home", str(home)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.output


def test_the_table_names_the_unused_grants_the_denied_requests_and_the_diff(
    home: Path,
) -> None:
    code, output = run(home, "wide")
    assert code == 0, output
    assert "Playbook wide version 1: 2 task(s) opened since " in output
    assert "5 allowed, 2 denied, 0 would-deny (shadow) requests" in output
    rows = {tuple(c.strip() for c in line.split("│")[1:-1]) for line in output.splitlines()}
    assert ("action", "delete", "unused", "-") in rows
    assert ("action", "read", "yes", "read") in rows
    assert ("resource", "wiki/**", "1 request", "wiki/finance/q3") in rows
    assert ("resource", "finance/*", "4 requests", "finance/*") in rows
    assert ("resource", "hr/**", "unused", "-") in rows
    assert ("data_ceiling", "restricted", "confidential", "confidential") in rows
    assert ("max_calls", "100", "3 (most by a task)", "3") in rows
    assert ("max_ttl", "2h", "290s", "5m") in rows
    assert ("max_depth", "2", "0", "0") in rows
    assert "Unused grants (dropped from the suggestion):" in output
    assert "  delegation (max_depth 2): no task delegated" in output
    assert "max_calls and max_ttl are as observed" in output
    assert "Denied requests (never added to the suggestion)" in output
    assert ("1", "read", "payroll/x", FINANCE, "scope.resource") in rows
    assert "--- wide (current)\n+++ wide (suggested)\n" in output
    assert "\n-- delete\n" in output
    assert "\n+- wiki/finance/q3\n" in output
    assert "\n+max_ttl: 5m\n" in output


def test_json_holds_the_evidence_the_suggestion_and_the_diff(home: Path) -> None:
    code, output = run(home, "wide", "--json", "--since", "2h")
    assert code == 0, output
    shown = json.loads(output)
    assert shown["playbook"] == "wide"
    assert shown["written"] is None
    assert shown["evidence"]["tasks"] == 2
    assert shown["actions"]["unused"] == ["delete"]
    assert shown["suggested"]["actions"] == ["read", "write"]
    assert shown["suggested"]["resources"] == ["finance/*", "wiki/finance/q3"]
    assert shown["suggested"]["max_ttl"] == 300
    assert [r["resource"] for r in shown["refused"]] == ["finance/q3", "payroll/x"]
    assert shown["diff"].startswith("--- wide (current)\n")


def test_write_makes_a_file_that_loads_back_and_applies(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "wide.suggested.yaml"
    code, output = run(home, "wide", "--write", str(out), "--json")
    assert code == 0, output
    shown = json.loads(output)
    assert shown["written"] == str(out)
    assert out.read_text().startswith("# suggested by 'zerolane playbook suggest wide' from 2 ")
    loaded = load_playbook_file(out)
    assert loaded == parse_playbook(shown["suggested"], "json")
    code, output = run(home, "wide", "--write", str(out))
    assert code == 0, output
    assert f"Wrote {out}: review it, then 'zerolane playbook apply' it." in output
    applied = runner.invoke(app, ["playbook", "apply", str(out), "--home", str(home)])
    assert applied.exit_code == 0, applied.output
    assert "Applied playbook wide version 2" in applied.output
    code, output = run(home, "wide")  # the same tasks against the narrowed version
    assert code == 0, output
    assert "no change suggested" in output
    assert "Unused grants" not in output
    assert "+++" not in output


def test_write_takes_only_a_yaml_file(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "wide.txt"
    code, output = run(home, "wide", "--write", str(out))
    assert code == 2
    assert "error playbook.file:" in output
    assert "--write takes a .yaml or .yml file" in output
    assert not out.exists()


def test_no_task_in_the_window_says_there_is_no_evidence(home: Path) -> None:
    code, output = run(home, "wide", "--since", "10m")
    assert code == 2
    assert "error playbook.no_evidence: no task was opened from playbook 'wide'" in output
    assert "Traceback" not in output
    code, output = run(home, "wide", "--since", "10m", "--json")
    assert code == 2
    assert json.loads(output)["reason"] == "playbook.no_evidence"


def test_an_unknown_playbook_is_refused(home: Path) -> None:
    code, output = run(home, "nope")
    assert code == 2
    assert "error playbook.unknown: no playbook 'nope' is registered" in output


@pytest.mark.parametrize("since", ["yesterday", "0", "-1h", "400d"])
def test_a_bad_since_is_a_usage_error(home: Path, since: str) -> None:
    code, output = run(home, "wide", "--since", since)
    assert code == 2
    assert "Traceback" not in output
    assert "duration" in output or "longer than" in output


def test_headroom_and_kept_patterns(home: Path) -> None:
    code, output = run(home, "wide", "--headroom", "100", "--keep-patterns", "--json")
    assert code == 0, output
    shown = json.loads(output)
    assert (shown["headroom_percent"], shown["narrow_resources"]) == (100, False)
    assert shown["suggested"]["max_calls"] == 6
    assert shown["suggested"]["max_ttl"] == 600
    assert shown["suggested"]["resources"] == ["finance/*", "wiki/**"]
    code, output = run(home, "wide", "--headroom", "100")
    assert "max_calls and max_ttl include 100% headroom." in output
    code, output = run(home, "wide", "--headroom", "-1")
    assert code == 2


def test_the_notes_on_uncertain_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task that ran out its window, one gone from the task store, a use the current
    version no longer grants, and more denied requests than are listed."""
    path, world = _home(tmp_path)
    agent = world.agent(AGENT)
    task = world.open(agent, playbook="wide", ttl=60)  # never completed: it runs out
    assert world.ask(agent, task.token, "delete", "finance/q1").allowed
    for name in ("a", "b", "c"):
        assert not world.ask(agent, task.token, "read", f"payroll/{name}").allowed
    actor = Actor("workload", AGENT)
    audit = world.deployment.audit
    audit.record(
        "task.opened",
        actor=actor,
        subject="gone",
        outcome=Outcome.SUCCESS,
        details={"playbook": "wide", "playbook_version": 1},
    )
    facts = {"action": "read", "resource": "finance/q3", "destination": FINANCE}
    audit.record(
        "decision",
        actor=actor,
        subject="gone",
        outcome=Outcome.SUCCESS,
        details={"decision": "allow", **facts, "sensitivity": "internal"},
    )
    narrower = parse_playbook({**WIDE_DOC, "actions": ["read", "write"]}, "tests")
    world.deployment.playbooks.apply(narrower, ADMIN)
    world.deployment.close()
    monkeypatch.setattr(playbook_cli, "SHOWN_REFUSED", 1)
    monkeypatch.setattr(suggest_module, "MAX_REFUSED", 2)
    code, output = run(path, "wide")
    assert code == 0, output
    assert "1 task(s) ran until their window closed" in output
    assert "1 task(s) are no longer in the task store" in output
    assert "Allowed under an earlier version, not granted now (not added back):" in output
    assert "  action delete" in output
    assert "... and 1 more kinds of denied request (--json lists them)" in output
    assert "... and 1 denied requests of kinds beyond those" in output


def test_grant_brokers_and_no_denied_request(tmp_path: Path) -> None:
    path, world = _home(tmp_path)
    doc = {**WIDE_DOC, "grants": {"hmac": None, "static": {}}}
    world.deployment.playbooks.apply(parse_playbook(doc, "tests"), ADMIN)
    agent = world.agent(AGENT)
    task = world.open(agent, playbook="wide")
    assert world.ask(agent, task.token).allowed
    world.deployment.audit.record(
        "grant.issue",
        actor=Actor("workload", AGENT),
        subject="lease",
        outcome=Outcome.SUCCESS,
        details={"task_id": task.task.task_id, "broker": "hmac", "handle": "h", "expires_at": 1},
    )
    world.deployment.close()
    code, output = run(path, "wide")
    assert code == 0, output
    rows = {tuple(c.strip() for c in line.split("│")[1:-1]) for line in output.splitlines()}
    assert ("grant", "hmac", "yes", "hmac") in rows
    assert ("grant", "static", "unused", "-") in rows
    assert "  grant static" in output
    assert "Denied requests" not in output
    assert "\n-  static: {}\n" in output
