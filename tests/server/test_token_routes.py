"""``POST /v1/token`` (RFC 8693) over the TestClient: delegation and a task for a person.

Answers are RFC 8693 section 2.2.1 objects; refusals are RFC 6749 section 5.2 errors
with our ``reason``. Each refusal has its twin that goes through.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm

from tests.server.conftest import AGENT, Api
from tests.server.task_fixtures import (
    ADMIN,
    BASE,
    FINANCE,
    INTENT,
    JOB,
    OTHER_AGENT,
    READ,
    Opened,
    TaskApi,
    Workload,
    claims_of,
    playbook,
)
from zerolane.config import CONFIG_NAME, parse_config, render_config
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment, init_home
from zerolane.tokens.rfc8693 import ACCESS_TOKEN_TYPE, GRANT_TYPE, ID_TOKEN_TYPE, JWT_TYPE
from zerolane.tokens.rfc9449 import make_proof

TOKEN_URL = f"{BASE}/v1/token"
TEAM = "team-report"
IDP = "https://idp.example.org"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def tapi(api: Api) -> TaskApi:
    tapi = TaskApi(api)
    tapi.apply_playbook(playbook(name=TEAM, delegable=True, max_depth=2))
    return tapi


def opened(tapi: TaskApi, holder: Workload, **body: Any) -> Opened:
    return tapi.opened(holder, playbook=TEAM, **body)


def post_token(
    tapi: TaskApi,
    form: dict[str, Any] | list[tuple[str, str]],
    *,
    proof: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    sent = {**FORM, **(headers or {})}
    if proof is not None:
        sent["DPoP"] = proof
    return tapi.client.post("/v1/token", data=form, headers=sent)  # type: ignore[arg-type]


def delegation(parent: Opened, delegate: Workload, **extra: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "grant_type": GRANT_TYPE,
        "subject_token": parent.token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "actor_token": delegate.svid,
        "actor_token_type": JWT_TYPE,
    }
    for name, value in extra.items():
        form[name] = json.dumps(value) if name == "authorization_details" else value
    return form


def delegate(
    tapi: TaskApi,
    parent: Opened,
    to: Workload,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    **extra: Any,
) -> httpx2.Response:
    """The parent's holder exchanges its token for a child for ``to``."""
    proof = make_proof(
        key or parent.holder.key, method="POST", url=TOKEN_URL, access_token=parent.token
    )
    return post_token(tapi, delegation(parent, to, **extra), proof=proof)


def child_of(reply: httpx2.Response, holder: Workload) -> Opened:
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    return Opened(doc["task_id"], doc["access_token"], holder, doc)


def error_of(reply: httpx2.Response) -> tuple[int, str, str]:
    doc = reply.json()
    # RFC 6749's members in the error object every refusal has
    assert set(doc) == {
        "error",
        "error_description",
        "reason",
        "message",
        "reasons",
        "decision_id",
    }, doc
    assert doc["error_description"] == doc["message"]
    assert reply.headers["cache-control"] == "no-store"
    return reply.status_code, doc["error"], doc["reason"]


# ---- granted -----------------------------------------------------------------------------


