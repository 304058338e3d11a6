"""Approvals over the API: ``/v1/decide`` answers approval.required with the approval's id,
the admin lists, shows, approves and denies (404/409/403 with a reason otherwise), the
task's holder reads its own approval, and the approved request is allowed once."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.server.conftest import Api
from tests.server.task_fixtures import BASE, FINANCE, Opened, TaskApi, dpop

PAGE = f"{FINANCE}/reports/q3"
WRITE = {"action": "write", "sensitivity": "internal"}
ASK = """
@id("approval.writes")
@approval("required")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.action == "write" };
"""
BODY = hashlib.sha256(b'{"total": 12}').hexdigest()


@pytest.fixture
def tapi(api: Api) -> TaskApi:
    tapi = TaskApi(api)
    deployment = tapi.deployment
    (deployment.home / deployment.config.policy_dir / "approval.cedar").write_text(ASK)
    deployment.reload_policies(tapi.admin_actor)
    return tapi


def asked(tapi: TaskApi, task: Opened, digest: str = BODY) -> dict[str, Any]:
    return tapi.decide(task, "POST", PAGE, digest=digest, **WRITE)


def admin_post(tapi: TaskApi, approval_id: str, verb: str, **body: Any) -> Any:
    return tapi.client.post(
        f"/v1/admin/approvals/{approval_id}/{verb}",
        json={"approver": "alice", **body},
        headers=tapi.admin,
    )


def test_asked_listed_approved_used_once(tapi: TaskApi) -> None:
    task = tapi.opened()
    first = asked(tapi, task)
    assert (first["decision"], first["reasons"], first["status"]) == (
        "deny",
        ["approval.required"],
        403,
    )
    approval_id = first["approval_id"]
    assert first["error"]["approval_id"] == approval_id
    assert first["error"]["approval_url"] == f"/v1/approvals/{approval_id}"
    listed = tapi.client.get(
        "/v1/admin/approvals", params={"status": "pending"}, headers=tapi.admin
    )
    assert [a["approval_id"] for a in listed.json()] == [approval_id]
    shown = tapi.client.get(f"/v1/admin/approvals/{approval_id}", headers=tapi.admin).json()
    assert (shown["status"], shown["digest"], shown["task_id"]) == ("pending", BODY, task.task_id)

    granted = admin_post(tapi, approval_id, "approve", reason="checked the total")
    assert granted.status_code == 200, granted.text
    assert (granted.json()["status"], granted.json()["approver"]) == ("approved", "alice")
    assert asked(tapi, task)["decision"] == "allow"
    assert asked(tapi, task)["reasons"] == ["approval.required"]  # once only
    used = tapi.client.get(f"/v1/admin/approvals/{approval_id}", headers=tapi.admin).json()
    assert used["status"] == "used"
    kinds = [e["kind"] for e in tapi.events("approval.requested") + tapi.events("approval.used")]
    assert kinds == ["approval.requested", "approval.requested", "approval.used"]
    [event] = tapi.events("approval.granted")
    assert (event["actor"]["type"], event["details"]["approver"]) == ("admin", "alice")


def test_the_holder_reads_its_own_approval_and_no_other(tapi: TaskApi) -> None:
    task = tapi.opened()
    approval_id = asked(tapi, task)["approval_id"]
    path = f"/v1/approvals/{approval_id}"
    mine = tapi.client.get(path, headers=dpop(task.holder.key, task.token, "GET", BASE + path))
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "pending"
    other = tapi.opened()
    theirs = tapi.client.get(path, headers=dpop(other.holder.key, other.token, "GET", BASE + path))
    assert (theirs.status_code, theirs.json()["reason"]) == (404, "approval.unknown")
    anonymous = tapi.client.get(path)
    assert anonymous.status_code == 401
    admin_only = tapi.client.get(
        "/v1/admin/approvals", headers=dpop(task.holder.key, task.token, "GET", BASE + path)
    )
    assert admin_only.status_code == 401


def test_refusals_name_their_reason(tapi: TaskApi) -> None:
    assert admin_post(tapi, "nope", "approve").json()["reason"] == "approval.unknown"
    assert tapi.client.get("/v1/admin/approvals/nope", headers=tapi.admin).status_code == 404
    bad = tapi.client.get("/v1/admin/approvals", params={"status": "maybe"}, headers=tapi.admin)
    assert (bad.status_code, bad.json()["reason"]) == (400, "approval.status")
    task = tapi.opened()
    approval_id = asked(tapi, task)["approval_id"]
    own = tapi.client.post(
        f"/v1/admin/approvals/{approval_id}/approve",
        json={"approver": task.holder.spiffe_id},
        headers=tapi.admin,
    )
    assert (own.status_code, own.json()["reason"]) == (403, "approval.self")
    assert admin_post(tapi, approval_id, "approve", extra="x").status_code == 400
    denied = admin_post(tapi, approval_id, "deny", reason="not this week")
    assert denied.json()["status"] == "denied"
    again = admin_post(tapi, approval_id, "approve")
    assert (again.status_code, again.json()["reason"]) == (409, "approval.decided")
    assert asked(tapi, task)["reasons"] == ["approval.denied"]
    listed = tapi.client.get(
        "/v1/admin/approvals", params={"task_id": task.task_id}, headers=tapi.admin
    )
    assert [a["status"] for a in listed.json()] == ["denied"]


def test_a_decide_without_digest_cannot_ask_and_a_bad_digest_is_400(tapi: TaskApi) -> None:
    task = tapi.opened()
    unbound = tapi.decide(task, "POST", PAGE, **WRITE)
    assert (unbound["reasons"], unbound["approval_id"]) == (["approval.unbound"], None)
    body = {"token": task.token, "request": {"method": "POST", "url": PAGE, "digest": "xyz"}}
    reply = tapi.client.post("/v1/decide", json=body, headers=tapi.point)
    assert reply.status_code == 400
