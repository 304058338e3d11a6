"""``zerolane mcp-gateway run`` as a real process sharing a home with the control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import tomli_w
from typer.testing import CliRunner

from tests.gateway.mcp.conftest import ADMIN, AGENT, PLAYBOOK, TD, gateway_config
from tests.gateway.mcp.harness import HttpUpstream, calls, mcp_session
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.cli.mcp_gateway import app
from zerolane.sdk import Agent
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

RUN_APP = "from zerolane.cli.mcp_gateway import app; app(prog_name='zerolane mcp-gateway')"


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[tuple[str, str, Path, Path]]:
    """(control plane URL, gateway endpoint, home, stdio log) with the gateway running."""
    deployment, _ = init_home(tmp_path / "home", TD)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "test"), ADMIN)
    stdio_log = tmp_path / "stdio.jsonl"
    try:
        with BackgroundServer(deployment) as cp, HttpUpstream(tmp_path / "web.jsonl") as web:
            port = free_port()
            config = tmp_path / "gateway.toml"
            config.write_text(tomli_w.dumps(gateway_config(port, cp.url, web.url, stdio_log)))
            argv = ["run", "--config", str(config), "--home", str(tmp_path / "home")]
            process = subprocess.Popen(
                [sys.executable, "-c", RUN_APP, *argv],
                stderr=subprocess.PIPE,
                env={**os.environ, "NO_COLOR": "1"},
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_healthy(base, process)
                yield cp.url, f"{base}/mcp", tmp_path / "home", stdio_log
            finally:
                process.send_signal(signal.SIGTERM)
                _, err = process.communicate(timeout=20)
                assert process.returncode == 0, err.decode()
    finally:
        deployment.close()


def _wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the gateway did not become healthy")


def test_the_gateway_process_decides_against_the_shared_home(
    gateway_process: tuple[str, str, Path, Path],
) -> None:
    cp_url, endpoint, home, stdio_log = gateway_process

    async def main(agent: Agent) -> tuple[list[str], str]:
        details = [{"type": "zerolane_task", "actions": ["mcp:tools/read_report"]}]
        task = agent.open_task(
            playbook=PLAYBOOK["name"],
            intent="Read the Q3 report",
            authorization_details=details,
            audience=[endpoint],
        )
        async with mcp_session(endpoint, task) as session:
            names = sorted(tool.name for tool in (await session.list_tools()).tools)
            result = await session.call_tool("read_report", {"name": "q3"})
        task.complete()
        block = result.content[0]
        return names, getattr(block, "text", "")

    with Agent.attest(cp_url, join_token=_join_token(home)) as agent:
        names, text = anyio.run(main, agent)
    assert names == ["read_report"]
    assert "Q3 revenue" in text
    assert len(calls(stdio_log, "read_report")) == 1


def _join_token(home: Path) -> str:
    deployment = Deployment.open(home)
    try:
        return deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
    finally:
        deployment.close()


def test_a_bad_config_is_refused_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('public_url = "http://127.0.0.1:1"\nlisten_port = 9\n')
    init_home(tmp_path / "home", TD)[0].close()
    result = CliRunner().invoke(
        app, ["run", "--config", str(config), "--home", str(tmp_path / "home")]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "authorization_servers" in str(result.exception)
