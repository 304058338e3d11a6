"""End to end: automatic response over a real control plane and HTTP gateway (its own
deployment over the same home). A task probing its scope through the gateway is found
by the control plane's detectors, suspended by the ``[[response.rules]]`` rule, and its
next request is denied ``task.suspended``; a task that behaves is left alone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import (
    ADMIN,
    AGENT,
    AUDIENCE,
    PLAYBOOK,
    TD,
    EchoUpstream,
    gateway_toml,
    new_agent,
)
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.cli.gateway import BackgroundGateway, build_app
from zerolane.config import CONFIG_NAME
from zerolane.gateway.config import load_gateway_config
from zerolane.sdk import Agent, Task
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

pytestmark = pytest.mark.e2e

RESPONSE = """
[detection]
poll_interval = 0.02

[detection.scope_probing]
distinct = 5

[[response.rules]]
name = "stop-probers"
detectors = ["scope_probing"]
actions = ["suspend"]
"""


@dataclass
class Plane:
    deployment: Deployment
    gateway_url: str
    agent: Agent
    upstream: EchoUpstream

    def task(self) -> Task:
        return self.agent.open_task(playbook="tool-user", intent="E2E", audience=[AUDIENCE])

    def get(self, task: Task, path: str, method: str = "GET") -> tuple[int, str | None]:
        response = task.request(method, f"{self.gateway_url}{path}")
        return response.status_code, None if response.is_success else response.json()["reason"]

    def events(self, kind: str) -> list[dict[str, Any]]:
        records = self.deployment.stores.read_events(0, 100_000)
        return [json.loads(r.body) for r in records if r.kind == kind]


@pytest.fixture(scope="module")
def plane(upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    base = tmp_path_factory.mktemp("response")
    home = base / "home"
    created, _ = init_home(home, TD)
    created.registry.register(AGENT, selectors=[], owner="tests", actor=ADMIN)
    created.playbooks.apply(parse_playbook(PLAYBOOK, "tests"), ADMIN)
    created.close()
    with (home / CONFIG_NAME).open("a") as config:
        config.write(RESPONSE)
    deployment = Deployment.open(home)
    port = free_port()
    gateway_config = load_gateway_config(gateway_toml(base / "gw", upstream.port, port))
    gateway_deployment = Deployment.open(home)  # another process's view
    app = build_app(gateway_config, gateway_deployment)
    try:
        with BackgroundServer(deployment) as control, BackgroundGateway(app, port=port):
            agent = new_agent(deployment, control.url)
            yield Plane(deployment, gateway_config.public_url, agent, upstream)
            agent.close()
    finally:
        gateway_deployment.close()
        deployment.close()


def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_a_probing_task_is_suspended_and_its_next_request_denied(plane: Plane) -> None:
    prober, bystander = plane.task(), plane.task()
    assert plane.get(prober, "/finance/reports/q3") == (200, None)
    for n in range(4):  # four distinct denials: under the threshold
        assert plane.get(prober, f"/finance/reports/r{n}", "DELETE") == (403, "scope.action")
    time.sleep(0.3)  # the detectors have read them: nothing fired
    assert not [e for e in plane.events("response") if e["subject"] == prober.task_id]
    assert plane.get(prober, "/finance/reports/q3") == (200, None)

    assert plane.get(prober, "/finance/reports/r4", "DELETE") == (403, "scope.action")
    fired = until(lambda: [e for e in plane.events("response") if e["subject"] == prober.task_id])
    assert fired, "no response was recorded"
    (response,) = fired
    assert response["actor"] == {"type": "system", "id": "response:stop-probers"}
    assert response["details"]["actions"] == {"suspend": "done"}
    assert response["details"]["detector"] == "scope_probing"
    reached = plane.upstream.count()
    assert plane.get(prober, "/finance/reports/q3") == (403, "task.suspended")
    assert plane.upstream.count() == reached  # nothing reached the upstream
    (suspended,) = [e for e in plane.events("task.suspended") if e["subject"] == prober.task_id]
    assert suspended["actor"] == {"type": "system", "id": "response:stop-probers"}
    assert suspended["reason"] == "detection.scope_probing"
    # the legitimate twin: another task of the same workload goes on
    assert plane.get(bystander, "/finance/reports/q3") == (200, None)
    bystander.complete()


def test_the_gateway_denies_a_risky_task_outside_requests(plane: Plane) -> None:
    """Risk reaches the gateway's own decider (another deployment over the home): a
    replay of a task's request is detected (high: risk 60, no rule acts on it), and the
    gateway then denies that task's requests to an outside destination ``risk.high``;
    another task of the same workload goes on (the default set reads the task's risk)."""
    task, other = plane.task(), plane.task()
    url = f"{plane.gateway_url}/finance/reports/q3"
    captured = task.headers("GET", url)
    assert httpx.get(url, headers=captured).status_code == 200
    assert httpx.get(url, headers=captured).status_code == 401  # the replay, refused
    denied = until(lambda: plane.get(task, "/finance/reports/q3") == (403, "risk.high"))
    assert denied, "the gateway never saw the task's risk"
    assert plane.get(other, "/finance/reports/q3") == (200, None)
    assert plane.deployment.risk.facts(task.task_id, AGENT).task == 60
