"""``zerolane up`` with ``[[gateways]]``: the API, an HTTP gateway and an MCP gateway in
one real process over one home; all start or none does; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
import uvicorn
from typer.testing import CliRunner

from zerolane.audit.events import Actor
from zerolane.cli.background import free_port
from zerolane.cli.main import app
from zerolane.cli.servers import ServerGroup
from zerolane.errors import Unavailable
from zerolane.sdk import Agent
from zerolane.server.deployment import init_home
from zerolane.tasks.playbooks import load_playbook_file

EXAMPLES = Path(__file__).parents[2] / "examples"
TD = "demo.zerolane.dev"
AGENT = f"spiffe://{TD}/agents/report-writer"
ADMIN = Actor("admin", "up-tests")
PID_FILE = Path("run") / "zerolane.pid"
UP = [sys.executable, "-m", "zerolane", "up"]


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def _http_gateway_toml(home: Path, tool_port: int, gateway_port: int) -> None:
    """examples/gateway/gateway.toml on test ports, in the home, its secrets beside it."""
    text = (EXAMPLES / "gateway" / "gateway.toml").read_text()
    text = text.replace("127.0.0.1:9100", f"127.0.0.1:{tool_port}")
    text = text.replace("127.0.0.1:8800", f"127.0.0.1:{gateway_port}")
    text = text.replace("port = 8800", f"port = {gateway_port}")
    folder = home / "gateways"
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / "tools.toml").write_text(text)


def _write_secrets(home: Path) -> None:
    """The credentials the HTTP gateway injects (the tool API writes them when it runs)."""
    secrets = home / "gateways" / "secrets"
    secrets.mkdir(mode=0o700, parents=True)
    for name, value in (("finance.key", b"f" * 64), ("wiki.token", b"wiki-token")):
        (secrets / name).write_bytes(value)
        (secrets / name).chmod(0o600)


def _mcp_gateway_toml(home: Path, port: int, api: str) -> None:
    doc = {
        "public_url": f"http://127.0.0.1:{port}",
        "authorization_servers": [api],
        "listen": {"host": "127.0.0.1", "port": port},
        "servers": [
            {
                "name": "reports",
                "command": sys.executable,
                "args": [str(EXAMPLES / "mcp" / "sample_server.py")],
                "destination": f"reports.{TD}",
            }
        ],
    }
    (home / "gateways" / "reports.toml").write_text(tomli_w.dumps(doc))


def _add_gateways(home: Path, text: str) -> None:
    with (home / "zerolane.toml").open("a") as config:
        config.write("\n" + text)


def _home(tmp_path: Path) -> tuple[Path, str]:
    """A home with the agent and the quarterly-report playbook; and a join token."""
    home = tmp_path / "home"
    deployment, _ = init_home(home, TD)
    try:
        deployment.registry.register(AGENT, selectors=[], owner="reports", actor=ADMIN)
        playbook = load_playbook_file(EXAMPLES / "playbooks" / "quarterly-report.yaml")
        deployment.playbooks.apply(playbook, ADMIN)
        return home, deployment.join_tokens.create(AGENT, ttl=300, actor=ADMIN).token
    finally:
        deployment.close()


def _up(home: Path, api_port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*UP, "--home", str(home), "--port", str(api_port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _wait_up(process: subprocess.Popen[str], home: Path) -> None:
    """Until ``up`` wrote its pid file: it does so once every server has started."""
    deadline = time.monotonic() + 30
    while not (home / PID_FILE).exists():
        if process.poll() is not None:
            raise AssertionError(f"up exited {process.returncode}: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"zerolane up did not start: {process.communicate()[1]}")
        time.sleep(0.05)


def _terminate(process: subprocess.Popen[str]) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


@pytest.fixture
def tool_api(tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
    """(home, join token, port of the sample tool API, whose secrets are in the home)."""
    home, join = _home(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "gateway" / "tool_api.py"),
            "--port",
            str(port),
            "--secrets",
            str(home / "gateways" / "secrets"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while _refused(f"http://127.0.0.1:{port}/finance/reports/q3"):
            assert process.poll() is None, "the tool API exited"
            assert time.monotonic() < deadline, "the tool API did not start"
            time.sleep(0.05)
        yield home, join, port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.e2e
def test_up_serves_the_api_and_the_configured_gateways(tool_api: tuple[Path, str, int]) -> None:
    home, join, tool_port = tool_api
    api_port, http_port, mcp_port = free_port(), free_port(), free_port()
    api, gateway, mcp = (f"http://127.0.0.1:{p}" for p in (api_port, http_port, mcp_port))
    _http_gateway_toml(home, tool_port, http_port)
    _mcp_gateway_toml(home, mcp_port, api)
    _add_gateways(
        home,
        '[[gateways]]\nkind = "http"\nconfig = "gateways/tools.toml"\n\n'
        '[[gateways]]\nkind = "mcp"\nname = "reports"\n'
        f'config = "{home / "gateways" / "reports.toml"}"\n\n'
        # a disabled entry is never read: its file does not even exist
        '[[gateways]]\nkind = "http"\nname = "off"\nconfig = "nowhere.toml"\nenabled = false\n',
    )
    process = _up(home, api_port)
    try:
        _wait_up(process, home)
        assert (home / PID_FILE).read_text().strip() == str(process.pid)
        assert httpx.get(f"{api}/healthz").status_code == 200
        health = httpx.get(f"{mcp}/healthz").json()
        assert health["upstreams_with_tools"] == ["reports"]

        with (
            Agent.attest(api, join_token=join) as agent,
            agent.task(
                playbook="quarterly-report", intent="Compile the Q3 report", audience=[gateway]
            ) as task,
        ):
            report = task.request("GET", f"{gateway}/finance/reports/q3")
            assert report.status_code == 200, report.text
            # the tool API saw the per-task key the gateway injected
            assert report.json()["served_to_task"] == task.task_id
            unmapped = task.request("GET", f"{gateway}/finance/salaries")
            assert unmapped.status_code == 403
            assert unmapped.json()["reason"] == "route.unmapped"
            deleted = task.request("DELETE", f"{gateway}/finance/reports/q3")
            assert deleted.status_code == 403
            assert deleted.json()["reason"] == "scope.action"
        bare = httpx.get(f"{gateway}/finance/reports/q3")
        assert bare.status_code == 401
        anonymous = httpx.post(f"{mcp}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert anonymous.status_code == 401
        assert "resource_metadata" in anonymous.headers["www-authenticate"]
    finally:
        code, stderr = _terminate(process)
    assert code == 0, stderr
    assert f"zerolane control plane on {api}" in stderr
    assert f'zerolane http gateway "tools" on {gateway} (public {gateway})' in stderr
    assert f'zerolane mcp gateway "reports" on {mcp}/mcp (public {mcp}/mcp)' in stderr
    assert '"off"' not in stderr
    # one access line per request, named after its listener; the MCP upstreams counted
    tid = task.task_id
    assert f'gateway:tools "GET /finance/reports/q3" 200 allow task={tid} reason=-' in stderr
    assert f'"DELETE /finance/reports/q3" 403 deny task={tid} reason=scope.action' in stderr
    assert 'gateway:tools "GET /finance/reports/q3" 401 deny task=- reason=auth.missing' in stderr
    assert 'mcp-gateway:reports "POST /mcp" 401 deny task=- reason=auth.missing' in stderr
    assert 'api "GET /healthz" 200 none task=- reason=-' in stderr
    assert "1 of 1 upstream server(s) serving (reports)" in stderr
    assert not (home / PID_FILE).exists()
    assert all(_refused(f"{url}/healthz") for url in (api, gateway, mcp))


#: an MCP gateway config with a typo (``listen_port``)
TYPO = """
public_url = "http://127.0.0.1:1"
authorization_servers = ["http://127.0.0.1:2"]
listen_port = 9

