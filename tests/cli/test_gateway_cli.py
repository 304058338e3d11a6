"""``zerolane gateway check|run``, and the example tool API behind a real gateway process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.gateway.conftest import gateway_command, subprocess_env
from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.cli.gateway import app
from zerolane.sdk import Agent
from zerolane.server.deployment import init_home
from zerolane.tasks.playbooks import load_playbook_file

EXAMPLES = Path(__file__).parents[2] / "examples"
runner = CliRunner()
TD = "demo.zerolane.dev"
AGENT = f"spiffe://{TD}/agents/report-writer"


def _example(tmp_path: Path, tool_port: int = 9100, gateway_port: int = 8800) -> Path:
    """A copy of examples/gateway/gateway.toml on other ports, with its secrets."""
    text = (EXAMPLES / "gateway" / "gateway.toml").read_text()
    text = text.replace("127.0.0.1:9100", f"127.0.0.1:{tool_port}")
    text = text.replace("127.0.0.1:8800", f"127.0.0.1:{gateway_port}")
    text = text.replace("port = 8800", f"port = {gateway_port}")
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    for name, value in (("finance.key", b"f" * 64), ("wiki.token", b"wiki-token")):
        (secrets / name).write_bytes(value)
        (secrets / name).chmod(0o600)
    return config


def test_check_accepts_the_example(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--config", str(_example(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "gateway config OK" in result.output
    assert "/finance -> http://127.0.0.1:9100/finance" in result.output
    assert "3 routes, injects X-Api-Key" in result.output
    assert "2 routes, injects Authorization" in result.output


def test_check_refuses_with_the_reason_and_exit_2(tmp_path: Path) -> None:
    config = _example(tmp_path)
    config.write_text(config.read_text().replace("upstream_timeout", "upstream_timeuot"))
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert "config.unknown_key" in result.output
    assert "limits.upstream_timeuot" in result.output


def test_check_refuses_a_secret_readable_by_others(tmp_path: Path) -> None:
    config = _example(tmp_path)
    (tmp_path / "secrets" / "wiki.token").chmod(0o644)
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert "grant.file_mode" in result.output


def test_run_refuses_a_bad_config_or_home(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["run", "--config", str(tmp_path / "none.toml")])
    assert missing.exit_code == 2
    assert "config.file" in missing.output
    config = _example(tmp_path)
    no_home = runner.invoke(app, ["run", "--config", str(config), "--home", str(tmp_path / "h")])
    assert no_home.exit_code == 2
    assert "home.missing" in no_home.output


def test_run_refuses_unreadable_credentials(tmp_path: Path) -> None:
    init_home(tmp_path / "home", TD)[0].close()
    config = _example(tmp_path)
    (tmp_path / "secrets" / "finance.key").write_bytes(b"short")
    result = runner.invoke(app, ["run", "--config", str(config), "--home", str(tmp_path / "home")])
    assert result.exit_code == 2
    assert "grant.key_short" in result.output


class _Process:
    def __init__(self, command: list[str], ready_url: str) -> None:
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env()
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{command} exited: {self.process.communicate()[1]!r}")
            try:
                httpx.get(ready_url, timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"{command} did not start") from None
                time.sleep(0.1)

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err.decode()


@pytest.fixture
def tool_api(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    secrets = tmp_path / "secrets"
    tool = _Process(
        [
            sys.executable,
            str(EXAMPLES / "gateway" / "tool_api.py"),
            "--port",
            str(port),
            "--secrets",
            str(secrets),
        ],
        f"http://127.0.0.1:{port}/finance/reports/q3",
    )
    yield port
    tool.stop()


@pytest.mark.e2e
def test_the_example_end_to_end(tmp_path: Path, tool_api: int) -> None:
    gateway_port = free_port()
    text = (EXAMPLES / "gateway" / "gateway.toml").read_text()
    text = text.replace("127.0.0.1:9100", f"127.0.0.1:{tool_api}")
    text = text.replace("127.0.0.1:8800", f"127.0.0.1:{gateway_port}")
    config = tmp_path / "gateway.toml"
    config.write_text(text)  # the secrets are the ones the tool API wrote next to it
    assert (tmp_path / "secrets" / "finance.key").stat().st_mode & 0o777 == 0o600

    home = tmp_path / "home"
    deployment, _ = init_home(home, TD)
    admin = Actor("admin", "test")
    deployment.registry.register(AGENT, selectors=[], owner="reports", actor=admin)
    playbook = load_playbook_file(EXAMPLES / "playbooks" / "quarterly-report.yaml")
    deployment.playbooks.apply(playbook, admin)
    join = deployment.join_tokens.create(AGENT, ttl=300, actor=admin).token
    gateway = _Process(
        gateway_command(
            "run", "--config", str(config), "--home", str(home), "--port", str(gateway_port)
        ),
        f"http://127.0.0.1:{gateway_port}/healthz",
    )
    base = f"http://127.0.0.1:{gateway_port}"
    try:
        with (
            BackgroundServer(deployment) as control,
            Agent.attest(control.url, join_token=join) as agent,
            agent.task(
                playbook="quarterly-report", intent="Compile the Q3 report", audience=[base]
            ) as task,
        ):
            report = task.request("GET", f"{base}/finance/reports/q3")
            assert report.status_code == 200, report.text
            assert report.json()["served_to_task"] == task.task_id
            deleted = task.request("DELETE", f"{base}/finance/reports/q3")
            assert deleted.status_code == 403
            assert deleted.json()["reason"] == "scope.action"
            page = f"{base}/wiki/pages/finance/quarterly/q3"
            saved = task.request("PUT", page, content=b"# Q3\nRevenue 1.41M.\n")
            assert saved.status_code == 200, saved.text
            assert saved.json()["by_task"] == task.task_id
            assert task.request("GET", page).text.startswith("# Q3")
            ledger = task.request("GET", f"{base}/finance/ledger/2026/q3")
            assert ledger.status_code == 200, ledger.text
            # wiki.internal is outside this home's trust domain: after a confidential read
            # the egress rule refuses the next write there
            after = task.request("PUT", page, content=b"# Q3 with the ledger\n")
            assert after.json()["reason"] == "flow.egress_after_sensitive_read"
            direct = httpx.get(f"http://127.0.0.1:{tool_api}/finance/reports/q3")
            assert direct.status_code == 401  # the agent holds no credential of its own
    finally:
        code, stderr = gateway.stop()
        deployment.close()
    assert code == 0, stderr
    assert re.search(r"zerolane gateway on http://127\.0\.0\.1:\d+", stderr)
