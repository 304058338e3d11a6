"""``zerolane mcp-gateway run`` as a real process sharing a home with the control plane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import tomli_w
from typer.testing import CliRunner

from tests.gateway.mcp.broken_servers import MISSING_MODULE
from tests.gateway.mcp.conftest import ADMIN, AGENT, PLAYBOOK, TD, gateway_config
from tests.gateway.mcp.harness import SAMPLE, HttpUpstream, calls, mcp_session
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


def _config_with_broken_upstream(tmp_path: Path, *, broken: bool = True) -> Path:
    """The test gateway's config, its HTTP upstream replaced by a stdio server whose
    module fails to import (or, for the twin, a second copy of the sample server)."""
    doc = gateway_config(free_port(), "http://127.0.0.1:1", "http://unused", tmp_path / "s.jsonl")
    script = tmp_path / "broken_server.py"
    script.write_text(f"import {MISSING_MODULE}\n")
    second = [str(script)] if broken else [str(SAMPLE)]
    doc["servers"][1] = {
        "name": "broken",
        "command": sys.executable,
        "args": second,
        "destination": f"broken.{TD}",
        "prefix": "b_",
    }
    config = tmp_path / "gateway.toml"
    config.write_text(tomli_w.dumps(doc))
    return config


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_APP, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
        check=False,
    )


def test_check_fails_naming_an_upstream_that_cannot_start(tmp_path: Path) -> None:
    done = _cli("check", "--config", str(_config_with_broken_upstream(tmp_path)))
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("error mcp.upstream: 1 of 2 MCP upstream server(s) cannot start:")
    assert "upstream 'broken': the process exited before initializing" in line
    assert f"ModuleNotFoundError: No module named '{MISSING_MODULE}'" in line
    assert "Traceback" not in done.stderr + done.stdout
    missing = _config_with_broken_upstream(tmp_path)
    missing.write_text(missing.read_text().replace(sys.executable, str(tmp_path / "nope")))
    absent = _cli("check", "--config", str(missing))
    assert absent.returncode == 1
    assert "FileNotFoundError" in absent.stderr
    assert "Traceback" not in absent.stderr


def test_check_passes_when_every_upstream_starts(tmp_path: Path) -> None:
    done = _cli("check", "--config", str(_config_with_broken_upstream(tmp_path, broken=False)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "  tools: serving, 3 tool(s)",
        "  broken: serving, 3 tool(s)",
    ]
    as_json = _cli(
        "check", "--json", "--config", str(_config_with_broken_upstream(tmp_path, broken=False))
    )
    assert json.loads(as_json.stdout)["upstreams"][0] == {
        "name": "tools",
        "tools": ["read_report", "delete_report", "post_message"],
    }


def test_run_counts_only_serving_upstreams_in_json_log_lines(tmp_path: Path) -> None:
    init_home(tmp_path / "home", TD)[0].close()
    config = _config_with_broken_upstream(tmp_path)
    port = tomllib.loads(config.read_text())["listen"]["port"]
    argv = ["run", "--config", str(config), "--home", str(tmp_path / "home")]
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_APP, *argv, "--log-format", "json"],
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, process)
        assert httpx.post(f"{base}/mcp?access_token=leaked", json={}).status_code == 401
        time.sleep(1.8)  # the broken upstream is retried meanwhile (0.5 s, then 1 s)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    text = err.decode()
    assert process.returncode == 0, text
    assert "Traceback" not in text
    assert "leaked" not in text
    lines = text.splitlines()
    assert lines[0].startswith("zerolane MCP gateway on http://127.0.0.1:")
    assert "upstream server(s)" not in lines[0]  # counted once they started, below
    records = [json.loads(line) for line in lines[1:]]
    messages = [r["message"] for r in records]
    assert "1 of 2 upstream server(s) serving (tools); not serving: broken" in messages
    failures = [m for m in messages if m.startswith("MCP upstream broken is not serving")]
    assert len(failures) == 1  # once, though retried
    assert MISSING_MODULE in failures[0]
    access_lines = [r for r in records if r["logger"] == "zerolane.access"]
    assert {r["path"] for r in access_lines} == {"/healthz", "/mcp"}  # the polls, the POST
    (access,) = [r for r in access_lines if r["path"] == "/mcp"]
    assert {k: access[k] for k in ("listener", "method", "path", "status", "decision")} == {
        "listener": "mcp-gateway",
        "method": "POST",
        "path": "/mcp",
        "status": 401,
        "decision": "deny",
    }
    assert access["reason"] == "auth.missing"
