"""A real stack for the gateway tests: an echo upstream process, a zerolane home with a
control plane, the gateway in front of the upstream, and an agent from the SDK.

The upstream (``echo_upstream.py``) runs as its own process and says what reached it;
the control plane and the gateway run in this process on loopback ports, each with its
own :class:`~zerolane.server.deployment.Deployment` over the same SQLite home (so their
DPoP replay caches are separate, as they would be in separate processes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.cli.gateway import BackgroundGateway, build_app
from zerolane.gateway.config import load_gateway_config
from zerolane.gateway.http import GatewayApp
from zerolane.sdk import Agent, Task
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

TD = "gw.zerolane.dev"
AGENT = f"spiffe://{TD}/agents/tool-user"
AUDIENCE = "urn:zerolane:gateway:test"
ADMIN = Actor("admin", "gateway-tests")
ECHO = Path(__file__).with_name("echo_upstream.py")
HMAC_KEY = b"k" * 40
WIKI_SECRET = "wiki-secret-value"
PLAYBOOK: dict[str, Any] = {
    "name": "tool-user",
    "description": "Read finance reports, upload to finance and edit wiki pages.",
    "actions": ["read", "write", "getDoc"],
    "resources": ["finance/**", "wiki/pages/*", "docs/**"],
    "destinations": ["finance-api.internal", "wiki.internal", "docs.internal"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 10000,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
OPENAPI = """{
  "openapi": "3.1.0",
  "info": {"title": "docs", "version": "1"},
  "paths": {
    "/docs/{name}": {
      "get": {"operationId": "getDoc", "x-zerolane-sensitivity": "public"},
      "delete": {"operationId": "deleteDoc"}
    },
    "/internal": {"get": {"summary": "no operationId: stays unmapped"}}
  }
}
"""


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def gateway_toml(
    folder: Path, upstream_port: int, gateway_port: int, *, limits: str = "", dead_port: int = 1
) -> Path:
    """A gateway config for the echo upstream: finance (HMAC key), wiki (static secret),
    docs (routes from OpenAPI) and an upstream nobody listens on."""
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "finance.key", HMAC_KEY + b"\n")
    write_private(folder / "wiki.secret", WIKI_SECRET.encode() + b"\n")
    (folder / "docs-openapi.json").write_text(OPENAPI)
    echo = f"http://127.0.0.1:{upstream_port}"
    text = f"""
public_url = "http://127.0.0.1:{gateway_port}"
audience = "{AUDIENCE}"
metrics = true

[listen]
host = "127.0.0.1"
port = {gateway_port}

[limits]
{limits}

[[upstreams]]
name = "finance"
base_url = "{echo}/fin"
prefix = "/finance"
destination = "finance-api.internal"
credential = {{ type = "hmac", key_file = "finance.key", header = "X-Api-Key" }}

[[upstreams.routes]]
method = "GET"
path = "/reports/{{id}}"
action = "read"
resource = "finance/reports/{{id}}"

[[upstreams.routes]]
method = "GET"
path = "/reports/payroll"
action = "read"
resource = "finance/reports/payroll"
sensitivity = "restricted"

[[upstreams.routes]]
method = "DELETE"
path = "/reports/{{id}}"
action = "delete"
resource = "finance/reports/{{id}}"

[[upstreams.routes]]
method = "POST"
path = "/upload"
action = "write"
resource = "finance/upload"

[[upstreams.routes]]
method = "GET"
path = "/download/{{size}}"
action = "read"
resource = "finance/download/{{size}}"

[[upstreams.routes]]
method = "GET"
path = "/slow"
action = "read"
resource = "finance/slow"

[[upstreams.routes]]
method = "POST"
path = "/early"
action = "write"
resource = "finance/early"

[[upstreams]]
name = "wiki"
base_url = "{echo}/wiki"
prefix = "/wiki"
destination = "wiki.internal"
credential = {{ type = "static", secret_file = "wiki.secret" }}

