"""End to end with a real nginx: ``auth_request`` asks ``zerolane forward-auth`` each time.

Processes: the control plane (in a thread), ``zerolane forward-auth run`` (subprocess,
same home), nginx (subprocess, generated config, loopback port) and an echo upstream
(subprocess) that logs every request it receives.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.gateway.task_home import API, INTENT, PLAYBOOK, ControlPlane, control_plane
from zerolane.cli.background import free_port
from zerolane.sdk import Agent

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx)"
    ),
]
UPSTREAM = Path(__file__).with_name("forward_auth_upstream.py")
FORWARD_AUTH = "from zerolane.cli.forward_auth import app; app()"

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{port};

        location / {{
            auth_request /_zerolane;
            auth_request_set $zerolane_task $upstream_http_x_zerolane_task;
            auth_request_set $zerolane_decision $upstream_http_x_zerolane_decision;
            auth_request_set $zerolane_reason $upstream_http_x_zerolane_reason;
            auth_request_set $zerolane_shadow $upstream_http_x_zerolane_shadow;
            add_header X-Zerolane-Reason $zerolane_reason always;
            proxy_set_header X-Zerolane-Task $zerolane_task;
            proxy_set_header X-Zerolane-Decision $zerolane_decision;
            proxy_set_header X-Zerolane-Shadow $zerolane_shadow;
            proxy_set_header Authorization "";
            proxy_set_header DPoP "";
            proxy_pass http://127.0.0.1:{upstream};
        }}

        location = /_zerolane {{
            internal;
            proxy_pass http://127.0.0.1:{forward_auth}/forward-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
}}
"""

FORWARD_AUTH_CONF = """
public_url = "{public}"
destination = "{destination}"
proxy = "nginx"
port = {port}

[[routes]]
method = "GET"
path = "/reports/{{name}}"
action = "read"
resource = "reports/{{name}}"
sensitivity = "internal"

[[routes]]
method = "DELETE"
path = "/reports/{{name}}"
action = "delete"
resource = "reports/{{name}}"

[[routes]]
method = "DELETE"
path = "/drafts/{{name}}"
action = "delete"
resource = "reports/{{name}}"
mode = "shadow"
"""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text() if log.exists() else ""
            raise AssertionError(f"{what} exited with {process.returncode}:\n{output}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port} in 30 s")