def test_a_delegation_answers_per_rfc_8693(tapi: TaskApi) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    helper = tapi.attest(OTHER_AGENT)
    asked = [{"type": "zerolane_task", "actions": ["read"], "locations": ["finance.example.org"]}]
    reply = delegate(
        tapi, parent, helper, authorization_details=asked, max_calls="3", ttl="60", intent="Q3"
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["pragma"] == "no-cache"
    doc = reply.json()
    assert doc["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert doc["token_type"] == "DPoP"
    assert doc["expires_in"] in (59, 60)
    assert doc["authorization_details"][0]["actions"] == ["read"]
    task = doc["task"]
    assert (task["parent_id"], task["depth"], task["owner"]) == (parent.task_id, 1, OTHER_AGENT)
    assert (task["max_calls"], task["intent"]) == (3, "Q3")
    claims = claims_of(doc["access_token"])
    assert claims["sub"] == OTHER_AGENT
    assert claims["act"] == {"sub": OTHER_AGENT, "act": {"sub": AGENT}}
    # the delegate uses the child with its own key, through /v1/decide
    child = child_of(reply, helper)
    assert tapi.decide(child, "GET", f"{FINANCE}/reports/q3", **READ)["decision"] == "allow"


def test_the_admin_sees_the_tree(tapi: TaskApi) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    helper = tapi.attest(OTHER_AGENT)
    child = child_of(delegate(tapi, parent, helper, max_calls="2"), helper)
    reply = tapi.client.get(f"/v1/admin/tasks/{parent.task_id}/tree", headers=tapi.admin)
    assert reply.status_code == 200, reply.text
    assert [(t["task_id"], t["depth"]) for t in reply.json()] == [
        (parent.task_id, 0),
        (child.task_id, 1),
    ]
    refused = tapi.client.get(f"/v1/admin/tasks/{parent.task_id}/tree")
    assert refused.status_code == 401


# ---- refused, each with its twin ---------------------------------------------------------


def test_a_stolen_parent_token_without_the_parents_key_is_401(tapi: TaskApi) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    helper = tapi.attest(OTHER_AGENT)
    thief = ec.generate_private_key(ec.SECP256R1())
    assert error_of(delegate(tapi, parent, helper, key=thief)) == (
        401,
        "invalid_dpop_proof",
        "dpop.key_mismatch",
    )
    assert error_of(post_token(tapi, delegation(parent, helper))) == (
        401,
        "invalid_dpop_proof",
        "dpop.missing",
    )
    assert delegate(tapi, parent, helper, max_calls="1").status_code == 200


def test_a_child_token_with_the_parents_key_is_refused_at_decide(tapi: TaskApi) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    helper = tapi.attest(OTHER_AGENT)
    child = child_of(delegate(tapi, parent, helper, max_calls="2"), helper)
    as_parent = Opened(child.task_id, child.token, parent.holder, child.body)
    decided = tapi.decide(as_parent, "GET", f"{FINANCE}/reports/q3", **READ)
    assert (decided["decision"], decided["reasons"], decided["status"]) == (
        "deny",
        ["dpop.key_mismatch"],
        401,
    )
    assert tapi.decide(child, "GET", f"{FINANCE}/reports/q3", **READ)["decision"] == "allow"


@pytest.mark.parametrize(
    ("extra", "status", "error", "reason"),
    [
        (
            {"authorization_details": [{"type": "zerolane_task", "actions": ["delete"]}]},
            403,
            "invalid_scope",
            "scope.action",
        ),
        (
            {"authorization_details": [{"type": "zerolane_task", "identifier": "secrets/*"}]},
            403,
            "invalid_scope",
            "scope.resource",
        ),
        (
            {"authorization_details": [{"type": "zerolane_task", "locations": ["evil.example"]}]},
            403,
            "invalid_scope",
            "scope.destination",
        ),
        (
            {"authorization_details": [{"type": "zerolane_task", "datatypes": ["restricted"]}]},
            403,
            "invalid_scope",
            "scope.sensitivity",
        ),
        ({"audience": "https://elsewhere.example"}, 403, "invalid_target", "scope.audience"),
        ({"ttl": "901"}, 403, "invalid_scope", "delegation.ttl"),
        ({"max_calls": "11"}, 403, "invalid_scope", "delegation.budget"),
        (
            {"authorization_details": [{"type": "other"}]},
            400,
            "invalid_authorization_details",
            "authorization_details.type",
        ),
        ({"scope": "read"}, 400, "invalid_scope", "exchange.scope"),
        ({"resource": "https://gw.example"}, 400, "invalid_target", "exchange.resource"),
        ({"max_call": "1"}, 400, "invalid_request", "exchange.unknown_parameter"),
    ],
)
def test_a_wider_child_is_refused_with_its_oauth_error(
    tapi: TaskApi, extra: dict[str, Any], status: int, error: str, reason: str
) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    helper = tapi.attest(OTHER_AGENT)
    assert error_of(delegate(tapi, parent, helper, **extra)) == (status, error, reason)
    assert tapi.deployment.stores.list_children(parent.task_id) == []
    assert delegate(tapi, parent, helper, max_calls="1").status_code == 200  # the twin


def test_delegating_a_task_of_a_non_delegable_playbook_is_403(tapi: TaskApi) -> None:
    plain = tapi.opened(tapi.attest())  # the fixtures' playbook is not delegable
    helper = tapi.attest(OTHER_AGENT)
    assert error_of(delegate(tapi, plain, helper)) == (
        403,
        "invalid_request",
        "delegation.not_delegable",
    )


def test_delegating_beyond_max_depth_is_403(tapi: TaskApi) -> None:
    a, b = tapi.attest(), tapi.attest(OTHER_AGENT)
    third = "spiffe://example.org/agents/a3"
    tapi.deployment.registry.register(third, selectors=[], owner=None, actor=ADMIN)
    c = tapi.attest(third)
    root = opened(tapi, a, max_calls=10)
    child = child_of(delegate(tapi, root, b, max_calls="6"), b)
    grandchild = child_of(delegate(tapi, child, c, max_calls="3"), c)
    assert error_of(delegate(tapi, grandchild, a, max_calls="1")) == (
        403,
        "invalid_request",
        "delegation.depth",
    )


def test_a_delegate_outside_the_openers_is_refused_by_policy(tapi: TaskApi) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    assert error_of(delegate(tapi, parent, tapi.attest(JOB))) == (
        403,
        "invalid_request",
        "grant.no_permit",
    )


@pytest.mark.parametrize(
    ("body", "headers", "reason", "error"),
    [
        ({"grant_type": "password"}, FORM, "exchange.grant_type", "unsupported_grant_type"),
        ({"grant_type": GRANT_TYPE}, FORM, "exchange.missing", "invalid_request"),
        ({"grant_type": GRANT_TYPE}, {"Content-Type": "application/json"},
         "exchange.content_type", "invalid_request"),
    ],
)  # fmt: skip
def test_malformed_token_requests_are_400(
    tapi: TaskApi, body: dict[str, str], headers: dict[str, str], reason: str, error: str
) -> None:
    reply = tapi.client.post("/v1/token", data=body, headers=headers)
    assert error_of(reply) == (400, error, reason)


def test_two_dpop_headers_are_refused(tapi: TaskApi) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    helper = tapi.attest(OTHER_AGENT)
    proof = make_proof(parent.holder.key, method="POST", url=TOKEN_URL, access_token=parent.token)
    reply = tapi.client.post(
        "/v1/token",
        content=str(httpx2.QueryParams(delegation(parent, helper))),
        headers=[*FORM.items(), ("DPoP", proof), ("DPoP", proof)],
    )
    assert error_of(reply) == (400, "invalid_dpop_proof", "dpop.multiple")


# ---- cascading revocation through the API ------------------------------------------------


def test_completing_the_parent_ends_the_child_at_once(tapi: TaskApi) -> None:
    parent = opened(tapi, tapi.attest(), max_calls=10)
    helper = tapi.attest(OTHER_AGENT)
    child = child_of(delegate(tapi, parent, helper, max_calls="2"), helper)
    url = f"{FINANCE}/reports/q3"
    assert tapi.decide(child, "GET", url, **READ)["decision"] == "allow"
    reply = tapi.complete(parent.task_id, parent.token, parent.holder.key)
    assert reply.status_code == 200, reply.text
    decided = tapi.decide(child, "GET", url, **READ)
    assert (decided["decision"], decided["reasons"]) == ("deny", ["task.revoked"])
    shown = tapi.client.get(f"/v1/admin/tasks/{child.task_id}", headers=tapi.admin).json()
    assert (shown["state"], shown["end_reason"]) == ("revoked", "parent.completed")


def test_revoking_the_root_ends_every_descendant(tapi: TaskApi) -> None:
    a, b = tapi.attest(), tapi.attest(OTHER_AGENT)
    root = opened(tapi, a, max_calls=10)
    child = child_of(delegate(tapi, root, b, max_calls="6"), b)
    grandchild = child_of(delegate(tapi, child, a, max_calls="3"), a)
    reply = tapi.client.post(f"/v1/admin/tasks/{root.task_id}/revoke", headers=tapi.admin)
    assert reply.status_code == 200, reply.text
    for task in (root, child, grandchild):
        decided = tapi.decide(task, "GET", f"{FINANCE}/reports/q3", **READ)
        assert decided["reasons"] == ["task.revoked"]


# ---- on behalf of a person ---------------------------------------------------------------


@pytest.fixture
def people(tmp_path: Path) -> Iterator[tuple[TaskApi, ec.EllipticCurvePrivateKey]]:
    """The API over a home whose config trusts one OpenID provider."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    home = tmp_path / "people"
    first, admin = init_home(home, "example.org")
    first.close()
    (home / "idp.json").write_text(json.dumps({"keys": [jwk]}))
    doc = tomllib.loads((home / CONFIG_NAME).read_text())
    doc["users"] = {
        "issuers": [{"name": "idp", "issuer": IDP, "audience": "zl", "jwks_file": "idp.json"}]
    }
    (home / CONFIG_NAME).write_text(render_config(parse_config(doc)))
    deployment = Deployment.open(home)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    try:
        with TestClient(create_app(deployment), raise_server_exceptions=False) as client:
            yield TaskApi(Api(client, deployment, admin)), key
    finally:
        deployment.close()


def id_token(key: ec.EllipticCurvePrivateKey, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": IDP, "sub": "alice", "aud": "zl", "iat": now, "exp": now + 300, **changes}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})


def for_person(tapi: TaskApi, agent: Workload, token: str, **extra: str) -> httpx2.Response:
    form = {
        "grant_type": GRANT_TYPE,
        "subject_token": token,
        "subject_token_type": ID_TOKEN_TYPE,
        "actor_token": agent.svid,
        "actor_token_type": JWT_TYPE,
        "playbook": "quarterly-report",
        "intent": INTENT,
        **extra,
    }
    proof = make_proof(agent.key, method="POST", url=TOKEN_URL, access_token=agent.svid)
    return post_token(tapi, form, proof=proof)


def test_an_agent_opens_a_task_for_a_person_over_the_api(
    people: tuple[TaskApi, ec.EllipticCurvePrivateKey],
) -> None:
    tapi, key = people
    agent = tapi.attest()
    reply = for_person(tapi, agent, id_token(key))
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["task"]["user"] == {"subject": "alice", "issuer": IDP}
    assert claims_of(doc["access_token"])["act"] == {
        "sub": AGENT,
        "act": {"sub": "alice", "iss": IDP},
    }
    task = Opened(doc["task_id"], doc["access_token"], agent, doc)
    assert tapi.decide(task, "GET", f"{FINANCE}/reports/q3", **READ)["decision"] == "allow"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://other-idp.example"}, "id_token.unknown_issuer"),
        ({"aud": "not-zl"}, "id_token.audience"),
        ({"exp": 1}, "id_token.expired"),
    ],
)
def test_a_bad_id_token_is_401(
    people: tuple[TaskApi, ec.EllipticCurvePrivateKey], changes: dict[str, Any], reason: str
) -> None:
    tapi, key = people
    agent = tapi.attest()
    assert error_of(for_person(tapi, agent, id_token(key, **changes))) == (
        401,
        "invalid_request",
        reason,
    )
    assert for_person(tapi, agent, id_token(key)).status_code == 200