[[upstreams.routes]]
method = "PUT"
path = "/pages/{{slug}}"
action = "write"
resource = "wiki/pages/{{slug}}"

[[upstreams]]
name = "docs"
base_url = "{echo}/docs-api"
prefix = "/docs-api"
destination = "docs.internal"
openapi = "docs-openapi.json"

[[upstreams]]
name = "dead"
base_url = "http://127.0.0.1:{dead_port}"
prefix = "/dead"
destination = "finance-api.internal"

[[upstreams.routes]]
method = "GET"
path = "/x"
action = "read"
resource = "finance/dead"
"""
    path = folder / "gateway.toml"
    path.write_text(text)
    return path


class EchoUpstream:
    """The echo upstream process on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, str(ECHO), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.count()
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the echo upstream did not start") from None
                time.sleep(0.05)

    def count(self) -> int:
        return int(httpx.get(f"{self.url}/__count", timeout=5).json()["count"])

    def complete(self) -> int:
        """How many requests arrived with their whole body."""
        return int(httpx.get(f"{self.url}/__count", timeout=5).json()["complete"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Stack:
    home: Path
    config_path: Path
    deployment: Deployment
    gateway_deployment: Deployment
    control: BackgroundServer
    gateway: BackgroundGateway
    app: GatewayApp
    upstream: EchoUpstream
    agent: Agent

    @property
    def public_url(self) -> str:
        return self.app.config.public_url

    def url(self, path: str) -> str:
        return self.public_url + path

    def task(self, **options: Any) -> Task:
        """A fresh task of the agent whose token is valid at this gateway."""
        options.setdefault("audience", [AUDIENCE])
        return self.agent.open_task(playbook="tool-user", intent="Gateway test", **options)


def new_agent(deployment: Deployment, control_url: str) -> Agent:
    """The session's agent: its JWT-SVID lives the longest the deployment allows (an
    hour), since the session's tests use it for longer than the default 5 minutes."""
    token = deployment.join_tokens.create(AGENT, ttl=300, actor=ADMIN).token
    return Agent.attest(control_url, join_token=token, ttl=3600)


@pytest.fixture(scope="session")
def upstream() -> Iterator[EchoUpstream]:
    echo = EchoUpstream()
    yield echo
    echo.stop()


@pytest.fixture(scope="session")
def stack(upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("gateway")
    home = base / "home"
    deployment, _ = init_home(home, TD)
    deployment.registry.register(AGENT, selectors=[], owner="tests", actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "tests"), ADMIN)
    port = free_port()
    limits = 'max_request_body = "1 MiB"\nmax_response_body = "2 MiB"\nupstream_timeout = 1'
    config_path = gateway_toml(
        base / "gw", upstream.port, port, limits=limits, dead_port=free_port()
    )
    gateway_deployment = Deployment.open(home)
    app = build_app(load_gateway_config(config_path), gateway_deployment)
    with BackgroundServer(deployment) as control, BackgroundGateway(app, port=port) as gateway:
        agent = new_agent(deployment, control.url)
        yield Stack(
            home,
            config_path,
            deployment,
            gateway_deployment,
            control,
            gateway,
            app,
            upstream,
            agent,
        )
        agent.close()
    gateway_deployment.close()
    deployment.close()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


def raw_request(port: int, data: bytes, timeout: float = 10) -> RawResponse:
    """Send ``data`` as is on a new connection; read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return RawResponse(int(lines[0].split()[1]), headers, body)


def build_request(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def peak_rss_kib(pid: int) -> int:
    """The peak resident set size of process ``pid`` (``VmHWM``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def gateway_command(*args: str) -> list[str]:
    """The ``zerolane gateway`` sub-app as its own process."""
    code = "from zerolane.cli.gateway import app; app(prog_name='zerolane gateway')"
    return [sys.executable, "-c", code, *args]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
