"""End to end: a policy asks a person to approve uploads. Through the HTTP gateway (its own
deployment over the control plane's home) the agent's upload is refused 403
``approval.required`` with the approval's id (header and body) and never reaches the
upstream; the admin approves it over the API; the agent waits for it with the SDK and
sends the identical upload, which goes through once. The same upload again, or other
bytes, needs a new approval; a streamed (chunked) upload cannot be bound and is denied
``approval.unbound``; a read needs no approval at all."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

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
from zerolane.sdk import Agent, ApprovalRequired, Task, ZerolaneApiError
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

pytestmark = pytest.mark.e2e
ASK_UPLOADS = """
@id("approval.uploads")
@approval("required")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.resource == "finance/upload" };
"""
BODY = b'{"invoice": 17, "amount": "120.00"}'


@dataclass
class Plane:
    control: BackgroundServer
    gateway_url: str
    admin_token: str
    agent: Agent
    upstream: EchoUpstream

    def approve(self, approval_id: str) -> httpx.Response:
        url = f"{self.control.url}/v1/admin/approvals/{approval_id}/approve"
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.post(url, json={"approver": "carol"}, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def plane(upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    base = tmp_path_factory.mktemp("approvals")
    deployment, admin_token = init_home(base / "home", TD)
    (base / "home" / deployment.config.policy_dir / "approval.cedar").write_text(ASK_UPLOADS)
    deployment.reload_policies(ADMIN)
    deployment.registry.register(AGENT, selectors=[], owner="tests", actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "tests"), ADMIN)
    port = free_port()
    config = load_gateway_config(gateway_toml(base / "gw", upstream.port, port))
    gateway_deployment = Deployment.open(base / "home")  # another process's view
    app = build_app(config, gateway_deployment)
    try:
        with BackgroundServer(deployment) as control, BackgroundGateway(app, port=port):
            agent = new_agent(deployment, control.url)
            yield Plane(control, config.public_url, admin_token, agent, upstream)
            agent.close()
    finally:
        gateway_deployment.close()
        deployment.close()


def upload(plane: Plane, task: Task, body: bytes = BODY) -> httpx.Response:
    return task.request("POST", f"{plane.gateway_url}/finance/upload", content=body)


def asked(plane: Plane, task: Task, body: bytes = BODY) -> ApprovalRequired:
    with pytest.raises(ApprovalRequired) as required:
        upload(plane, task, body)
    return required.value


def test_an_upload_is_approved_then_allowed_once(plane: Plane) -> None:
    task = plane.agent.open_task(playbook="tool-user", intent="E2E", audience=[AUDIENCE])
    reached = plane.upstream.count()
    first = asked(plane, task)
    assert (first.status, first.reason) == (403, "approval.required")
    assert first.approval_url == f"/v1/approvals/{first.approval_id}"
    assert plane.upstream.count() == reached  # nothing reached the upstream
    # the raw answer: the header and the body name the approval
    url = f"{plane.gateway_url}/finance/upload"
    raw = task.http.post(url, content=BODY, headers=task.headers("POST", url))
    assert raw.status_code == 403
    assert raw.headers["X-Zerolane-Approval"] == first.approval_id  # the same one: no flood
    assert raw.json()["approval_id"] == first.approval_id
    assert task.approval(first.approval_id)["status"] == "pending"

    assert plane.approve(first.approval_id).status_code == 200
    assert task.wait_for_approval(first.approval_id, timeout=10, interval=0.05) == "approved"
    allowed = upload(plane, task)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["body_sha256"] == hashlib.sha256(BODY).hexdigest()  # these bytes
    assert plane.upstream.count() == reached + 1
    assert task.approval(first.approval_id)["status"] == "used"

    again = asked(plane, task)  # once only
    assert again.approval_id != first.approval_id
    other = asked(plane, task, BODY.replace(b"120.00", b"99999.00"))  # other bytes
    assert other.approval_id not in (first.approval_id, again.approval_id)
    assert plane.upstream.count() == reached + 1
    read = task.request("GET", f"{plane.gateway_url}/finance/reports/q3")
    assert read.status_code == 200  # the twin: no approval asked for a read
    task.complete()


def test_a_streamed_upload_cannot_be_bound_and_is_denied(plane: Plane) -> None:
    task = plane.agent.open_task(playbook="tool-user", intent="E2E", audience=[AUDIENCE])
    reached = plane.upstream.count()

    def chunks() -> Iterator[bytes]:
        yield BODY[:10]
        yield BODY[10:]

    url = f"{plane.gateway_url}/finance/upload"
    streamed = task.http.post(url, content=chunks(), headers=task.headers("POST", url))
    assert (streamed.status_code, streamed.json()["reason"]) == (403, "approval.unbound")
    assert plane.upstream.count() == reached
    task.complete()


def test_a_timeout_waiting_and_another_tasks_approval(plane: Plane) -> None:
    task = plane.agent.open_task(playbook="tool-user", intent="E2E", audience=[AUDIENCE])
    pending = asked(plane, task, b"{}")
    with pytest.raises(TimeoutError):
        task.wait_for_approval(pending.approval_id, timeout=0.1, interval=0.05)
    other = plane.agent.open_task(playbook="tool-user", intent="E2E", audience=[AUDIENCE])
    with pytest.raises(ZerolaneApiError) as unknown:
        other.approval(pending.approval_id)
    assert (unknown.value.status, unknown.value.reason) == (404, "approval.unknown")
    task.complete()
    other.complete()


def test_an_approval_binds_the_query_too(plane: Plane) -> None:
    """The same body to the same route with another query (another payee, another
    amount) is another request: it asks anew and never reaches the upstream; the
    approved one, query and all, goes through once."""
    task = plane.agent.open_task(playbook="tool-user", intent="E2E", audience=[AUDIENCE])
    reached = plane.upstream.count()
    approved_url = f"{plane.gateway_url}/finance/upload?to=alice&amount=5"
    with pytest.raises(ApprovalRequired) as required:
        task.request("POST", approved_url, content=BODY)
    first = required.value
    assert plane.approve(first.approval_id).status_code == 200
    for other in ("?to=mallory&amount=500000", "?to=alice&amount=5&x=1", ""):
        with pytest.raises(ApprovalRequired) as again:
            task.request("POST", f"{plane.gateway_url}/finance/upload{other}", content=BODY)
        assert again.value.approval_id != first.approval_id
    assert plane.upstream.count() == reached  # none of them reached it
    assert task.approval(first.approval_id)["status"] == "approved"  # still unused
    allowed = task.request("POST", approved_url, content=BODY)  # the twin: exactly it
    assert allowed.status_code == 200, allowed.text
    assert plane.upstream.count() == reached + 1
    task.complete()


def test_the_approver_sees_the_request_masked(plane: Plane) -> None:
    """The approval keeps what the request was (method, path, query, body size and a
    JSON excerpt) with secrets masked, and the admin API shows it."""
    task = plane.agent.open_task(playbook="tool-user", intent="E2E", audience=[AUDIENCE])
    body = b'{"invoice": 18, "password": "hunter2"}'
    with pytest.raises(ApprovalRequired) as required:
        task.request(
            "POST",
            f"{plane.gateway_url}/finance/upload?api_key=sekrit&amount=5",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    url = f"{plane.control.url}/v1/admin/approvals/{required.value.approval_id}"
    headers = {"Authorization": f"Bearer {plane.admin_token}"}
    shown = httpx.get(url, headers=headers, timeout=10).json()["preview"]
    assert (shown["method"], shown["path"]) == ("POST", "/finance/upload")
    query = dict(shown["query"])
    assert query["amount"] == "5"
    assert query["api_key"].startswith("***")
    assert shown["body"]["size"] == len(body)
    assert shown["body"]["type"] == "application/json"
    assert '"invoice":18' in shown["body"]["excerpt"]
    assert "hunter2" not in json.dumps(shown)
    assert "sekrit" not in json.dumps(shown)
    task.complete()
