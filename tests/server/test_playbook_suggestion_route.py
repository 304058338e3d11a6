"""``GET /v1/admin/playbooks/{name}/suggestion``: ``zerolane playbook suggest --json``
over the admin API, for the dashboard: the admin credential only, clear 404s."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.task_fixtures import BASE, FINANCE, PLAYBOOK, READ, TaskApi, dpop, playbook

URL = f"/v1/admin/playbooks/{PLAYBOOK['name']}/suggestion"


@pytest.fixture
def tapi(api: Any) -> TaskApi:
    return TaskApi(api)


def test_the_suggestion_is_what_the_tasks_used(tapi: TaskApi) -> None:
    task = tapi.opened()
    assert tapi.decide(task, "GET", f"{FINANCE}/reports/q3", **READ)["decision"] == "allow"
    assert tapi.decide(task, "GET", f"{FINANCE}/payroll/q3", **READ)["decision"] == "deny"
    reply = tapi.client.get(URL, headers=tapi.admin)
    assert reply.status_code == 200, reply.text
    found = reply.json()
    assert found["evidence"]["tasks"] == 1
    assert found["suggested"]["actions"] == ["read"]
    assert found["suggested"]["resources"] == ["reports/q3"]
    assert found["suggested"]["destinations"] == ["finance.example.org"]
    assert [r["resource"] for r in found["refused"]] == ["payroll/q3"]
    assert found["diff"].startswith(f"--- {PLAYBOOK['name']} (current)")
    params: dict[str, str | int] = {"headroom": 100, "keep_patterns": "true", "since_days": 1}
    wider = tapi.client.get(URL, params=params, headers=tapi.admin).json()
    assert wider["suggested"]["resources"] == ["reports/*"]
    assert wider["suggested"]["max_calls"] == 2


@pytest.mark.parametrize("credential", [None, "Bearer zla_wrong", "task-token"])
def test_it_needs_the_admin_credential(tapi: TaskApi, credential: str | None) -> None:
    task = tapi.opened()
    headers: dict[str, str] = {}
    if credential == "task-token":
        headers = dpop(task.holder.key, task.token, "GET", BASE + URL)
    elif credential is not None:
        headers = {"Authorization": credential}
    reply = tapi.client.get(URL, headers=headers)
    assert reply.status_code == 401, reply.text
    assert reply.json()["reason"] == "admin.credential"


def test_unknown_no_evidence_and_bad_parameters(tapi: TaskApi) -> None:
    unknown = tapi.client.get("/v1/admin/playbooks/nope/suggestion", headers=tapi.admin)
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "playbook.unknown")
    tapi.apply_playbook(playbook(name="idle"))
    idle = tapi.client.get("/v1/admin/playbooks/idle/suggestion", headers=tapi.admin)
    assert (idle.status_code, idle.json()["reason"]) == (404, "playbook.no_evidence")
    bad_params: list[dict[str, int]] = [{"since_days": 0}, {"since_days": 400}, {"headroom": -1}]
    for params in bad_params:
        bad = tapi.client.get(URL, params=params, headers=tapi.admin)
        assert (bad.status_code, bad.json()["reason"]) == (400, "request.invalid"), params
