"""``zerolane policy check|test|reload|schema upgrade`` through a small app that adds the
sub-app (and ``zerolane`` itself, for the upgrade a ``zerolane status`` asks for)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from zerolane.cli import policy
from zerolane.cli.policy import POLICIES
from zerolane.policy.defaults import install_defaults

runner = CliRunner()
app = typer.Typer()
app.add_typer(policy.app, name="policy")

BAD = (
    '@id("bad")\nforbid (principal, action == Zerolane::Action::"request", resource)\n'
    "when { context.task.state > 1 };\n"
)
NO_ID = "permit (principal, action, resource);\n"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "home" / "policies"
    install_defaults(folder)
    return folder


def test_check_valid(policies: Path) -> None:
    result = runner.invoke(app, ["policy", "check", str(policies)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 19 policies in 2 files valid")
    assert len(result.output.strip().splitlines()) == 1


def test_check_invalid_lists_each_error(policies: Path) -> None:
    (policies / "zz.cedar").write_text(BAD + NO_ID)
    (policies / "yy.cedar").write_text("permit (principal")
    result = runner.invoke(app, ["policy", "check", str(policies)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("error policy.invalid: yy.cedar:1:1: syntax error")
    assert lines[1].startswith("error policy.invalid: zz.cedar:1:1: [bad] ")
    assert "zz.cedar:4:1: a policy has no @id" in lines[2]


def test_check_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "check", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "policy.no_directory" in result.stderr


def test_test_shipped_cases(policies: Path) -> None:
    result = runner.invoke(app, ["policy", "test", str(policies)])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output
    # a single file finds its policies in a parent folder
    single = runner.invoke(app, ["policy", "test", str(policies / "tests" / "default_test.yaml")])
    assert single.exit_code == 0, single.output


def test_test_failing_case_exits_1(policies: Path, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n  - name: deny expected\n    open: {}\n    expect: deny\n"
        "  - name: fine\n    open: {}\n    expect: allow\n"
    )
    result = runner.invoke(app, ["policy", "test", str(cases), "--policies", str(policies)])
    assert result.exit_code == 1
    assert "1 passed, 1 failed" in result.output
    assert "FAIL" in result.stderr
    assert "cases[0] deny expected: expected deny, got allow" in result.stderr


def test_test_invalid_input_exits_2(policies: Path, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases: [{name: x}]")
    result = runner.invoke(app, ["policy", "test", str(cases), "--policies", str(policies)])
    assert result.exit_code == 2
    assert "policy_test.invalid" in result.stderr
    (policies / "zz.cedar").write_text(BAD)
    broken = runner.invoke(app, ["policy", "test", str(policies)])
    assert broken.exit_code == 2
    assert "policy.invalid" in broken.stderr
    orphan = runner.invoke(app, ["policy", "test", str(cases)])
    assert orphan.exit_code == 2
    assert "policy_test.no_policies" in orphan.stderr


def test_reload_refuses_invalid_policies(policies: Path) -> None:
    home = policies.parent
    (policies / "zz.cedar").write_text(NO_ID)
    result = runner.invoke(app, ["policy", "reload", "--home", str(home)])
    assert result.exit_code == 2
    assert "policy.missing_id" in result.stderr


def test_reload_without_server(policies: Path) -> None:
    home = policies.parent
    result = runner.invoke(app, ["policy", "reload", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "no running server, they load at next start" in result.output
    (home / "run").mkdir()
    (home / "run" / "zerolane.pid").write_text("not a pid\n")
    assert "next start" in runner.invoke(app, ["policy", "reload", "--home", str(home)]).output


HUP_WAITER = """
import signal, sys, time
def hup(*_):
    open(sys.argv[1], "w").write("reloaded")
    sys.exit(0)
