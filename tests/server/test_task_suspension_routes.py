"""``POST /v1/admin/tasks/{id}/suspend`` and ``/resume``: admin only, a clear 404/409
with a reason otherwise, and the decisions follow at once. Each refusal has its twin."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import Api
from tests.server.task_fixtures import BASE, FINANCE, READ, TaskApi, dpop

REPORT = f"{FINANCE}/reports/q3"


@pytest.fixture
def tapi(api: Api) -> TaskApi:
    return TaskApi(api)


def turn(tapi: TaskApi, task_id: str, verb: str, **kwargs: Any) -> Any:
    kwargs.setdefault("headers", tapi.admin)
    return tapi.client.post(f"/v1/admin/tasks/{task_id}/{verb}", **kwargs)


def test_admin_suspends_then_resumes_and_decisions_follow(tapi: TaskApi) -> None:
    task = tapi.opened()
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    suspended = turn(tapi, task.task_id, "suspend", json={"reason": "probing"})
    assert suspended.status_code == 200, suspended.text
    [shown] = suspended.json()
    assert (shown["task_id"], shown["state"], shown["end_reason"]) == (
        task.task_id,
        "suspended",
        "probing",
    )
    denied = tapi.decide(task, "GET", REPORT, **READ)
    assert (denied["decision"], denied["reasons"], denied["status"]) == (
        "deny",
        ["task.suspended"],
        403,
    )
    listed = tapi.client.get("/v1/admin/tasks", params={"state": "suspended"}, headers=tapi.admin)
    assert [t["task_id"] for t in listed.json()] == [task.task_id]

    resumed = turn(tapi, task.task_id, "resume")  # no body: the default reason
    assert resumed.status_code == 200, resumed.text
    assert [(t["state"], t["end_reason"]) for t in resumed.json()] == [("active", None)]
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    [off], [on] = tapi.events("task.suspended"), tapi.events("task.resumed")
    assert (off["actor"]["type"], off["reason"]) == ("admin", "probing")
    assert (on["actor"]["type"], on["reason"]) == ("admin", "resumed")


def test_refusals_are_404_or_409_with_a_reason(tapi: TaskApi) -> None:
    def refused(task_id: str, verb: str) -> tuple[int, str]:
        reply = turn(tapi, task_id, verb)
        return reply.status_code, reply.json()["reason"]

    assert refused("tsk_nope", "suspend") == (404, "task.unknown")
    assert refused("tsk_nope", "resume") == (404, "task.unknown")
    task = tapi.opened()
    assert refused(task.task_id, "resume") == (409, "task.not_suspended")
    assert turn(tapi, task.task_id, "suspend").status_code == 200
    assert refused(task.task_id, "suspend") == (409, "task.already_suspended")
    assert tapi.client.post(f"/v1/admin/tasks/{task.task_id}/revoke", headers=tapi.admin)
    assert refused(task.task_id, "resume") == (409, "task.ended")
    assert refused(task.task_id, "suspend") == (409, "task.ended")


@pytest.mark.parametrize(
    "body",
    [{"reason": ""}, {"reason": "x" * 257}, {"reason": 7}, {"why": "x"}, {"reason": "parent.x"}],
)
def test_a_bad_reason_is_400_and_changes_nothing(tapi: TaskApi, body: dict[str, Any]) -> None:
    task = tapi.opened()
    reply = turn(tapi, task.task_id, "suspend", json=body)
    assert reply.status_code == 400, reply.text
    assert tapi.deployment.lifecycle.get(task.task_id).state.value == "active"
    assert turn(tapi, task.task_id, "suspend", json={"reason": "ok"}).status_code == 200


@pytest.mark.parametrize("verb", ["suspend", "resume"])
@pytest.mark.parametrize("credential", [None, "Bearer zla_wrong", "task-token"])
def test_only_an_admin_suspends_or_resumes(
    tapi: TaskApi, verb: str, credential: str | None
) -> None:
    """A workload, even with its own task's token and proof, cannot suspend or resume
    it (nor anyone else's); the admin's twin request goes through."""
    task = tapi.opened()
    if verb == "resume":
        assert turn(tapi, task.task_id, "suspend").status_code == 200
    path = f"/v1/admin/tasks/{task.task_id}/{verb}"
    headers: dict[str, str] = {}
    if credential == "task-token":
        headers = dpop(task.holder.key, task.token, "POST", BASE + path)
    elif credential is not None:
        headers = {"Authorization": credential}
    before = tapi.deployment.lifecycle.get(task.task_id).state
    reply = tapi.client.post(path, headers=headers)
    assert (reply.status_code, reply.json()["reason"]) == (401, "admin.credential")
    assert tapi.deployment.lifecycle.get(task.task_id).state is before
    assert turn(tapi, task.task_id, verb).status_code == 200  # the admin's twin
