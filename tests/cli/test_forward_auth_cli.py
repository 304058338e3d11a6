"""``zerolane forward-auth run`` through a small app that adds the sub-app.

The real server is started by ``tests/gateway/test_forward_auth_nginx.py``; here
uvicorn and signal handlers are replaced so the command runs in the test process.
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any, cast

import pytest
import typer
import uvicorn
from starlette.testclient import TestClient
from starlette.types import ASGIApp
from typer.testing import CliRunner

from zerolane.cli import forward_auth, servers
from zerolane.server.deployment import init_home

runner = CliRunner()
app = typer.Typer()
app.add_typer(forward_auth.app, name="forward-auth")
CONFIG = """
public_url = "https://api.example.org"
destination = "reports-api"
port = 9123

[[routes]]
method = "GET"
path = "/reports/{name}"
action = "read"
resource = "reports/{name}"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    deployment, _ = init_home(tmp_path / "home", "example.org")
    deployment.close()
    return tmp_path / "home"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what would be served (probing the app) instead of serving it: the address
    asked for is recorded and a free loopback port bound in its place; signal handlers
    are not set."""
    calls: list[dict[str, Any]] = []
    asked: dict[int, int] = {}
    monkeypatch.setattr(signal, "signal", lambda *_: None)

    def listen(label: str, host: str, port: int) -> socket.socket:
        sock = servers.bind("127.0.0.1", 0)
        asked[sock.fileno()] = port
        return sock

    def run(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        config = server.config
        options: dict[str, Any] = {"host": config.host, "port": config.port}
        options["proxy_headers"] = config.proxy_headers
        with TestClient(cast(ASGIApp, config.app)) as client:
            options["healthz"] = client.get("/healthz").status_code
            options["unmapped"] = client.get("/forward-auth").status_code
        calls.append(options)

    monkeypatch.setattr(forward_auth, "listen", listen)
    monkeypatch.setattr(forward_auth, "bound_port", lambda sock: asked[sock.fileno()])
    monkeypatch.setattr(uvicorn.Server, "run", run)
    return calls


def test_run_serves_the_configured_endpoint(
    tmp_path: Path, home: Path, served: list[dict[str, Any]]
) -> None:
    config = tmp_path / "fa.toml"
    config.write_text(CONFIG)
    result = runner.invoke(
        app, ["forward-auth", "run", "--config", str(config), "--home", str(home)]
    )
    assert result.exit_code == 0, result.output
    assert "forward-auth (nginx) on http://127.0.0.1:9123/forward-auth" in result.output
    assert "for https://api.example.org (task tokens for https://api.example.org)" in result.output
    assert "warning" not in result.output
    [call] = served
    assert (call["host"], call["port"], call["healthz"]) == ("127.0.0.1", 9123, 200)
    assert call["unmapped"] == 403  # nginx headers missing: refused


def test_run_warns_when_not_on_loopback(
    tmp_path: Path, home: Path, served: list[dict[str, Any]]
) -> None:
    config = tmp_path / "fa.toml"
    config.write_text(CONFIG)
    args = ["forward-auth", "run", "--config", str(config), "--home", str(home)]
    result = runner.invoke(app, [*args, "--host", "10.1.2.3", "--port", "9999"])
    assert result.exit_code == 0, result.output
    assert "make sure only the proxy can reach it" in result.output
    assert (served[0]["host"], served[0]["port"]) == ("10.1.2.3", 9999)
    assert runner.invoke(app, [*args, "--host", "localhost"]).exit_code == 0


def test_a_bad_config_exits_2(tmp_path: Path, home: Path, served: list[dict[str, Any]]) -> None:
    config = tmp_path / "fa.toml"
    config.write_text('proxy = "haproxy"\n' + CONFIG)
    result = runner.invoke(
        app, ["forward-auth", "run", "--config", str(config), "--home", str(home)]
    )
    assert result.exit_code == 2
    assert "error config.proxy: " in result.output
    assert served == []


def test_help_lists_run() -> None:
    result = runner.invoke(app, ["forward-auth", "--help"])
    assert result.exit_code == 0
    assert "run" in result.output


def test_check_accepts_a_valid_config_and_refuses_a_bad_one(tmp_path: Path) -> None:
    config = tmp_path / "fa.toml"
    config.write_text(CONFIG)
    result = runner.invoke(app, ["forward-auth", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "forward-auth config OK: nginx asks http://127.0.0.1:9123/forward-auth" in result.output
    assert "GET /reports/{name} -> read reports/{name}" in result.output
    as_json = runner.invoke(app, ["forward-auth", "check", "--config", str(config), "--json"])
    data = json.loads(as_json.output)
    assert (data["ok"], data["destination"], len(data["routes"])) == (True, "reports-api", 1)
    config.write_text('proxy = "haproxy"\n' + CONFIG)
    refused = runner.invoke(app, ["forward-auth", "check", "--config", str(config)])
    assert refused.exit_code == 2
    assert "error config.proxy: " in refused.output


def test_check_says_which_audience_tokens_must_name(tmp_path: Path) -> None:
    """No audience: public_url's origin, with no warning (the safe default); a configured
    one is printed instead; a trust domain (which every task token names) exits 2."""
    config = tmp_path / "fa.toml"
    config.write_text(CONFIG)
    result = runner.invoke(app, ["forward-auth", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "task tokens for https://api.example.org)" in result.output
    assert "warning" not in result.output
    as_json = runner.invoke(app, ["forward-auth", "check", "--config", str(config), "--json"])
    assert json.loads(as_json.output)["audience"] == "https://api.example.org"
    config.write_text('audience = "urn:example:reports"\n' + CONFIG)
    named = runner.invoke(app, ["forward-auth", "check", "--config", str(config)])
    assert named.exit_code == 0, named.output
    assert "task tokens for urn:example:reports)" in named.output
    config.write_text('audience = "spiffe://example.org"\n' + CONFIG)
    refused = runner.invoke(app, ["forward-auth", "check", "--config", str(config)])
    assert refused.exit_code == 2
    assert "error config.audience: " in refused.output
    assert "is a trust domain" in refused.output


def test_check_shows_each_routes_mode(tmp_path: Path) -> None:
    config = tmp_path / "fa.toml"
    # the GET route in shadow, a PUT route enforced
    put = '[[routes]]\nmethod = "PUT"\npath = "/reports/{name}"\naction = "read"\n'
    config.write_text(CONFIG + 'mode = "shadow"\n' + put + 'resource = "reports/{name}"\n')
    result = runner.invoke(app, ["forward-auth", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "GET /reports/{name} -> read reports/{name}  (shadow: " in result.output
    assert "PUT /reports/{name} -> read reports/{name}\n" in result.output
    as_json = runner.invoke(app, ["forward-auth", "check", "--config", str(config), "--json"])
    modes = [r["mode"] for r in json.loads(as_json.output)["routes"]]
    assert modes == ["shadow", "enforce"]
