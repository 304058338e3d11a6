"""A response rule's ``require_approval`` over the API: after a detection about a task,
``/v1/decide`` answers its next request 403 ``approval.required`` with an approval id,
the admin sees the hold and the request's preview, approves it (allowed once) and
releases the hold; another task's identical request is allowed throughout."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import AGENT, Api
from tests.server.task_fixtures import FINANCE, Opened, TaskApi
from zerolane.audit.events import Actor
from zerolane.config import CONFIG_NAME
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment, init_home
from zerolane.types import Outcome

PAGE = f"{FINANCE}/reports/q3"
WRITE = {"action": "write", "sensitivity": "internal"}
BODY = hashlib.sha256(b'{"total": 12}').hexdigest()


RULES = """
[[response.rules]]
name = "hold-probers"
detectors = ["scope_probing"]
actions = ["require_approval"]
"""


@pytest.fixture
def tapi(tmp_path: Path) -> Iterator[TaskApi]:
    home = tmp_path / "home"
    deployment, admin = init_home(home, "example.org")
    deployment.close()
    with (home / CONFIG_NAME).open("a") as config:
        config.write(RULES)
    deployment = Deployment.open(home)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=Actor("admin", "t"))
    try:
        with TestClient(create_app(deployment), raise_server_exceptions=False) as client:
            yield TaskApi(Api(client, deployment, admin))
    finally:
        deployment.close()


def probing_detected(tapi: TaskApi, task: Opened) -> None:
    deployment = tapi.deployment
    deployment.audit.record(
        "detection",
        actor=Actor("detector", "scope_probing"),
        subject=task.task_id,
        outcome=Outcome.FAILURE,
        reason="detection.scope_probing",
        details={
            "detector": "scope_probing",
            "severity": "medium",
            "summary": "many denied resources",
            "task_id": task.task_id,
            "workload": task.holder.spiffe_id,
            "evidence": [],
            "evidence_total": 0,
        },
    )
    deployment.responder.catch_up()


def write(tapi: TaskApi, task: Opened) -> dict[str, Any]:
    return tapi.decide(task, "POST", PAGE, digest=BODY, **WRITE)


def test_a_held_task_needs_an_approval_per_request_until_released(tapi: TaskApi) -> None:
    held, other = tapi.opened(), tapi.opened()
    assert write(tapi, held)["decision"] == "allow"  # before the detection
    probing_detected(tapi, held)

    asked = write(tapi, held)
    assert (asked["status"], asked["reasons"]) == (403, ["approval.required"])
    approval_id = asked["approval_id"]
    assert asked["error"]["approval_id"] == approval_id
    assert asked["error"]["approval_url"] == f"/v1/approvals/{approval_id}"
    assert write(tapi, other)["decision"] == "allow"  # the unaffected twin

    holds = tapi.client.get("/v1/admin/holds", headers=tapi.admin).json()
    assert [(h["task_id"], h["rule"], h["detector"]) for h in holds] == [
        (held.task_id, "hold-probers", "scope_probing")
    ]
    shown = tapi.client.get(f"/v1/admin/approvals/{approval_id}", headers=tapi.admin).json()
    assert shown["policies"] == ["response:hold-probers"]
    assert shown["preview"] == {"method": "POST", "path": "/reports/q3"}

    granted = tapi.client.post(
        f"/v1/admin/approvals/{approval_id}/approve",
        json={"approver": "alice@example.org"},
        headers=tapi.admin,
    )
    assert granted.status_code == 200, granted.text
    assert write(tapi, held)["decision"] == "allow"  # the identical request, once
    assert write(tapi, held)["reasons"] == ["approval.required"]

    released = tapi.client.post(
        f"/v1/admin/holds/{held.task_id}/release", json={"reason": "checked"}, headers=tapi.admin
    )
    assert released.status_code == 200, released.text
    assert released.json()["rule"] == "hold-probers"
    assert write(tapi, held)["decision"] == "allow"
    again = tapi.client.post(f"/v1/admin/holds/{held.task_id}/release", json={}, headers=tapi.admin)
    assert (again.status_code, again.json()["reason"]) == (404, "hold.unknown")
    [event] = tapi.events("task.released")
    assert (event["actor"]["type"], event["reason"]) == ("admin", "checked")


def test_holds_are_for_the_admin_only(tapi: TaskApi) -> None:
    task = tapi.opened()
    probing_detected(tapi, task)
    assert tapi.client.get("/v1/admin/holds").status_code == 401
    refused = tapi.client.post(f"/v1/admin/holds/{task.task_id}/release", json={})
    assert refused.status_code == 401
    bad = tapi.client.post(
        f"/v1/admin/holds/{task.task_id}/release", json={"reason": ""}, headers=tapi.admin
    )
    assert bad.status_code == 400
    assert write(tapi, task)["reasons"] == ["approval.required"]  # still held
