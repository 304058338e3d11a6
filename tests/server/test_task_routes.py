"""The task API: open, complete, decide and the admin endpoints, over the TestClient.

Every refusal is a 4xx with a stable ``reason`` and leaves no task behind; each has a
legitimate twin that goes through.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.clocks import AheadClock
from tests.server.conftest import AGENT, Api, serving
from tests.server.task_fixtures import (
    ADMIN,
    BASE,
    FINANCE,
    INTENT,
    JOB,
    OTHER_AGENT,
    PLAYBOOK,
    READ,
    SLACK,
    TASKS_URL,
    Opened,
    TaskApi,
    Workload,
    claims_of,
    dpop,
    playbook,
)
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import make_proof, proof_jwk
from zerolane.types import TaskState

REPORT = f"{FINANCE}/reports/q3"


@pytest.fixture
def tapi(api: Api) -> TaskApi:
    return TaskApi(api)


def stored_tasks(tapi: TaskApi, owner: str = AGENT) -> list[Any]:
    return tapi.deployment.lifecycle.list(owner=owner)


# --- opening a task ---------------------------------------------------------------------


def test_open_task_grants_a_key_bound_token(tapi: TaskApi) -> None:
    agent = tapi.attest()
    reply = tapi.open(agent)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["token_type"] == "DPoP"
    assert 295 <= body["expires_in"] <= 300
    assert body["scope"] == {
        "actions": ["read", "write"],
        "resources": ["pages/*", "reports/*", "services/*"],
        "destinations": ["finance.example.org", "hooks.slack.com", "wiki.example.org"],
        "data_ceiling": "confidential",
    }
    assert jwt.get_unverified_header(body["token"])["typ"] == "at+jwt"
    claims = claims_of(body["token"])
    assert claims["sub"] == AGENT
    assert claims["task"] == body["task_id"]
    assert claims["cnf"]["jkt"] == thumbprint(proof_jwk(agent.key))
    assert claims["exp"] == body["expires_at"]
    assert claims["iss"] == "spiffe://example.org"
    assert "spiffe://example.org" in claims["aud"]
    assert "act" not in claims or not claims["act"]
    task = tapi.deployment.lifecycle.get(body["task_id"])
    assert task.state is TaskState.ACTIVE
    assert task.intent == INTENT
    assert task.max_calls == PLAYBOOK["max_calls"]
    opened = tapi.events("task.opened")
    assert [e["subject"] for e in opened] == [body["task_id"]]


def test_open_task_with_a_narrower_scope_gets_exactly_that(tapi: TaskApi) -> None:
    details = {
        "type": "zerolane_task",
        "actions": ["read"],
        "locations": ["finance.example.org"],
        "identifier": "reports/q3",
        "datatypes": ["public", "internal"],
    }
    task = tapi.opened(authorization_details=[details], ttl=60, max_calls=3)
    assert task.body["scope"] == {
        "actions": ["read"],
        "resources": ["reports/q3"],
        "destinations": ["finance.example.org"],
        "data_ceiling": "internal",
    }
    assert 55 <= task.body["expires_in"] <= 60
    assert tapi.deployment.lifecycle.get(task.task_id).max_calls == 3
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    other = tapi.decide(task, "GET", f"{FINANCE}/reports/q4", **READ)
    assert other["reasons"] == ["scope.resource"]


HeaderCase = Callable[[Workload, ec.EllipticCurvePrivateKey], dict[str, str]]


def _proof(workload: Workload, **changes: Any) -> str:
    args: dict[str, Any] = {
        "method": "POST",
        "url": TASKS_URL,
        "access_token": workload.svid,
        **changes,
    }
    key = args.pop("key", workload.key)
    return make_proof(key, **args)


HEADER_CASES: list[tuple[str, HeaderCase, str]] = [
    ("no Authorization", lambda w, _: {"DPoP": _proof(w)}, "auth.missing"),
    (
        "Bearer scheme",
        lambda w, _: {"Authorization": f"Bearer {w.svid}", "DPoP": _proof(w)},
        "auth.scheme",
    ),
    ("no DPoP proof", lambda w, _: {"Authorization": f"DPoP {w.svid}"}, "dpop.missing"),
    (
        "proof for another URL",
        lambda w, _: {
            "Authorization": f"DPoP {w.svid}",
            "DPoP": _proof(w, url=f"{BASE}/v1/decide"),
        },
        "dpop.htu",
    ),
    (
        "proof for another host",
        lambda w, _: {
            "Authorization": f"DPoP {w.svid}",
            "DPoP": _proof(w, url="http://attacker.example/v1/tasks"),
        },
        "dpop.htu",
    ),
    (
        "proof for another method",
        lambda w, _: {"Authorization": f"DPoP {w.svid}", "DPoP": _proof(w, method="GET")},
        "dpop.htm",
    ),
    (
        "proof signed by another key",
        lambda w, other: {"Authorization": f"DPoP {w.svid}", "DPoP": _proof(w, key=other)},
        "dpop.key_mismatch",
    ),
    (
        "proof not bound to the SVID",
        lambda w, _: {"Authorization": f"DPoP {w.svid}", "DPoP": _proof(w, access_token=None)},
        "dpop.ath",
    ),
    (
        "proof two minutes old",
        lambda w, _: {
            "Authorization": f"DPoP {w.svid}",
            "DPoP": _proof(w, iat=int(time.time()) - 120),
        },
        "dpop.iat",
    ),
    (
        "proof is garbage",
        lambda w, _: {"Authorization": f"DPoP {w.svid}", "DPoP": "not.a.proof"},
        "dpop.malformed",
    ),
]


@pytest.mark.parametrize(
    ("make_headers", "reason"),
    [pytest.param(make, reason, id=name) for name, make, reason in HEADER_CASES],
)
def test_bad_credentials_for_opening_are_401_with_a_reason(
    tapi: TaskApi, make_headers: HeaderCase, reason: str
) -> None:
    agent = tapi.attest()
    other = ec.generate_private_key(ec.SECP256R1())
    reply = tapi.open(agent, headers=make_headers(agent, other))
    assert reply.status_code == 401, reply.text
    assert reply.json()["reason"] == reason
    assert "WWW-Authenticate" in reply.headers
    assert "token" not in reply.json()
    assert stored_tasks(tapi) == []
    # the legitimate twin: the same workload, a proper proof
    assert tapi.open(agent).status_code == 201


def test_a_forged_svid_is_refused(tapi: TaskApi) -> None:
    agent = tapi.attest()
    header, payload, _ = agent.svid.split(".")
    forged = Workload(agent.spiffe_id, agent.key, f"{header}.{payload}.AAAA")
    reply = tapi.open(forged)
    assert reply.status_code == 401
    assert reply.json()["reason"] == "jws.signature"
    assert stored_tasks(tapi) == []


def test_a_replayed_open_request_is_refused(tapi: TaskApi) -> None:
    agent = tapi.attest()
    headers = dpop(agent.key, agent.svid, "POST", TASKS_URL)
    assert tapi.open(agent, headers=headers).status_code == 201
    replay = tapi.open(agent, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["reason"] == "dpop.replayed"
    assert len(stored_tasks(tapi)) == 1


def test_an_svid_without_cnf_cannot_open_a_task(tapi: TaskApi) -> None:
    unbound = tapi.attest(bind=False)
    assert "cnf" not in claims_of(unbound.svid)
    reply = tapi.open(unbound)
    assert reply.status_code == 401
    assert reply.json()["reason"] == "svid.unbound"
    assert stored_tasks(tapi) == []


def test_a_task_token_cannot_open_another_task(tapi: TaskApi) -> None:
    task = tapi.opened()
    headers = dpop(task.holder.key, task.token, "POST", TASKS_URL)
    reply = tapi.open(task.holder, headers=headers)
    assert reply.status_code == 401
    assert reply.json()["reason"] == "svid.typ"
    assert len(stored_tasks(tapi)) == 1


def _ad(**fields: Any) -> list[dict[str, Any]]:
    return [{"type": "zerolane_task", **fields}]


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"playbook": PLAYBOOK["name"], "intent": INTENT, **changes}
    return {k: v for k, v in body.items() if v is not None}


BODY_CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("unknown playbook", _body(playbook="payroll-export"), 404, "playbook.unknown"),
    ("action outside", _body(authorization_details=_ad(actions=["read", "delete"])), 403,
     "scope.action"),
    ("destination outside", _body(authorization_details=_ad(locations=["evil.example"])), 403,
     "scope.destination"),
    ("resource outside", _body(authorization_details=_ad(identifier="secrets/*")), 403,
     "scope.resource"),
    ("wider resource", _body(authorization_details=_ad(resources=["reports/**"])), 403,
     "scope.resource"),
    ("data over ceiling", _body(authorization_details=_ad(datatypes=["restricted"])), 403,
     "scope.sensitivity"),
    ("ttl over max", _body(ttl=15 * 60 + 1), 403, "scope.ttl"),
    ("max_calls over max", _body(max_calls=21), 403, "scope.max_calls"),
    ("unknown field", _body(scope="everything"), 400, "request.unknown_field"),
    ("empty intent", _body(intent=""), 400, "task.intent"),
    ("blank intent", _body(intent="  \n\t "), 400, "task.intent"),
    ("no intent", {"playbook": PLAYBOOK["name"]}, 400, "request.invalid"),
    ("intent too long", _body(intent="x" * 2001), 400, "request.invalid"),
    ("ttl zero", _body(ttl=0), 400, "request.invalid"),
    ("ttl a string", _body(ttl="60"), 400, "request.invalid"),
    ("two entries", _body(authorization_details=_ad() + _ad()), 400,
     "authorization_details.count"),
    ("wrong type", _body(authorization_details=[{"type": "payment"}]), 400,
     "authorization_details.type"),
    ("unknown detail field", _body(authorization_details=_ad(amount=5)), 400,
     "authorization_details.unknown_field"),
    ("empty action list", _body(authorization_details=_ad(actions=[])), 400,
     "authorization_details.field"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [pytest.param(body, status, reason, id=name) for name, body, status, reason in BODY_CASES],
)
def test_bad_open_requests_are_refused_not_narrowed(
    tapi: TaskApi, body: dict[str, Any], status: int, reason: str
) -> None:
    agent = tapi.attest()
    reply = tapi.open(agent, body)
    assert reply.status_code == status, reply.text
    assert reply.json()["reason"] == reason
    assert "token" not in reply.json()
    assert stored_tasks(tapi) == []
    assert tapi.open(agent).status_code == 201


def test_refusals_past_authentication_are_audited(tapi: TaskApi) -> None:
    agent = tapi.attest()
    tapi.open(agent, _body(authorization_details=_ad(actions=["delete"])))
    tapi.open(agent, _body(ttl=3600))
    refused = tapi.events("task.open")
    assert [(e["outcome"], e["reason"]) for e in refused] == [
        ("denied", "scope.action"),
        ("denied", "scope.ttl"),
    ]
    assert {e["actor"]["id"] for e in refused} == {AGENT}


def test_a_workload_outside_the_openers_is_refused_by_policy(tapi: TaskApi) -> None:
    job = tapi.attest(JOB)
    reply = tapi.open(job)
    assert reply.status_code == 403
    assert reply.json()["reason"] == "grant.no_permit"
    assert stored_tasks(tapi, JOB) == []
    tapi.apply_playbook(playbook(openers={"spiffe_ids": ["spiffe://example.org/jobs/*"]}))
    assert tapi.open(job).status_code == 201


def test_a_disabled_workload_cannot_open(tapi: TaskApi) -> None:
    agent = tapi.attest()
    tapi.deployment.disable_workload(AGENT, actor=ADMIN)
    reply = tapi.open(agent)
    assert reply.status_code == 403
    assert reply.json()["reason"] == "workload.disabled"
    assert stored_tasks(tapi) == []


def test_behind_a_proxy_proofs_name_the_public_url(
    tapi: TaskApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = "https://zerolane.example.org/"
    config = tapi.deployment.config
    server = dataclasses.replace(config.server, public_url=public)
    monkeypatch.setattr(tapi.deployment, "config", dataclasses.replace(config, server=server))
    agent = tapi.attest()
    internal = tapi.open(agent)  # a proof for the URL the request reached internally
    assert (internal.status_code, internal.json()["reason"]) == (401, "dpop.htu")
    outside = "https://zerolane.example.org/v1/tasks"
    opened = tapi.open(agent, headers=dpop(agent.key, agent.svid, "POST", outside))
    assert opened.status_code == 201, opened.text
    task_id, token = opened.json()["task_id"], opened.json()["token"]
    path = f"/v1/tasks/{task_id}/complete"
    done = tapi.client.post(path, headers=dpop(agent.key, token, "POST", public.rstrip("/") + path))
    assert done.status_code == 200, done.text


# --- completing a task ------------------------------------------------------------------


def test_complete_ends_the_task_once(tapi: TaskApi) -> None:
    task = tapi.opened()
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    done = tapi.complete(task.task_id, task.token, task.holder.key)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["state"] == "completed"
    assert body["end_reason"] == "completed"
    assert body["calls_used"] == 1
    assert body["ended_at"] is not None
    again = tapi.complete(task.task_id, task.token, task.holder.key)
    assert again.status_code == 409
    assert again.json()["reason"] == "task.ended"
    after = tapi.decide(task, "GET", REPORT, **READ)
    assert (after["decision"], after["reasons"], after["status"]) == (
        "deny",
        ["task.completed"],
        403,
    )
    assert [e["subject"] for e in tapi.events("task.completed")] == [task.task_id]


def test_another_tasks_token_cannot_complete_it(tapi: TaskApi) -> None:
    mine = tapi.opened()
    sibling = tapi.opened(mine.holder)  # same workload, another task
    stranger = tapi.opened(tapi.attest(OTHER_AGENT))
    for thief in (sibling, stranger):
        reply = tapi.complete(mine.task_id, thief.token, thief.holder.key)
        assert reply.status_code == 403
        assert reply.json()["reason"] == "task.not_yours"
    assert tapi.deployment.lifecycle.get(mine.task_id).state is TaskState.ACTIVE
    assert tapi.complete(mine.task_id, mine.token, mine.holder.key).status_code == 200


@pytest.mark.parametrize(
    ("make_headers", "status", "reason"),
    [
        pytest.param(lambda t, url: {}, 401, "auth.missing", id="no credentials"),
        pytest.param(
            lambda t, url: {"Authorization": f"DPoP {t.token}"}, 401, "dpop.missing", id="no proof"
        ),
        pytest.param(
            lambda t, url: {**dpop(t.holder.key, t.token, "POST", url), "Authorization": "x"},
            401,
            "auth.scheme",
            id="bad scheme",
        ),
        pytest.param(
            lambda t, url: dpop(t.holder.key, t.token, "POST", TASKS_URL),
            401,
            "dpop.htu",
            id="proof for the open URL",
        ),
        pytest.param(
            lambda t, url: dpop(t.holder.key, t.holder.svid, "POST", url),
            401,
            "token.typ",
            id="the SVID instead of the task token",
        ),
        pytest.param(
            lambda t, url: dpop(ec.generate_private_key(ec.SECP256R1()), t.token, "POST", url),
            401,
            "dpop.key_mismatch",
            id="a stolen token with the thief's key",
        ),
    ],
)
def test_completing_needs_the_task_token_and_its_proof(
    tapi: TaskApi, make_headers: Callable[[Opened, str], dict[str, str]], status: int, reason: str
) -> None:
    task = tapi.opened()
    url = f"{BASE}/v1/tasks/{task.task_id}/complete"
    reply = tapi.client.post(f"/v1/tasks/{task.task_id}/complete", headers=make_headers(task, url))
    assert reply.status_code == status, reply.text
    assert reply.json()["reason"] == reason
    assert tapi.deployment.lifecycle.get(task.task_id).state is TaskState.ACTIVE
    assert tapi.complete(task.task_id, task.token, task.holder.key).status_code == 200


# --- deciding requests ------------------------------------------------------------------


def test_decide_allows_an_in_scope_request_and_spends_a_call(tapi: TaskApi) -> None:
    task = tapi.opened()
    decision = tapi.decide(task, "GET", REPORT, **READ)
    assert decision["decision"] == "allow"
    assert decision["reasons"] == []
    assert decision["policies"]
    assert decision["task_id"] == task.task_id
    assert decision["status"] == 200
    assert decision["decision_id"]
    assert tapi.deployment.lifecycle.get(task.task_id).calls_used == 1
    # a plain request, mapped from the method and URL
    mapped = tapi.decide(task, "GET", REPORT, action="read")
    assert mapped["decision"] == "allow"
    events = tapi.events("decision")
    assert [e["details"]["decision_id"] for e in events] == [
        decision["decision_id"],
        mapped["decision_id"],
    ]


@pytest.mark.parametrize(
    ("method", "url", "mapping", "reason"),
    [
        ("DELETE", REPORT, {"action": "delete"}, "scope.action"),
        ("GET", REPORT, {}, "scope.action"),  # http:GET is not an action of the playbook
        ("GET", f"{FINANCE}/payroll/2024", {"action": "read"}, "scope.resource"),
        ("GET", "https://evil.example/reports/q3", {"action": "read"}, "scope.destination"),
        ("GET", REPORT, {"action": "read", "sensitivity": "restricted"}, "scope.sensitivity"),
        ("GET", f"{FINANCE}/reports/..%2fpayroll", {"action": "read"}, "request.path"),
        ("GET", REPORT, {"action": "read", "sensitivity": "secret"}, "request.sensitivity"),
    ],
)
def test_decide_denies_with_reasons(
    tapi: TaskApi, method: str, url: str, mapping: dict[str, str], reason: str
) -> None:
    task = tapi.opened()
    decision = tapi.decide(task, method, url, **mapping)
    assert decision["decision"] == "deny"
    assert reason in decision["reasons"]
    # an unsafe path is 400 as at every enforcement point (the one path rule)
    assert decision["status"] == (400 if reason == "request.path" else 403)
    assert decision["error"]["reason"] == decision["reasons"][0]
    assert decision["task_id"] == task.task_id
    assert tapi.deployment.lifecycle.get(task.task_id).calls_used == 0
    # the allowed twin
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"


def test_no_egress_after_a_confidential_read(tapi: TaskApi) -> None:
    task = tapi.opened()
    post = {"action": "write", "sensitivity": "public"}
    assert tapi.decide(task, "POST", f"{SLACK}/services/status", **post)["decision"] == "allow"
    confidential = {"action": "read", "sensitivity": "confidential"}
    assert tapi.decide(task, "GET", f"{FINANCE}/reports/raw", **confidential)["decision"] == "allow"
    egress = tapi.decide(task, "POST", f"{SLACK}/services/status", **post)
    assert egress["decision"] == "deny"
    assert egress["reasons"] == ["flow.egress_after_sensitive_read"]
    assert egress["policies"] == ["flow.egress_after_sensitive_read"]
    assert egress["status"] == 403


def test_budget_is_spent_per_allowed_request(tapi: TaskApi) -> None:
    task = tapi.opened(max_calls=2)
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    assert tapi.decide(task, "DELETE", REPORT, action="delete")["decision"] == "deny"
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    spent = tapi.decide(task, "GET", REPORT, **READ)
    assert (spent["reasons"], spent["status"]) == (["task.budget_exhausted"], 403)


def test_expiry_is_enforced_at_decision_time(tmp_path: Path) -> None:
    clock = AheadClock()
    with serving(tmp_path / "home", clock) as api:
        tapi = TaskApi(api)
        task = tapi.opened(ttl=3, on_behalf_of="alice@example.org")
        assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
        clock.past(task.body["expires_at"])
        late = tapi.decide(task, "GET", REPORT, **READ)  # the token is still within its leeway
        assert (late["decision"], late["reasons"]) == ("deny", ["task.expired"])
        assert late["status"] == 403
        shown = tapi.client.get(f"/v1/admin/tasks/{task.task_id}", headers=tapi.admin).json()
        assert (shown["state"], shown["on_behalf_of"]) == ("expired", "alice@example.org")


Credentials = Callable[[Opened], tuple[str, str | None]]


def _signed(key: ec.EllipticCurvePrivateKey, token: str, url: str = REPORT) -> str:
    return make_proof(key, method="GET", url=url, access_token=token)


def _thief() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [
        pytest.param(lambda t: (t.token, None), "dpop.missing", id="no proof"),
        pytest.param(
            lambda t: (t.token, _signed(t.holder.key, t.token, f"{FINANCE}/x")),
            "dpop.htu",
            id="proof for another URL",
        ),
        pytest.param(
            lambda t: (t.token, _signed(_thief(), t.token)), "dpop.key_mismatch", id="stolen token"
        ),
        pytest.param(
            lambda t: (t.token, _signed(t.holder.key, "other")), "dpop.ath", id="proof for no token"
        ),
        pytest.param(
            lambda t: ("a.b.c", _signed(t.holder.key, "a.b.c")), "token.malformed", id="garbage"
        ),
        pytest.param(
            lambda t: (t.holder.svid, _signed(t.holder.key, t.holder.svid)),
            "token.typ",
            id="SVID only: no task, no access",
        ),
    ],
)
def test_decide_hints_401_for_credential_problems(
    tapi: TaskApi, credentials: Credentials, reason: str
) -> None:
    task = tapi.opened()
    token, proof = credentials(task)
    decision = tapi.decide(task, "GET", REPORT, proof=proof, token=token, **READ)
    assert decision["decision"] == "deny"
    assert decision["reasons"] == [reason]
    assert decision["status"] == 401
    assert tapi.deployment.lifecycle.get(task.task_id).calls_used == 0
    assert tapi.decide(task, "GET", REPORT, **READ)["status"] == 200


def test_a_replayed_decision_request_is_refused(tapi: TaskApi) -> None:
    task = tapi.opened()
    proof = make_proof(task.holder.key, method="GET", url=REPORT, access_token=task.token)
    assert tapi.decide(task, "GET", REPORT, proof=proof, **READ)["decision"] == "allow"
    replay = tapi.decide(task, "GET", REPORT, proof=proof, **READ)
    assert (replay["decision"], replay["reasons"], replay["status"]) == (
        "deny",
        ["dpop.replayed"],
        401,
    )


def test_decide_checks_the_audience_it_is_told(tapi: TaskApi) -> None:
    task = tapi.opened(audience=["https://gateway.example.org"])
    body = {
        "token": task.token,
        "dpop": make_proof(task.holder.key, method="GET", url=REPORT, access_token=task.token),
        "request": {"method": "GET", "url": REPORT, **READ},
        "audience": "https://other-gateway.example.org",
    }
    refused = tapi.client.post("/v1/decide", json=body, headers=tapi.point).json()
    assert (refused["reasons"], refused["status"]) == (["token.audience"], 401)
    body["audience"] = "https://gateway.example.org"
    body["dpop"] = make_proof(task.holder.key, method="GET", url=REPORT, access_token=task.token)
    assert tapi.client.post("/v1/decide", json=body, headers=tapi.point).json()["decision"] == (
        "allow"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"token": "t", "request": {"method": "GET", "url": REPORT}, "x": 1},
         "request.unknown_field"),
        ({"token": "t", "request": {"method": "GET", "url": REPORT, "verb": "read"}},
         "request.unknown_field"),
        ({"token": "t"}, "request.invalid"),
        ({"token": 5, "request": {"method": "GET", "url": REPORT}}, "request.invalid"),
    ],
)  # fmt: skip
def test_malformed_decide_bodies_are_400(tapi: TaskApi, body: dict[str, Any], reason: str) -> None:
    reply = tapi.client.post("/v1/decide", json=body, headers=tapi.point)
    assert reply.status_code == 400
    assert reply.json()["reason"] == reason


def test_every_decision_is_audited(tapi: TaskApi) -> None:
    task = tapi.opened()
    tapi.decide(task, "GET", REPORT, **READ)
    tapi.decide(task, "DELETE", REPORT, action="delete")
    tapi.decide(task, "GET", REPORT, proof=None, **READ)
    events = tapi.events("decision")
    assert [(e["outcome"], e["reason"]) for e in events] == [
        ("success", "ok"),
        ("denied", "scope.action"),
        ("denied", "dpop.missing"),
    ]


# --- admin: tasks, playbooks, policies ----------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/v1/admin/tasks"),
    ("GET", "/v1/admin/tasks/{task}"),
    ("POST", "/v1/admin/tasks/{task}/revoke"),
    ("POST", "/v1/admin/playbooks"),
    ("GET", "/v1/admin/playbooks"),
    ("POST", "/v1/admin/policy/reload"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize("credential", [None, "Bearer zla_wrong", "task-token"])
def test_admin_task_endpoints_need_the_admin_credential(
    tapi: TaskApi, method: str, path: str, credential: str | None
) -> None:
    task = tapi.opened()
    headers = {}
    if credential == "task-token":
        headers = dpop(task.holder.key, task.token, method, BASE + path)
    elif credential is not None:
        headers = {"Authorization": credential}
    url = path.format(task=task.task_id)
    kwargs: dict[str, Any] = {"headers": headers}
    if path == "/v1/admin/playbooks" and method == "POST":
        kwargs["json"] = playbook(max_calls=1)
    reply = tapi.client.request(method, url, **kwargs)
    assert reply.status_code == 401, reply.text
    assert reply.json()["reason"] == "admin.credential"
    assert tapi.deployment.lifecycle.get(task.task_id).state is TaskState.ACTIVE
    assert tapi.deployment.playbooks.record(PLAYBOOK["name"]).version == 1
    twin = tapi.client.request(method, url, **{**kwargs, "headers": tapi.admin})
    assert twin.status_code in (200, 201), twin.text


def test_admin_lists_shows_and_revokes_tasks(tapi: TaskApi) -> None:
    first = tapi.opened()
    second = tapi.opened(first.holder)
    theirs = tapi.opened(tapi.attest(OTHER_AGENT))
    tapi.complete(second.task_id, second.token, second.holder.key)

    listed = tapi.client.get("/v1/admin/tasks", headers=tapi.admin).json()
    assert {t["task_id"] for t in listed} == {first.task_id, second.task_id, theirs.task_id}
    mine = tapi.client.get("/v1/admin/tasks", params={"owner": AGENT}, headers=tapi.admin).json()
    assert {t["task_id"] for t in mine} == {first.task_id, second.task_id}
    active = tapi.client.get(
        "/v1/admin/tasks", params={"state": "active"}, headers=tapi.admin
    ).json()
    assert {t["task_id"] for t in active} == {first.task_id, theirs.task_id}
    one = tapi.client.get("/v1/admin/tasks", params={"limit": 1}, headers=tapi.admin).json()
    assert len(one) == 1
    bad = tapi.client.get("/v1/admin/tasks", params={"state": "sleepy"}, headers=tapi.admin)
    assert (bad.status_code, bad.json()["reason"]) == (400, "task.state")

    shown = tapi.client.get(f"/v1/admin/tasks/{first.task_id}", headers=tapi.admin).json()
    assert shown["owner"] == AGENT
    assert shown["intent"] == INTENT
    assert shown["playbook"] == PLAYBOOK["name"]
    assert shown["playbook_version"] == 1
    assert shown["state"] == "active"
    assert shown["scope"]["data_ceiling"] == "confidential"
    missing = tapi.client.get("/v1/admin/tasks/tsk_nope", headers=tapi.admin)
    assert (missing.status_code, missing.json()["reason"]) == (404, "task.unknown")

    assert tapi.decide(first, "GET", REPORT, **READ)["decision"] == "allow"
    revoked = tapi.client.post(f"/v1/admin/tasks/{first.task_id}/revoke", headers=tapi.admin)
    assert revoked.status_code == 200
    assert (revoked.json()["state"], revoked.json()["end_reason"]) == ("revoked", "revoked")
    after = tapi.decide(first, "GET", REPORT, **READ)
    assert (after["decision"], after["reasons"], after["status"]) == (
        "deny",
        ["task.revoked"],
        403,
    )
    again = tapi.client.post(f"/v1/admin/tasks/{first.task_id}/revoke", headers=tapi.admin)
    assert (again.status_code, again.json()["reason"]) == (409, "task.ended")
    ended = tapi.client.post(f"/v1/admin/tasks/{second.task_id}/revoke", headers=tapi.admin)
    assert (ended.status_code, ended.json()["reason"]) == (409, "task.ended")
    unknown = tapi.client.post("/v1/admin/tasks/tsk_nope/revoke", headers=tapi.admin)
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "task.unknown")
    # the owner can no longer complete a revoked task
    late = tapi.complete(first.task_id, first.token, first.holder.key)
    assert (late.status_code, late.json()["reason"]) == (409, "task.ended")
    revocations = tapi.events("task.revoked")
    assert [(e["subject"], e["actor"]["type"]) for e in revocations] == [(first.task_id, "admin")]


def test_admin_applies_and_lists_playbooks_through_the_api(tapi: TaskApi) -> None:
    doc = playbook(name="wiki-cleanup", actions=["read"], max_calls=5, max_ttl="1m")
    created = tapi.client.post("/v1/admin/playbooks", json=doc, headers=tapi.admin)
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "wiki-cleanup", "version": 1, "warnings": []}
    again = tapi.client.post("/v1/admin/playbooks", json=doc, headers=tapi.admin)
    assert again.json()["version"] == 1  # unchanged: the same version
    updated = tapi.client.post(
        "/v1/admin/playbooks",
        json={**doc, "max_calls": 3, "actions": ["read", "GET"]},
        headers=tapi.admin,
    )
    assert updated.json()["version"] == 2
    [warning] = updated.json()["warnings"]  # applied, with the likely mistake said
    assert warning.startswith("actions: 'GET' is a bare HTTP method")

    listed = tapi.client.get("/v1/admin/playbooks", headers=tapi.admin).json()
    by_name = {p["name"]: p for p in listed}
    assert set(by_name) == {"quarterly-report", "wiki-cleanup"}
    assert by_name["wiki-cleanup"]["version"] == 2
    assert by_name["wiki-cleanup"]["max_calls"] == 3
    assert by_name["wiki-cleanup"]["actions"] == ["GET", "read"]
    assert by_name["quarterly-report"]["version"] == 1

    agent = tapi.attest()
    task = tapi.opened(agent, playbook="wiki-cleanup")
    assert task.body["scope"]["actions"] == ["GET", "read"]
    shown = tapi.client.get(f"/v1/admin/tasks/{task.task_id}", headers=tapi.admin).json()
    assert (shown["playbook_version"], shown["max_calls"]) == (2, 3)
    over = tapi.open(agent, _body(playbook="wiki-cleanup", max_calls=4))
    assert (over.status_code, over.json()["reason"]) == (403, "scope.max_calls")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (playbook(data_ceiling="top-secret"), "playbook.field"),
        (playbook(max_ttl="8d"), "playbook.ttl"),
        (playbook(surprise=True), "playbook.unknown_key"),
        ({"name": "x"}, "playbook.missing"),
    ],
)
def test_invalid_playbooks_are_refused_by_the_api(
    tapi: TaskApi, document: dict[str, Any], reason: str
) -> None:
    reply = tapi.client.post("/v1/admin/playbooks", json=document, headers=tapi.admin)
    assert reply.status_code == 400, reply.text
    assert reply.json()["reason"] == reason
    assert tapi.deployment.playbooks.record(PLAYBOOK["name"]).version == 1
    listed = tapi.client.get("/v1/admin/playbooks", headers=tapi.admin).json()
    assert [p["name"] for p in listed] == [PLAYBOOK["name"]]


def test_a_playbook_body_that_is_not_an_object_is_400(tapi: TaskApi) -> None:
    reply = tapi.client.post("/v1/admin/playbooks", json=[PLAYBOOK], headers=tapi.admin)
    assert reply.status_code == 400
    assert reply.json()["reason"] == "request.invalid"


NO_SLACK = """
@id("test.no_slack")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.destination == "hooks.slack.com" };
"""
SCHEMA_INVALID = """
@id("test.broken")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.no_such_attribute == "x" };
"""


def _policy_dir(tapi: TaskApi) -> Path:
    deployment = tapi.deployment
    return deployment.home / deployment.config.policy_dir


def test_policy_reload_swaps_in_valid_policies_and_keeps_them_on_error(tapi: TaskApi) -> None:
    post = {"action": "write", "sensitivity": "public"}
    task = tapi.opened()
    assert tapi.decide(task, "POST", f"{SLACK}/services/s", **post)["decision"] == "allow"
    before = tapi.deployment.engine.version

    same = tapi.client.post("/v1/admin/policy/reload", headers=tapi.admin)
    assert same.status_code == 200
    assert same.json() == {"version": before}

    (_policy_dir(tapi) / "no_slack.cedar").write_text(NO_SLACK)
    reloaded = tapi.client.post("/v1/admin/policy/reload", headers=tapi.admin)
    assert reloaded.status_code == 200, reloaded.text
    version = reloaded.json()["version"]
    assert version != before
    assert tapi.deployment.engine.version == version
    denied = tapi.decide(task, "POST", f"{SLACK}/services/s", **post)
    assert (denied["decision"], denied["reasons"]) == ("deny", ["test.no_slack"])

    (_policy_dir(tapi) / "broken.cedar").write_text(SCHEMA_INVALID)
    refused = tapi.client.post("/v1/admin/policy/reload", headers=tapi.admin)
    assert refused.status_code == 400, refused.text
    assert refused.json()["reason"] == "policy.invalid"
    assert "no_such_attribute" in refused.json()["message"]
    assert tapi.deployment.engine.version == version
    # decisions keep working with the last good set: same allows, same denials
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    still = tapi.decide(task, "POST", f"{SLACK}/services/s", **post)
    assert (still["decision"], still["reasons"]) == ("deny", ["test.no_slack"])
    assert tapi.opened(task.holder).task_id

    reloads = tapi.events("policy.reloaded")
    assert [(e["outcome"], e["reason"]) for e in reloads] == [
        ("success", "ok"),
        ("success", "ok"),
        ("failure", "policy.invalid"),
    ]
    assert reloads[-1]["details"]["active_version"] == version


def _expired_copy(tapi: TaskApi, task: Opened) -> str:
    """Store a copy of ``task`` whose window has passed (expiry is never written)."""
    record = tapi.deployment.lifecycle.get(task.task_id)
    past = time.time() - 60
    expired = dataclasses.replace(
        record, task_id=record.task_id + "x", created_at=past - 300, expires_at=past
    )
    tapi.deployment.stores.add_task(expired)
    return expired.task_id


def test_listing_by_state_filters_on_the_state_it_shows(tapi: TaskApi) -> None:
    live = tapi.opened()
    expired = _expired_copy(tapi, live)
    shown = tapi.client.get(f"/v1/admin/tasks/{expired}", headers=tapi.admin).json()
    assert shown["state"] == "expired"

    def listed(state: str) -> dict[str, str]:
        reply = tapi.client.get("/v1/admin/tasks", params={"state": state}, headers=tapi.admin)
        assert reply.status_code == 200, reply.text
        return {t["task_id"]: t["state"] for t in reply.json()}

    assert listed("active") == {live.task_id: "active"}
    assert listed("expired") == {expired: "expired"}
    assert listed("completed") == {}
    everything = tapi.client.get("/v1/admin/tasks", headers=tapi.admin).json()
    assert {t["task_id"]: t["state"] for t in everything} == {
        live.task_id: "active",
        expired: "expired",
    }


def test_disabling_a_workload_through_the_api_ends_its_tasks(tapi: TaskApi) -> None:
    task = tapi.opened()
    assert tapi.decide(task, "GET", REPORT, **READ)["decision"] == "allow"
    reply = tapi.client.post(
        "/v1/admin/workloads/disable", json={"spiffe_id": AGENT}, headers=tapi.admin
    )
    assert reply.status_code == 200
    after = tapi.decide(task, "GET", REPORT, **READ)
    assert (after["decision"], after["reasons"], after["status"]) == (
        "deny",
        ["task.revoked"],
        403,
    )
    assert tapi.deployment.lifecycle.get(task.task_id).end_reason == "workload.disabled"
    refused = tapi.open(task.holder)
    assert (refused.status_code, refused.json()["reason"]) == (403, "workload.disabled")


def test_disabling_a_workload_in_process_ends_its_tasks(tapi: TaskApi) -> None:
    task = tapi.opened()
    tapi.deployment.disable_workload(AGENT, actor=ADMIN)
    after = tapi.decide(task, "GET", REPORT, **READ)
    assert (after["decision"], after["reasons"]) == ("deny", ["task.revoked"])
    assert tapi.deployment.lifecycle.get(task.task_id).end_reason == "workload.disabled"
