"""End to end: an admin suspends a task over the control plane's API and the HTTP
gateway (its own deployment over the same home) denies the task and its delegated child
from their very next request, ``task.suspended``; resumed, the same requests go through.
A workload cannot suspend or resume, not even its own task."""

from __future__ import annotations

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
from zerolane.gateway.config import load_gateway_config
from zerolane.sdk import Agent, Task
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc9449 import make_proof

pytestmark = pytest.mark.e2e
HELPER = f"spiffe://{TD}/agents/helper"
TEAM = {**PLAYBOOK, "name": "tool-team", "delegable": True, "max_depth": 2}


@dataclass
class Plane:
    control: BackgroundServer
    gateway_url: str
    admin_token: str
    agent: Agent
    helper: Agent
    upstream: EchoUpstream

    def turn(self, task_id: str, verb: str, headers: dict[str, str] | None = None) -> Any:
        if headers is None:
            headers = {"Authorization": f"Bearer {self.admin_token}"}
        url = f"{self.control.url}/v1/admin/tasks/{task_id}/{verb}"
        return httpx.post(url, json={"reason": "e2e"}, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def plane(upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    base = tmp_path_factory.mktemp("suspension")
    deployment, admin_token = init_home(base / "home", TD)
    for spiffe_id in (AGENT, HELPER):
        deployment.registry.register(spiffe_id, selectors=[], owner="tests", actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(TEAM, "tests"), ADMIN)
    port = free_port()
    config = load_gateway_config(gateway_toml(base / "gw", upstream.port, port))
    gateway_deployment = Deployment.open(base / "home")  # another process's view
    app = build_app(config, gateway_deployment)
    try:
        with BackgroundServer(deployment) as control, BackgroundGateway(app, port=port):
            agent = new_agent(deployment, control.url)
            token = deployment.join_tokens.create(HELPER, ttl=300, actor=ADMIN).token
            helper = Agent.attest(control.url, join_token=token, ttl=3600)
            yield Plane(control, config.public_url, admin_token, agent, helper, upstream)
            helper.close()
            agent.close()
    finally:
        gateway_deployment.close()
        deployment.close()


def outcome(plane: Plane, task: Task) -> tuple[int, str | None]:
    response = task.request("GET", f"{plane.gateway_url}/finance/reports/q3")
    return response.status_code, None if response.is_success else response.json()["reason"]


def test_a_suspended_task_and_its_child_are_denied_until_resumed(plane: Plane) -> None:
    task = plane.agent.open_task(playbook="tool-team", intent="E2E", audience=[AUDIENCE])
    assert plane.helper.svid is not None
    child = plane.helper.adopt(task.delegate(delegate_svid=plane.helper.svid.token, max_calls=5))
    assert outcome(plane, task) == (200, None)
    assert outcome(plane, child) == (200, None)
    reached = plane.upstream.count()

    suspended = plane.turn(task.task_id, "suspend")
    assert suspended.status_code == 200, suspended.text
    assert [t["task_id"] for t in suspended.json()] == [task.task_id, child.task_id]
    assert outcome(plane, task) == (403, "task.suspended")  # the very next request
    assert outcome(plane, child) == (403, "task.suspended")
    assert plane.upstream.count() == reached  # nothing reached the upstream

    resumed = plane.turn(task.task_id, "resume")
    assert resumed.status_code == 200, resumed.text
    assert outcome(plane, task) == (200, None)  # the same request, allowed again
    assert outcome(plane, child) == (200, None)
    assert plane.upstream.count() == reached + 2
    task.complete()


@pytest.mark.parametrize("verb", ["suspend", "resume"])
def test_a_workload_cannot_suspend_or_resume_its_task(plane: Plane, verb: str) -> None:
    """Its task token with a valid proof for the admin route is refused (401
    ``admin.credential``) and nothing changes; the admin's twin goes through."""
    task = plane.agent.open_task(playbook="tool-team", intent="E2E", audience=[AUDIENCE])
    if verb == "resume":
        assert plane.turn(task.task_id, "suspend").status_code == 200
    expected = (200, None) if verb == "suspend" else (403, "task.suspended")
    url = f"{plane.control.url}/v1/admin/tasks/{task.task_id}/{verb}"
    proof = make_proof(plane.agent.key, method="POST", url=url, access_token=task.token)
    for headers in (
        {"Authorization": f"DPoP {task.token}", "DPoP": proof},
        {"Authorization": f"Bearer {task.token}"},
    ):
        refused = plane.turn(task.task_id, verb, headers)
        assert (refused.status_code, refused.json()["reason"]) == (401, "admin.credential")
        assert outcome(plane, task) == expected  # unchanged
    assert plane.turn(task.task_id, verb).status_code == 200  # the admin's twin
    assert outcome(plane, task) == ((403, "task.suspended") if verb == "suspend" else (200, None))
