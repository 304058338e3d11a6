"""``POST /v1/decide`` in shadow mode: an enforcement point names its route in shadow,
a request the policies deny is answered ``shadow`` (status 200, with what would have
denied it) and read as such by the remote decider and the SDK; an answer that says
shadow without its reasons is refused. Each with its enforced twin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import Api
from tests.server.task_fixtures import FINANCE, TaskApi, playbook
from zerolane.decision import Shadow
from zerolane.errors import Unavailable
from zerolane.gateway.inproc import decision_of
from zerolane.sdk.common import decision_of as sdk_decision_of

ROUTE = "route:finance DELETE /reports/{id}"
DELETE = {"action": "delete", "sensitivity": "internal"}  # outside the task's scope


@pytest.fixture
def tapi(api: Api) -> TaskApi:
    return TaskApi(api)


def test_a_route_in_shadow_is_answered_shadow(tapi: TaskApi) -> None:
    task = tapi.opened()
    url = f"{FINANCE}/reports/q3"
    let = tapi.decide(task, "DELETE", url, shadow=ROUTE, **DELETE)
    assert (let["decision"], let["status"], let["error"]) == ("shadow", 200, None)
    assert let["would_deny"] == ["scope.action"]
    assert let["shadow"] == [ROUTE]
    assert let["reasons"] == []
    read = decision_of(httpx.Response(200, json=let))
    assert read.allowed
    assert read.outcome == "shadow"
    assert read.shadow == Shadow(("scope.action",), (ROUTE,))
    sdk = sdk_decision_of(let)
    assert (sdk.allowed, sdk.would_deny, sdk.shadow) == (True, ("scope.action",), (ROUTE,))
    decided = tapi.events("decision")
    [event] = [e for e in decided if e["details"]["decision_id"] == let["decision_id"]]
    assert event["details"]["enforcement_point"] == "tests"
    assert event["details"]["decision"] == "shadow"

    # the twin: the same request with nothing in shadow is denied
    denied = tapi.decide(task, "DELETE", url, **DELETE)
    assert (denied["decision"], denied["status"]) == ("deny", 403)
    assert (denied["would_deny"], denied["shadow"]) == ([], [])
    assert decision_of(httpx.Response(200, json=denied)).shadow is None
    assert not sdk_decision_of(denied).allowed


@pytest.mark.parametrize(
    "missing",
    [{}, {"would_deny": []}, {"shadow": ["policies"]}, {"would_deny": [1], "shadow": ["x"]}],
)
def test_a_shadow_answer_without_its_reasons_is_refused(missing: dict[str, Any]) -> None:
    body: dict[str, Any] = {
        "decision": "shadow",
        "reasons": [],
        "policies": [],
        "task_id": "t1",
        "decision_id": "d1",
        "status": 200,
        **missing,
    }
    with pytest.raises(Unavailable) as refused:
        decision_of(httpx.Response(200, json=body))
    assert refused.value.reason == "decide.response"
    # the twin: with both named, it is a shadow allow
    body |= {"would_deny": ["scope.action"], "shadow": ["policies"]}
    assert decision_of(httpx.Response(200, json=body)).outcome == "shadow"


def test_a_shadow_name_is_bounded(tapi: TaskApi) -> None:
    task = tapi.opened()
    url = f"{FINANCE}/reports/q3"
    body = {"token": task.token, "request": {"method": "GET", "url": url, "shadow": ""}}
    refused = tapi.client.post("/v1/decide", json=body, headers=tapi.point)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "request.invalid"


def test_a_task_of_a_playbook_in_shadow_shows_its_mode(tapi: TaskApi) -> None:
    tapi.apply_playbook(playbook(name="finance-trial", mode="shadow"))
    trial = tapi.opened(playbook="finance-trial")
    plain = tapi.opened()
    shown = tapi.client.get(f"/v1/admin/tasks/{trial.task_id}", headers=tapi.admin).json()
    assert shown["mode"] == "shadow"
    twin = tapi.client.get(f"/v1/admin/tasks/{plain.task_id}", headers=tapi.admin).json()
    assert twin["mode"] == "enforce"
    # and what the mode says holds: the trial task's deny is let through
    url = f"{FINANCE}/reports/q3"
    assert tapi.decide(trial, "DELETE", url, **DELETE)["decision"] == "shadow"
    assert tapi.decide(plain, "DELETE", url, **DELETE)["decision"] == "deny"
