"""The OAuth endpoints of standard MCP clients, over raw HTTP: each refusal beside the
request that is accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from tests.server.oauth_fixtures import (
    ADMIN,
    AGENTS_PLAYBOOK,
    CLIENT_PLAYBOOK,
    REDIRECT,
    TD,
    Person,
    form_fields,
    oauth_home,
    pkce,
    query_of,
)
from tests.server.task_fixtures import claims_of
from zerolane.audit.log import event_json
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

BASE = "http://testserver"
RESOURCE = "http://127.0.0.1:9/mcp"
TOKEN_URL = f"{BASE}/oauth/token"


class Flow:
    def __init__(self, client: TestClient, deployment: Deployment) -> None:
        self.client = client
        self.deployment = deployment
        self.person = Person(client)

    def register(self, **body: Any) -> dict[str, Any]:
        doc = {"redirect_uris": [REDIRECT], "client_name": "IDE <agent>"} | body
        doc.setdefault("grant_types", ["authorization_code", "refresh_token"])
        reply = self.client.post("/oauth/register", json=doc)
        assert reply.status_code == 201, reply.text
        registered: dict[str, Any] = reply.json()
        return registered

    def authorize_url(self, client_id: str, challenge: str, **params: str) -> str:
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-1",
            "resource": RESOURCE,
        } | params
        return "/oauth/authorize?" + urlencode(query)

    def code(self, client_id: str) -> tuple[str, str]:
        verifier, challenge = pkce()
        answer = self.person.consent(self.authorize_url(client_id, challenge))
        assert answer["state"] == "st-1"
        return answer["code"], verifier

    def token(self, data: dict[str, str], key: ec.EllipticCurvePrivateKey | None = None) -> Any:
        headers = {"DPoP": make_proof(key, method="POST", url=TOKEN_URL)} if key else {}
        return self.client.post("/oauth/token", data=data, headers=headers)

    def exchange(
        self, client_id: str, code: str, verifier: str, key: ec.EllipticCurvePrivateKey | None
    ) -> Any:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "resource": RESOURCE,
        }
        return self.token(data, key)


def _flow(tmp_path: Path, *, bearer: bool) -> Iterator[Flow]:
    deployment = oauth_home(tmp_path / "home", public_url=BASE, resource=RESOURCE, bearer=bearer)
    with TestClient(create_app(deployment), base_url=BASE) as client:
        yield Flow(client, deployment)
    deployment.close()


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    yield from _flow(tmp_path, bearer=False)


@pytest.fixture
def bearer_flow(tmp_path: Path) -> Iterator[Flow]:
    yield from _flow(tmp_path, bearer=True)


def _error(reply: Any) -> tuple[int, str]:
    return reply.status_code, reply.json()["error"]


# metadata and registration


def test_metadata_names_the_endpoints_and_what_is_supported(flow: Flow) -> None:
    meta = flow.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == BASE
    assert meta["authorization_endpoint"] == f"{BASE}/oauth/authorize"
    assert meta["token_endpoint"] == TOKEN_URL
    assert meta["registration_endpoint"] == f"{BASE}/oauth/register"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == ["none"]
    assert meta["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["client_id_metadata_document_supported"] is True  # on by default
    assert meta["authorization_response_iss_parameter_supported"] is True  # RFC 9207
    assert "ES256" in meta["dpop_signing_alg_values_supported"]


def test_off_by_default(tmp_path: Path) -> None:
    deployment = oauth_home(
        tmp_path / "home", public_url=BASE, resource=RESOURCE, bearer=False, enabled=False
    )
    with TestClient(create_app(deployment), base_url=BASE) as client:
        assert client.get("/.well-known/oauth-authorization-server").status_code == 404
        assert client.post("/oauth/register", json={"redirect_uris": [REDIRECT]}).status_code == 404
    deployment.close()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),  # not loopback
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user@app.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": "https://app.example/cb"}, "invalid_redirect_uri"),
        ({"redirect_uris": [REDIRECT] * 9}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        (
            {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": [REDIRECT], "client_name": "x" * 129}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "grant_types": ["password"]}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT], "response_types": ["token"]}, "invalid_client_metadata"),
        ([REDIRECT], "invalid_client_metadata"),
    ],
)
def test_registration_refusals(flow: Flow, body: Any, error: str) -> None:
    reply = flow.client.post("/oauth/register", content=json.dumps(body))
    assert _error(reply) == (400, error)
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "uri", [REDIRECT, "http://[::1]:8080/cb", "http://localhost/cb", "https://app.example/cb?x=1"]
)
def test_registration_of_a_public_client(flow: Flow, uri: str) -> None:
    registered = flow.register(redirect_uris=[uri])
    assert registered["redirect_uris"] == [uri]
    assert registered["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in registered
    assert registered["client_name"] == "IDE <agent>"
    events = [e for e in _events(flow) if e["kind"] == "oauth.client_registered"]
    assert events[-1]["actor"]["id"] == f"spiffe://{TD}/mcp-clients/{registered['client_id']}"


# the consent page


def test_page_offers_only_playbooks_that_admit_the_client_and_escapes(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    page = flow.person.open_page(flow.authorize_url(client_id, pkce()[1]))
    assert page.status_code == 200
    assert CLIENT_PLAYBOOK["name"] in page.text
    assert AGENTS_PLAYBOOK["name"] not in page.text
    assert "IDE &lt;agent&gt;" in page.text
    assert "<agent>" not in page.text
    assert "Read reports &lt;and&gt;" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:33418" in csp
    assert "<script" not in page.text
    assert page.cookies.get("zl_oauth_csrf") == form_fields(page.text)["csrf"]


def test_unknown_client_or_redirect_uri_is_shown_never_redirected(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    challenge = pkce()[1]
    for url in (
        flow.authorize_url("nobody", challenge),
        flow.authorize_url(client_id, challenge, redirect_uri="http://127.0.0.1:1/other"),
        flow.authorize_url(client_id, challenge, redirect_uri="https://evil.example/cb"),
        flow.authorize_url(client_id, challenge) + "&client_id=" + client_id,  # repeated
    ):
        page = flow.person.open_page(url)
        assert page.status_code == 400
        assert "location" not in page.headers
        assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"resource": "http://127.0.0.1:9/other"}, "invalid_target"),
        ({"resource": ""}, "invalid_target"),
    ],
)
def test_bad_requests_go_back_to_the_registered_uri(
    flow: Flow, params: dict[str, str], error: str
) -> None:
    client_id = flow.register()["client_id"]
    page = flow.person.open_page(flow.authorize_url(client_id, pkce()[1], **params))
    assert page.status_code == 303
    location = page.headers["location"]
    assert location.startswith(REDIRECT + "?")
    assert query_of(location)["error"] == error
    assert query_of(location)["state"] == "st-1"
    assert query_of(location)["iss"] == BASE  # RFC 9207, on errors too
    assert "code" not in query_of(location)


def test_a_wrong_password_gets_no_code_the_right_one_does(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    page = flow.person.open_page(flow.authorize_url(client_id, pkce()[1]))
    wrong = flow.person.submit(page, password="not the password")
    assert wrong.status_code == 401
    assert "location" not in wrong.headers
    assert "wrong username or password" in wrong.text
    right = flow.person.submit(page)  # the same page, once more
    assert right.status_code == 303
    assert set(query_of(right.headers["location"])) == {"code", "state", "iss"}
    assert query_of(right.headers["location"])["iss"] == BASE  # RFC 9207
    again = flow.person.submit(page)  # a page is used once
    assert again.status_code == 400
    assert [e["outcome"] for e in _events(flow) if e["kind"] == "oauth.sign_in"] == ["denied"]
    consented = [e for e in _events(flow) if e["kind"] == "oauth.consented"]
    assert [(e["actor"]["id"], e["details"]["playbook"]) for e in consented] == [
        ("alice", CLIENT_PLAYBOOK["name"])
    ]


def test_forged_forms_are_refused(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    page = flow.person.open_page(flow.authorize_url(client_id, pkce()[1]))
    assert flow.person.submit(page, csrf="forged").status_code == 403
    other = flow.person.open_page(flow.authorize_url(client_id, pkce()[1]))
    fields = form_fields(page.text)
    # another page's CSRF token (and cookie) with this page's id
    cross = flow.client.post(
        "/oauth/authorize",
        data={**fields, "csrf": form_fields(other.text)["csrf"], "username": "alice"},
        headers={"Cookie": f"zl_oauth_csrf={other.cookies.get('zl_oauth_csrf')}"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    # this page's token without its cookie (a cross-site post carries none)
    flow.client.cookies.clear()
    bare = flow.client.post("/oauth/authorize", data=fields, follow_redirects=False)
    assert bare.status_code == 403
    assert flow.person.submit(page, playbook=AGENTS_PLAYBOOK["name"]).status_code == 400
    assert flow.person.submit(page, intent=" ").status_code == 400
    assert flow.person.submit(page).status_code == 303  # the twin


def test_deny_sends_access_denied(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    answer = flow.person.consent(flow.authorize_url(client_id, pkce()[1]), decision="deny")
    assert answer == {"error": "access_denied", "state": "st-1", "iss": BASE}


# the token endpoint


def test_code_for_a_dpop_bound_task_token(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    reply = flow.exchange(client_id, code, verifier, key)
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert body["token_type"] == "DPoP"
    assert 0 < body["expires_in"] <= 900
    claims = claims_of(body["access_token"])
    assert claims["cnf"] == {"jkt": thumbprint(proof_jwk(key))}
    assert claims["sub"] == f"spiffe://{TD}/mcp-clients/{client_id}"
    assert RESOURCE in claims["aud"]
    task = flow.deployment.lifecycle.get(claims["task"])
    assert task.on_behalf_of == "alice"
    assert task.user_subject is None  # a password is no verified person
    assert task.playbook == CLIENT_PLAYBOOK["name"]
    # the code is used once: again, it is refused and what it gave is revoked
    again = flow.exchange(client_id, code, verifier, key)
    assert _error(again) == (400, "invalid_grant")
    assert flow.deployment.lifecycle.get(claims["task"]).state.value == "revoked"


def test_no_proof_no_token_unless_bearer_clients_are_allowed(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    assert _error(flow.exchange(client_id, code, verifier, None)) == (400, "invalid_dpop_proof")
    key = ec.generate_private_key(ec.SECP256R1())
    assert flow.exchange(client_id, code, verifier, key).status_code == 200  # not burnt


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant"),  # PKCE
        ({"code_verifier": "short"}, "invalid_request"),
        ({"redirect_uri": "http://127.0.0.1:33418/other"}, "invalid_grant"),
        ({"resource": "http://127.0.0.1:9/other"}, "invalid_target"),
        ({"code": "nope"}, "invalid_grant"),
        ({"client_id": "nobody"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
    ],
)
def test_token_refusals(flow: Flow, change: dict[str, str], error: str) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "resource": RESOURCE,
    } | change
    reply = flow.token(data, ec.generate_private_key(ec.SECP256R1()))
    assert reply.json()["error"] == error
    assert reply.status_code == (401 if error == "invalid_client" else 400)
    assert "error_description" in reply.json()


def test_another_clients_code_is_refused(flow: Flow) -> None:
    mine, other = flow.register()["client_id"], flow.register()["client_id"]
    code, verifier = flow.code(mine)
    key = ec.generate_private_key(ec.SECP256R1())
    assert _error(flow.exchange(other, code, verifier, key)) == (400, "invalid_grant")


def test_an_expired_code_is_refused(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    later = int(flow.deployment.clock.now()) + 61
    monkeypatch.setattr(flow.deployment.clock, "now", lambda: float(later))
    key = ec.generate_private_key(ec.SECP256R1())
    proof = make_proof(key, method="POST", url=TOKEN_URL, iat=later)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": client_id,
        "redirect_uri": REDIRECT,
    }
    reply = flow.client.post("/oauth/token", data=data, headers={"DPoP": proof})
    assert _error(reply) == (400, "invalid_grant")


def test_a_replayed_or_misdirected_proof_is_refused(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": client_id,
        "redirect_uri": REDIRECT,
    }
    elsewhere = make_proof(key, method="POST", url=f"{BASE}/v1/token")
    reply = flow.client.post("/oauth/token", data=data, headers={"DPoP": elsewhere})
    assert _error(reply) == (400, "invalid_dpop_proof")
    proof = make_proof(key, method="POST", url=TOKEN_URL)
    assert flow.client.post("/oauth/token", data=data, headers={"DPoP": proof}).status_code == 200
    code2, verifier2 = flow.code(client_id)
    data |= {"code": code2, "code_verifier": verifier2}
    replayed = flow.client.post("/oauth/token", data=data, headers={"DPoP": proof})
    assert _error(replayed) == (400, "invalid_dpop_proof")


def test_a_policy_refusal_is_invalid_grant(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    changed = {**CLIENT_PLAYBOOK, "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]}}
    flow.deployment.playbooks.apply(parse_playbook(changed, "t"), ADMIN)  # since the consent
    key = ec.generate_private_key(ec.SECP256R1())
    assert _error(flow.exchange(client_id, code, verifier, key)) == (400, "invalid_grant")


def test_a_refresh_token_is_bound_to_the_key_and_the_client(flow: Flow) -> None:
    client_id, other = flow.register()["client_id"], flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    first = flow.exchange(client_id, code, verifier, key).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    # no proof, another key's, another client: nothing, and nothing is used up
    no_proof = flow.token(refresh | {"client_id": client_id})
    assert _error(no_proof) == (400, "invalid_dpop_proof")
    thief = ec.generate_private_key(ec.SECP256R1())
    stolen = flow.token(refresh | {"client_id": client_id}, thief)
    assert _error(stolen) == (400, "invalid_dpop_proof")
    assert _error(flow.token(refresh | {"client_id": other}, key)) == (400, "invalid_grant")
    twin = flow.token(refresh | {"client_id": client_id}, key)
    assert twin.status_code == 200, twin.text
    task_id = claims_of(first["access_token"])["task"]
    assert flow.deployment.lifecycle.get(task_id).state.value == "active"


def test_refresh_renews_the_same_task(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    first = flow.exchange(client_id, code, verifier, key).json()
    refresh = {"grant_type": "refresh_token", "client_id": client_id}
    second = flow.token(refresh | {"refresh_token": first["refresh_token"]}, key)
    assert second.status_code == 200, second.text
    renewed = second.json()
    assert renewed["refresh_token"] != first["refresh_token"]
    old, new = claims_of(first["access_token"]), claims_of(renewed["access_token"])
    assert (new["task"], new["cnf"], new["jti"]) == (old["task"], old["cnf"], old["jti"])
    # the used one again: reuse, the chain dies (the new one too) and the task is revoked
    reused = flow.token(refresh | {"refresh_token": first["refresh_token"]}, key)
    assert _error(reused) == (400, "invalid_grant")
    task = flow.deployment.lifecycle.get(new["task"])
    assert (task.state.value, task.end_reason) == ("revoked", "oauth.refresh_reused")
    dead = flow.token(refresh | {"refresh_token": renewed["refresh_token"]}, key)
    assert _error(dead) == (400, "invalid_grant")


def test_refresh_dies_with_the_task(flow: Flow) -> None:
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    first = flow.exchange(client_id, code, verifier, key).json()
    task_id = claims_of(first["access_token"])["task"]
    flow.deployment.lifecycle.revoke(task_id, actor=ADMIN)
    refresh = {"grant_type": "refresh_token", "client_id": client_id}
    reply = flow.token(refresh | {"refresh_token": first["refresh_token"]}, key)
    assert _error(reply) == (400, "invalid_grant")
    assert reply.json()["reason"] == "task.revoked"


def test_bearer_clients_get_short_unbound_tokens_for_the_gateway_only(bearer_flow: Flow) -> None:
    flow = bearer_flow
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    body = flow.exchange(client_id, code, verifier, None).json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 120
    claims = claims_of(body["access_token"])
    assert "cnf" not in claims
    assert claims["bearer"] is True
    assert claims["aud"] == [RESOURCE]  # never the control plane's
    task = flow.deployment.lifecycle.get(claims["task"])
    assert task.expires_at - int(task.created_at) == 900  # it outlives its short token
    refresh = {"grant_type": "refresh_token", "client_id": client_id}
    renewed = flow.token(refresh | {"refresh_token": body["refresh_token"]})
    assert renewed.status_code == 200
    assert claims_of(renewed.json()["access_token"])["bearer"] is True
    # a DPoP client of the same server still gets a bound token
    code, verifier = flow.code(client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    assert flow.exchange(client_id, code, verifier, key).json()["token_type"] == "DPoP"


def _events(flow: Flow) -> list[dict[str, Any]]:
    flow.deployment.refusals.flush(10)  # refusals are written off the request path
    return [event_json(r) for r in flow.deployment.audit.iter_records()]
