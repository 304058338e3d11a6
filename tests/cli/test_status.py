"""``zerolane status``: the health of the ``zerolane up`` serving a home."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.cli.test_serve import _Served
from zerolane.cli.background import free_port
from zerolane.cli.main import app
from zerolane.cli.pidfile import PID_FILE, write_listeners, write_own
from zerolane.server.deployment import init_home

runner = CliRunner()


def _status(home: Path, *extra: str) -> Result:
    return runner.invoke(app, ["status", "--home", str(home), *extra])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    init_home(tmp_path / "home", "status.example")[0].close()
    return tmp_path / "home"


def test_a_home_nobody_serves_is_not_running(home: Path) -> None:
    result = _status(home)
    assert result.exit_code == 1
    assert "not running" in result.output
    data = json.loads(_status(home, "--json").output)
    assert (data["pid"], data["healthy"], data["servers"]) == (None, False, [])


def test_no_home_exits_2(tmp_path: Path) -> None:
    result = _status(tmp_path / "none")
    assert result.exit_code == 2
    assert "home.missing" in result.output


def test_a_server_that_does_not_answer_is_unhealthy(home: Path) -> None:
    """A live pid (this test's) whose recorded server is gone: exit 1 naming it."""
    write_own(home)
    try:
        write_listeners(home, {"the control plane": f"http://127.0.0.1:{free_port()}"})
        result = _status(home, "--timeout", "1")
        assert result.exit_code == 1
        assert f"UNHEALTHY: zerolane up (pid {os.getpid()})" in result.output
        assert "FAIL" in result.output
    finally:
        (home / PID_FILE).unlink()


def test_a_running_up_is_healthy_then_not_running(home: Path) -> None:
    up = _Served("up", "--home", str(home), "--port", "0", "--no-gateways")
    try:
        port = up.wait_for(r"control plane on http://127\.0\.0\.1:(\d+)").group(1)
        result = _status(home, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["healthy"] is True
        [server] = data["servers"]
        assert server["url"] == f"http://127.0.0.1:{port}"  # the port it got for 0
        assert _status(home).output.startswith("healthy: zerolane up (pid ")
    finally:
        assert up.stop() == 0
    assert _status(home).exit_code == 1


def test_an_outdated_schema_is_named_and_an_unreadable_one_is_left_to_the_servers(
    home: Path,
) -> None:
    from tests.policy.test_schema_upgrade import EARLIER

    schema = home / "policies" / "schema.cedarschema"
    schema.write_bytes((EARLIER / "schema.cedarschema").read_bytes())
    result = _status(home)
    assert result.exit_code == 1  # not running, as before
    assert "zerolane policy schema upgrade" in result.stderr
    schema.unlink()
    schema.mkdir()
    assert json.loads(_status(home, "--json").stdout)["policy_schema"] is None


def _in_shadow(home: Path) -> None:
    import dataclasses

    from zerolane.config import CONFIG_NAME, load_config, render_config

    config = dataclasses.replace(load_config(home), policy_mode="shadow")
    (home / CONFIG_NAME).write_text(render_config(config))


def test_a_policy_set_in_shadow_is_never_unnoticed(home: Path) -> None:
    """A home left with policy_mode = "shadow" refuses nothing its policies deny: status
    and up say so on stderr (status's exit code is about health alone)."""
    enforced = _status(home)
    assert "policy_mode" not in enforced.stderr  # the twin: an enforced home
    assert json.loads(_status(home, "--json").stdout)["policy_mode"] == "enforce"
    _in_shadow(home)
    shadowed = _status(home)
    assert shadowed.exit_code == 1  # not running, as before
    assert 'WARNING policy_mode = "shadow": what the policies deny is let through' in (
        shadowed.stderr
    )
    assert json.loads(_status(home, "--json").stdout)["policy_mode"] == "shadow"
    up = _Served("up", "--home", str(home), "--port", "0", "--no-gateways")
    try:
        up.wait_for(r"control plane on http://")
        up.wait_for(r'WARNING policy_mode = "shadow"')
    finally:
        assert up.stop() == 0