signal.signal(signal.SIGHUP, hup)
print("ready", flush=True)
time.sleep(30)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    marker = tmp_path / "hup"
    proc = subprocess.Popen(
        [sys.executable, "-c", HUP_WAITER, str(marker)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc, marker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_reload_signals_the_running_server(
    policies: Path, server: tuple[subprocess.Popen[str], Path]
) -> None:
    proc, marker = server
    home = policies.parent
    (home / "run").mkdir()
    (home / "run" / "zerolane.pid").write_text(f"{proc.pid}\n")
    result = runner.invoke(app, ["policy", "reload", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert f"sent SIGHUP to the server (pid {proc.pid})" in result.output
    assert proc.wait(timeout=10) == 0
    assert marker.read_text() == "reloaded"


def test_reload_with_a_dead_pid(policies: Path) -> None:
    home = policies.parent
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    (home / "run").mkdir()
    (home / "run" / "zerolane.pid").write_text(f"{finished.pid}\n")
    result = runner.invoke(app, ["policy", "reload", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "next start" in result.output


def test_schema_upgrade_of_a_home_whose_schema_lacks_risk(tmp_path: Path) -> None:
    """``zerolane status`` says what to run; ``zerolane policy schema upgrade`` replaces
    an earlier shipped schema (kept beside), and refuses an edited one unless forced."""
    from tests.policy.test_schema_upgrade import EARLIER
    from zerolane.cli.main import app as zerolane
    from zerolane.policy.loader import SHIPPED_SCHEMA
    from zerolane.policy.schema_upgrade import COMMAND
    from zerolane.server.deployment import init_home

    home = tmp_path / "home"
    init_home(home, "upgrade.example")[0].close()
    for earlier in EARLIER.iterdir():  # the folder an earlier zerolane init wrote
        shutil.copyfile(earlier, home / POLICIES / earlier.name)
    schema = home / POLICIES / "schema.cedarschema"
    status = runner.invoke(zerolane, ["status", "--home", str(home), "--json"])
    advice = json.loads(status.stdout)["policy_schema"]
    assert COMMAND in advice
    assert "policy.error" in advice
    assert f"WARNING {schema}" in runner.invoke(zerolane, ["status", "--home", str(home)]).stderr
    old = schema.read_bytes()
    upgraded = runner.invoke(zerolane, ["policy", "schema", "upgrade", "--home", str(home)])
    assert upgraded.exit_code == 0, upgraded.output
    assert "is now the shipped schema" in upgraded.stdout
    (backup,) = schema.parent.glob("schema.cedarschema.bak-*")
    assert backup.read_bytes() == old
    assert schema.read_bytes() == SHIPPED_SCHEMA.read_bytes()
    status = runner.invoke(zerolane, ["status", "--home", str(home), "--json"])
    assert json.loads(status.stdout)["policy_schema"] is None
    again = runner.invoke(zerolane, ["policy", "schema", "upgrade", "--home", str(home)])
    assert (again.exit_code, again.stdout.strip()) == (
        0,
        f"ok: {schema} is already the shipped schema",
    )
    # an edited schema: refused, untouched, unless forced
    schema.write_bytes(b"// ours\n" + old)
    refused = runner.invoke(zerolane, ["policy", "schema", "upgrade", "--home", str(home)])
    assert refused.exit_code == 2
    assert "error policy.schema_edited" in refused.stderr
    assert schema.read_bytes() == b"// ours\n" + old
    forced = runner.invoke(
        zerolane, ["policy", "schema", "upgrade", "--home", str(home), "--force", "--json"]
    )
    assert forced.exit_code == 0, forced.output
    answer = json.loads(forced.stdout)
    assert (answer["was"], answer["upgraded"]) == ("edited", True)
    assert Path(answer["backup"]).read_bytes() == b"// ours\n" + old


def test_schema_upgrade_of_an_unreadable_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / POLICIES).mkdir(parents=True)
    (home / POLICIES / "schema.cedarschema").mkdir()  # not a file: cannot be read
    result = runner.invoke(app, ["policy", "schema", "upgrade", "--home", str(home)])
    assert result.exit_code == 2
    assert "policy.path" in result.stderr