[[servers]]
name = "reports"
url = "http://127.0.0.1:3/mcp"
destination = "reports.internal"
"""


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            '[[gateways]]\nkind = "http"\nconfig = "gateways/missing.toml"\n',
            [
                'error config.gateway_file: gateways[0] (http gateway "missing"): no gateway '
                "configuration file at",
                "/gateways/missing.toml",
            ],
        ),
        (
            # the first gateway is fine, and still nothing starts
            '[[gateways]]\nkind = "http"\nconfig = "gateways/tools.toml"\n'
            '[[gateways]]\nkind = "mcp"\nconfig = "gateways/typo.toml"\n',
            ['error config.unknown_key: gateways[1] (mcp gateway "typo"):', "listen_port"],
        ),
    ],
    ids=["missing-file", "invalid-gateway-file"],
)
def test_a_bad_gateway_entry_exits_2_before_anything_serves(
    tmp_path: Path, entry: str, expected: list[str]
) -> None:
    home, _ = _home(tmp_path)
    _http_gateway_toml(home, free_port(), free_port())
    _write_secrets(home)
    (home / "gateways" / "typo.toml").write_text(TYPO)
    _add_gateways(home, entry)
    api_port = free_port()
    result = subprocess.run(
        [*UP, "--home", str(home), "--port", str(api_port)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    assert result.returncode == 2, result.stderr
    for text in expected:
        assert text in result.stderr
    assert "control plane on" not in result.stderr
    assert not (home / PID_FILE).exists()


@pytest.mark.e2e
def test_a_gateway_port_in_use_stops_up_and_no_gateways_serves_the_api(tmp_path: Path) -> None:
    home, _ = _home(tmp_path)
    _write_secrets(home)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        gateway_port = taken.getsockname()[1]
        _http_gateway_toml(home, free_port(), gateway_port)
        _add_gateways(home, '[[gateways]]\nkind = "http"\nconfig = "gateways/tools.toml"\n')
        api_port = free_port()
        failed = _up(home, api_port)
        _, stderr = failed.communicate(timeout=60)
        assert failed.returncode == 1, stderr
        assert "listen.failed" in stderr
        assert 'gateways[0] (http gateway "tools"): cannot listen on' in stderr
        assert "nothing is serving" in stderr
        assert "control plane on" not in stderr
        assert not (home / PID_FILE).exists()

        only_api = _up(home, api_port, "--no-gateways")
        try:
            _wait_up(only_api, home)
            assert httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200
        finally:
            code, stderr = _terminate(only_api)
    assert code == 0, stderr
    assert "--no-gateways: 1 configured gateway(s) not started" in stderr
    assert "http gateway" not in stderr
    assert not (home / PID_FILE).exists()


def test_a_second_up_on_a_served_home_is_refused_and_a_stale_pid_file_is_not(
    tmp_path: Path,
) -> None:
    home, _ = _home(tmp_path)
    first = _up(home, free_port(), "--no-gateways")
    try:
        _wait_up(first, home)
        second = _up(home, free_port(), "--no-gateways")
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 2, stderr
        assert f"server.running: zerolane up (pid {first.pid}) already serves" in stderr
        assert (home / PID_FILE).read_text().strip() == str(first.pid)  # left alone
    finally:
        code, stderr = _terminate(first)
    assert code == 0, stderr
    # the twin: a pid file left by a process that is gone does not stop the next up
    with subprocess.Popen(["true"]) as gone:
        gone.wait()
    (home / PID_FILE).parent.mkdir(exist_ok=True)
    (home / PID_FILE).write_text(f"{gone.pid}\n")
    again = _up(home, free_port(), "--no-gateways")
    try:
        _wait_up_as(again, home)
    finally:
        code, stderr = _terminate(again)
    assert code == 0, stderr


def _wait_up_as(process: subprocess.Popen[str], home: Path) -> None:
    """Until the pid file names ``process`` (a stale one may be there before)."""
    deadline = time.monotonic() + 30
    while not (
        (home / PID_FILE).exists() and (home / PID_FILE).read_text().strip() == str(process.pid)
    ):
        if process.poll() is not None:
            raise AssertionError(f"up exited {process.returncode}: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"zerolane up did not start: {process.communicate()[1]}")
        time.sleep(0.05)


def test_up_help_names_the_gateway_options() -> None:
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "--no-gateways" in result.output
    assert "[[gateways]]" in result.output
    assert "[default: server.port, 8700]" in result.output


# the server group on its own, in this process


def _app(startup: Callable[[], None] = lambda: None) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        startup()
        yield

    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", ok)], lifespan=lifespan)


def _config(app: Any, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on")


def test_one_server_failing_to_start_stops_the_others() -> None:
    def broken() -> None:
        raise RuntimeError("upstream unreachable")

    ports = [free_port(), free_port()]
    group = ServerGroup()
    group.add("good", _config(_app(), ports[0]))
    group.add("broken", _config(_app(broken), ports[1]))
    group.bind()
    with pytest.raises(Unavailable) as info:
        group.start(threading.Event())
    assert info.value.reason == "server.start"
    assert info.value.message.startswith("broken failed to start")
    assert all(_refused(f"http://127.0.0.1:{port}/") for port in ports)


def test_a_taken_port_binds_nothing() -> None:
    port = free_port()
    group = ServerGroup()
    group.add("first", _config(_app(), port))
    group.add("second", _config(_app(), port))
    with pytest.raises(Unavailable) as info:
        group.bind()
    assert info.value.reason == "listen.failed"
    assert info.value.message.startswith(f"second: cannot listen on http://127.0.0.1:{port}")
    with socket.create_server(("127.0.0.1", port)):  # the first socket was closed again
        pass


def test_the_group_serves_until_stopped() -> None:
    port = free_port()
    group = ServerGroup()
    group.add("only", _config(_app(), port))
    group.bind()
    stop = threading.Event()
    assert group.start(stop)
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"
    waiter = threading.Thread(target=group.wait, args=(stop,))
    waiter.start()
    stop.set()
    waiter.join(5)
    group.stop()
    assert _refused(f"http://127.0.0.1:{port}/")


def test_the_control_plane_believes_no_forwarded_for_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: uvicorn's proxy-header middleware (on by default, trusting loopback or
    FORWARDED_ALLOW_IPS) would rewrite the peer address from ``X-Forwarded-For``, so a
    caller on loopback claiming to be a ``[tls] trusted_proxies`` address would have its
    own client-certificate header believed: a stolen certificate-bound token, or a
    workload's public certificate, used without its key. The peer is the TCP peer."""
    import zerolane.cli.serve as serve

    home, _ = _home(tmp_path)
    configs: list[uvicorn.Config] = []

    class Group:
        def add(self, _label: str, config: uvicorn.Config) -> None:
            configs.append(config)

        def stop(self) -> None:
            pass

    monkeypatch.setattr(serve, "ServerGroup", Group)
    monkeypatch.setattr(serve, "_serve", lambda *_: None)
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    result = CliRunner().invoke(app, ["up", "--home", str(home), "--no-gateways"])
    assert result.exit_code == 0, result.output
    (config,) = configs
    assert config.proxy_headers is False