@contextmanager
def running(command: list[str], port: int, what: str, log: Path) -> Iterator[None]:
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, what, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Stack:
    cp: ControlPlane
    url: str  # nginx, the public URL
    upstream_log: Path

    def reached_upstream(self) -> list[str]:
        text = self.upstream_log.read_text() if self.upstream_log.exists() else ""
        return text.splitlines()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert NGINX is not None
    tmp = tmp_path_factory.mktemp("nginx")
    ports = {"port": free_port(), "upstream": free_port(), "forward_auth": free_port()}
    public = f"http://127.0.0.1:{ports['port']}"
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, **ports))
    config = tmp / "forward-auth.toml"
    config.write_text(
        FORWARD_AUTH_CONF.format(public=public, destination=API, port=ports["forward_auth"])
    )
    upstream_log = tmp / "upstream.log"
    with control_plane(tmp / "home") as cp:
        forward_auth = [sys.executable, "-c", FORWARD_AUTH, "run", "--config", str(config)]
        nginx = [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
        upstream = [sys.executable, str(UPSTREAM), str(ports["upstream"]), str(upstream_log)]
        with (
            running(upstream, ports["upstream"], "upstream", tmp / "upstream.out"),
            running(
                [*forward_auth, "--home", str(tmp / "home")],
                ports["forward_auth"],
                "zerolane forward-auth",
                tmp / "forward-auth.out",
            ),
            running(nginx, ports["port"], "nginx", tmp / "error.log"),
        ):
            yield Stack(cp, public, upstream_log)


@pytest.fixture
def agent(stack: Stack) -> Iterator[Agent]:
    with stack.cp.agent() as attested:
        yield attested


def test_nginx_enforces_zerolane_decisions(stack: Stack, agent: Agent) -> None:
    report = f"{stack.url}/reports/q3"
    before = len(stack.reached_upstream())
    with agent.task(playbook=PLAYBOOK["name"], intent=INTENT, audience=[stack.url]) as task:
        # allowed: reaches the upstream, which sees the task but no token or proof
        allowed = httpx.get(report + "?page=2", headers=task.headers("GET", report))
        assert allowed.status_code == 200, allowed.text
        seen = allowed.json()
        assert (seen["method"], seen["path"]) == ("GET", "/reports/q3?page=2")
        assert seen["headers"]["x-zerolane-task"] == task.task_id
        assert seen["headers"]["x-zerolane-decision"]
        assert "authorization" not in seen["headers"]
        assert "dpop" not in seen["headers"]
        assert "x-zerolane-reason" not in allowed.headers

        # denied (out of the task's scope): 403 from nginx, the upstream never sees it
        denied = httpx.delete(report, headers=task.headers("DELETE", report))
        assert denied.status_code == 403
        assert denied.headers["x-zerolane-reason"] == "scope.action"

        # unmapped route, and a path attack with a valid proof for its exact URL
        admin = f"{stack.url}/admin/users"
        assert httpx.get(admin, headers=task.headers("GET", admin)).status_code == 403
        attack = f"{stack.url}/reports/%2e%2e/admin"
        assert httpx.get(attack, headers=task.headers("GET", attack)).status_code == 403

        # a client-sent X-Original-URI is overwritten by nginx
        smuggled = {**task.headers("GET", admin), "X-Original-URI": "/reports/q3"}
        assert httpx.get(admin, headers=smuggled).status_code == 403

        # no token: 401 with the DPoP challenge passed through by nginx
        anonymous = httpx.get(report)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("DPoP ")

        # replay: the same headers twice are refused the second time
        headers = task.headers("GET", report)
        assert httpx.get(report, headers=headers).status_code == 200
        replayed = httpx.get(report, headers=headers)
        assert replayed.status_code == 401
        assert "invalid_dpop_proof" in replayed.headers["www-authenticate"]
        assert replayed.headers["x-zerolane-reason"] == "dpop.replayed"

    # after completion the task's token is refused
    after = httpx.get(report, headers=task.headers("GET", report))
    assert after.status_code == 403
    assert stack.reached_upstream()[before:] == ["GET /reports/q3?page=2", "GET /reports/q3"]


def test_a_token_for_another_audience_is_refused_through_nginx(stack: Stack, agent: Agent) -> None:
    """The config names no audience: tokens must name public_url (nginx's URL). A task
    opened without it (its token names the control plane alone) is refused before the
    upstream; the same request of a task opened for the API reaches it."""
    report = f"{stack.url}/reports/q5"
    before = len(stack.reached_upstream())
    with agent.task(playbook=PLAYBOOK["name"], intent=INTENT) as elsewhere:
        refused = httpx.get(report, headers=elsewhere.headers("GET", report))
    assert refused.status_code == 401
    assert refused.headers["x-zerolane-reason"] == "token.audience"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    with agent.task(playbook=PLAYBOOK["name"], intent=INTENT, audience=[stack.url]) as task:
        assert httpx.get(report, headers=task.headers("GET", report)).status_code == 200
    assert stack.reached_upstream()[before:] == ["GET /reports/q5"]


def test_decisions_are_in_the_audit_chain(stack: Stack, agent: Agent) -> None:
    report = f"{stack.url}/reports/q4"
    with agent.task(playbook=PLAYBOOK["name"], intent=INTENT, audience=[stack.url]) as task:
        reply = httpx.get(report, headers=task.headers("GET", report))
        assert reply.status_code == 200
        decision_id = reply.json()["headers"]["x-zerolane-decision"]
    recorded = [d for d in stack.cp.decisions() if d["decision_id"] == decision_id]
    assert len(recorded) == 1
    assert recorded[0]["url"] == report
    assert recorded[0]["destination"] == API
    count, broken = stack.cp.deployment.audit.verify()
    assert broken is None
    assert count > 0


def test_a_shadow_route_is_forwarded_with_x_zerolane_shadow(stack: Stack, agent: Agent) -> None:
    """DELETE /drafts/{name} runs in shadow: the policies deny it (the task may not
    delete), so forward-auth answers 200 with X-Zerolane-Shadow and nginx forwards it
    with the reasons; its enforced twin DELETE /reports/{name} is refused 403. An
    agent's own X-Zerolane-Shadow never reaches the upstream on a plain allow."""
    draft, report = f"{stack.url}/drafts/q6", f"{stack.url}/reports/q6"
    before = len(stack.reached_upstream())
    with agent.task(playbook=PLAYBOOK["name"], intent=INTENT, audience=[stack.url]) as task:
        shadowed = httpx.delete(draft, headers=task.headers("DELETE", draft))
        assert shadowed.status_code == 200, shadowed.text
        seen = shadowed.json()["headers"]
        assert seen["x-zerolane-shadow"] == "scope.action"
        assert seen["x-zerolane-task"] == task.task_id
        decision_id = seen["x-zerolane-decision"]
        enforced = httpx.delete(report, headers=task.headers("DELETE", report))
        assert enforced.status_code == 403
        assert enforced.headers["x-zerolane-reason"] == "scope.action"
        forged = {**task.headers("GET", report), "X-Zerolane-Shadow": "forged"}
        plain = httpx.get(report, headers=forged)
        assert plain.status_code == 200
        assert "x-zerolane-shadow" not in plain.json()["headers"]
    assert stack.reached_upstream()[before:] == ["DELETE /drafts/q6", "GET /reports/q6"]
    recorded = next(d for d in stack.cp.decisions() if d["decision_id"] == decision_id)
    assert (recorded["decision"], recorded["would_deny"]) == ("shadow", ["scope.action"])
    assert recorded["shadow"] == [f"route:{API} DELETE /drafts/{{name}}"]
