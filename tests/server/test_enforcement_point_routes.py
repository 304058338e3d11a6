"""``POST /v1/decide`` is for registered enforcement points, about their own URLs; the
admin API registers them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server.conftest import Api
from tests.server.task_fixtures import FINANCE, READ, TaskApi
from zerolane.server.deployment import Deployment
from zerolane.tasks.decisions import DecideInput
from zerolane.tokens.rfc9449 import make_proof

REPORT = f"{FINANCE}/reports/q3"


@pytest.fixture
def tapi(api: Api) -> TaskApi:
    return TaskApi(api)


def _body(tapi: TaskApi, url: str = REPORT) -> tuple[dict[str, Any], str]:
    task = tapi.opened()
    proof = make_proof(task.holder.key, method="GET", url=url, access_token=task.token)
    body = {"token": task.token, "dpop": proof, "request": {"method": "GET", "url": url, **READ}}
    return body, task.task_id


def _calls(tapi: TaskApi, task_id: str) -> int:
    return tapi.deployment.lifecycle.get(task_id).calls_used


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer zlep_guessed"},
        {"Authorization": "DPoP zlep_x"},
        "admin",  # the admin credential is no enforcement point's
        "agent",  # nor is the agent's own task token
    ],
)
def test_only_an_enforcement_point_may_ask(tapi: TaskApi, headers: Any) -> None:
    body, task_id = _body(tapi)
    if headers == "admin":
        headers = tapi.admin
    elif headers == "agent":
        headers = {"Authorization": f"Bearer {body['token']}"}
    refused = tapi.client.post("/v1/decide", json=body, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["reason"] == "enforcement_point.credential"
    assert _calls(tapi, task_id) == 0  # nothing decided, nothing spent
    # the twin: the same request, asked by the enforcement point, is allowed
    allowed = tapi.client.post("/v1/decide", json=body, headers=tapi.point)
    assert allowed.json()["decision"] == "allow"
    assert _calls(tapi, task_id) == 1


def test_a_point_is_refused_a_url_it_does_not_serve(tapi: TaskApi) -> None:
    credential, _ = tapi.deployment.enforcement_points.add(
        "wiki-proxy", ["https://wiki.example.org"], tapi.admin_actor
    )
    body, task_id = _body(tapi)  # a proof made for the finance API's URL
    other = {"Authorization": f"Bearer {credential}"}
    refused = tapi.client.post("/v1/decide", json=body, headers=other)
    assert (refused.status_code, refused.json()["reason"]) == (403, "enforcement_point.url")
    assert _calls(tapi, task_id) == 0
    # the proof was not spent by the refusal: the point that serves the URL may use it
    assert tapi.client.post("/v1/decide", json=body, headers=tapi.point).json()["decision"] == (
        "allow"
    )


def test_a_proof_spent_at_a_gateway_is_refused_at_decide(tapi: TaskApi) -> None:
    """The attack of issue 10: a proof spent at a standalone enforcement point (its own
    process over the same home) is not accepted once more at ``/v1/decide``."""
    body, task_id = _body(tapi)
    gateway = Deployment.open(tapi.deployment.home, tapi.deployment.clock)
    try:
        decided = gateway.decider.decide(
            body["token"],
            body["dpop"],
            DecideInput("GET", REPORT, action=READ["action"], sensitivity=READ["sensitivity"]),
        )
        assert decided.allowed
    finally:
        gateway.close()
    replayed = tapi.client.post("/v1/decide", json=body, headers=tapi.point).json()
    assert (replayed["decision"], replayed["reasons"]) == ("deny", ["dpop.replayed"])
    assert _calls(tapi, task_id) == 1
    fresh, _ = _body(tapi)
    assert tapi.client.post("/v1/decide", json=fresh, headers=tapi.point).json()["decision"] == (
        "allow"
    )


def test_the_decision_event_names_the_point_that_asked(tapi: TaskApi) -> None:
    body, _ = _body(tapi)
    assert tapi.client.post("/v1/decide", json=body, headers=tapi.point).json()["decision"] == (
        "allow"
    )
    event = tapi.events("decision")[-1]
    assert event["details"]["enforcement_point"] == "tests"


def test_admins_register_list_and_remove_points(tapi: TaskApi) -> None:
    path = "/v1/admin/enforcement-points"
    body = {"name": "edge", "urls": ["https://api.example.org/v1"]}
    assert tapi.client.post(path, json=body).status_code == 401  # admins only
    added = tapi.client.post(path, json=body, headers=tapi.admin)
    assert added.status_code == 201, added.text
    credential = added.json()["credential"]
    assert added.json()["urls"] == ["https://api.example.org/v1"]

    listed = tapi.client.get(path, headers=tapi.admin).json()
    assert [p["name"] for p in listed] == ["edge", "tests"]
    assert credential not in json.dumps(listed)  # shown once, never again
    assert tapi.client.post(path, json=body, headers=tapi.admin).status_code == 409
    bad = tapi.client.post(path, json={"name": "x", "urls": ["ftp://a"]}, headers=tapi.admin)
    assert (bad.status_code, bad.json()["reason"]) == (400, "enforcement_point.url")

    decide_body, _ = _body(tapi, "https://api.example.org/v1/x")
    asked = {"Authorization": f"Bearer {credential}"}
    assert tapi.client.post("/v1/decide", json=decide_body, headers=asked).status_code == 200
    assert tapi.client.delete(f"{path}/edge", headers=tapi.admin).status_code == 200
    gone = tapi.client.post("/v1/decide", json=decide_body, headers=asked)
    assert (gone.status_code, gone.json()["reason"]) == (401, "enforcement_point.credential")
    missing = tapi.client.delete(f"{path}/edge", headers=tapi.admin)
    assert (missing.status_code, missing.json()["reason"]) == (404, "enforcement_point.unknown")
