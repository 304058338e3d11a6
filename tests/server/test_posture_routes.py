"""``GET /v1/admin/posture/inventory``: admins only; the inventory with its findings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.posture.seeded import DAY
from tests.server.conftest import AGENT, Api, serving
from tests.server.task_fixtures import JOB, OTHER_AGENT, TaskApi, dpop
from zerolane.audit.events import Actor


class Later:
    """The system clock, moved forward by the test."""

    def __init__(self) -> None:
        import time

        self._time = time.time
        self.ahead = 0.0

    def now(self) -> float:
        return self._time() + self.ahead


@pytest.fixture
def later() -> Later:
    return Later()


@pytest.fixture
def tasks(tmp_path: Path, later: Later) -> Iterator[TaskApi]:
    with serving(tmp_path / "home", later) as api:
        yield TaskApi(api)


def inventory(api: Api, **params: float) -> dict[str, object]:
    reply = api.client.get("/v1/admin/posture/inventory", params=params, headers=api.auth)
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


def test_admins_only(tasks: TaskApi) -> None:
    reply = tasks.client.get("/v1/admin/posture/inventory")
    assert reply.status_code == 401
    wrong = {"Authorization": "Bearer zla_not-an-admin-credential"}
    assert tasks.client.get("/v1/admin/posture/inventory", headers=wrong).status_code == 401


def test_a_workload_credential_is_no_admin_credential(tasks: TaskApi) -> None:
    opened = tasks.opened()  # a workload's SVID and its task token, each valid
    url = "http://testserver/v1/admin/posture/inventory"
    for token in (opened.holder.svid, opened.token):
        for headers in (
            {"Authorization": f"Bearer {token}"},
            dpop(opened.holder.key, token, "GET", url),
        ):
            reply = tasks.client.get("/v1/admin/posture/inventory", headers=headers)
            assert reply.status_code == 401, reply.text
            assert reply.json()["reason"] == "admin.credential"
    assert tasks.client.get("/v1/admin/posture/inventory", headers=tasks.admin).status_code == 200


def test_the_inventory_of_the_deployment_with_its_findings(tasks: TaskApi, later: Later) -> None:
    tasks.opened()  # AGENT attests and opens a task now
    tasks.deployment.registry.register(
        "spiffe://example.org/owned", selectors=[], owner="team-a", actor=Actor("admin", "t")
    )
    body = inventory(tasks.api)
    rows = {row["spiffe_id"]: row for row in body["workloads"]}  # type: ignore[attr-defined]
    assert set(rows) == {AGENT, OTHER_AGENT, JOB, "spiffe://example.org/owned"}
    assert rows[AGENT]["tasks_opened"] == 1
    assert rows[AGENT]["attestation"] == ["join_token"]
    assert body["dormant_after_days"] == 30  # [detection.dormant] days
    rules = {(f["rule"], f["subject"]) for f in body["findings"]}  # type: ignore[attr-defined]
    assert ("inventory.ownerless", AGENT) in rules
    assert ("inventory.ownerless", "spiffe://example.org/owned") not in rules  # has an owner
    assert not any(rule == "inventory.dormant" for rule, _ in rules)  # all new
    later.ahead = 31 * DAY
    dormant = {
        f["subject"]
        for f in inventory(tasks.api)["findings"]  # type: ignore[attr-defined]
        if f["rule"] == "inventory.dormant"
    }
    assert dormant == {AGENT, OTHER_AGENT, JOB, "spiffe://example.org/owned"}
    # a threshold asked for: 40 days of silence, none is dormant yet
    assert not any(
        f["rule"] == "inventory.dormant"
        for f in inventory(tasks.api, dormant_after_days=40)["findings"]  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("days", ["0", "-1", "3651", "soon", "nan", "inf", "-inf"])
def test_a_threshold_out_of_bounds_is_refused(tasks: TaskApi, days: str) -> None:
    reply = tasks.client.get(
        "/v1/admin/posture/inventory", params={"dormant_after_days": days}, headers=tasks.admin
    )
    assert reply.status_code == 400
    assert reply.json()["reason"] == "request.invalid"
