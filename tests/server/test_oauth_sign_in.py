"""Signing in on the consent page through an OpenID provider (``[[oauth.sign_in]]``),
over raw HTTP against a test provider on loopback: each refusal beside the sign-in that
is accepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from tests.server.oauth_fixtures import (
    CLIENT_PLAYBOOK,
    REDIRECT,
    form_fields,
    pkce,
    query_of,
)
from tests.server.oidc_provider import CLIENT_ID, SUBJECT, TestProvider, sign_in_home
from tests.server.task_fixtures import claims_of
from zerolane.audit.log import event_json
from zerolane.config import parse_config
from zerolane.errors import InvalidInput
from zerolane.fsutil import write_private
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment
from zerolane.server.oauth_throttle import SignInThrottle
from zerolane.tokens.rfc9449 import make_proof

BASE = "http://testserver"
RESOURCE = "http://127.0.0.1:9/mcp"


class Browser:
    """The person at the consent page, signing in through the provider."""

    def __init__(self, client: TestClient, deployment: Deployment) -> None:
        self.client, self.deployment = client, deployment
        self.verifier, challenge = pkce()
        reply = client.post(
            "/oauth/register",
            json={"redirect_uris": [REDIRECT], "grant_types": ["authorization_code"]},
        )
        self.client_id = reply.json()["client_id"]
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-1",
            "resource": RESOURCE,
        }
        self.page = client.get("/oauth/authorize?" + urlencode(query))
        assert self.page.status_code == 200, self.page.text
        self.fields = form_fields(self.page.text)

    def start(self, issuer: str = "corp") -> Any:
        data = {"page": self.fields["page"], "csrf": self.fields["csrf"], "issuer": issuer}
        return self.client.post("/oauth/sign-in", data=data, follow_redirects=False)

    def to_provider(self) -> str:
        """Off to the provider and back: the callback's path and query."""
        reply = self.start()
        assert reply.status_code == 303, reply.text
        back = httpx.get(reply.headers["location"], follow_redirects=False, timeout=5)
        assert back.status_code == 302, back.text
        parts = urlsplit(back.headers["location"])
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/oauth/callback"
        return f"{parts.path}?{parts.query}"

    def consent(self, page: Any, **extra: str) -> Any:
        fields = form_fields(page.text)
        data = {
            "page": fields["page"],
            "csrf": fields["csrf"],
            "playbook": CLIENT_PLAYBOOK["name"],
            "intent": "Summarize the Q3 report",
            "decision": "allow",
            **extra,
        }
        return self.client.post("/oauth/authorize", data=data, follow_redirects=False)

    def token(self, code: str) -> Any:
        key = ec.generate_private_key(ec.SECP256R1())
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": self.verifier,
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
        }
        proof = make_proof(key, method="POST", url=f"{BASE}/oauth/token")
        return self.client.post("/oauth/token", data=data, headers={"DPoP": proof})


@pytest.fixture
def provider() -> Iterator[TestProvider]:
    with TestProvider() as running:
        yield running


def _served(tmp_path: Path, provider: TestProvider, *, local_user: bool) -> Iterator[Browser]:
    deployment = sign_in_home(
        tmp_path / "home", provider, public_url=BASE, resource=RESOURCE, local_user=local_user
    )
    with TestClient(create_app(deployment), base_url=BASE) as client:
        yield Browser(client, deployment)
    deployment.close()


@pytest.fixture
def browser(tmp_path: Path, provider: TestProvider) -> Iterator[Browser]:
    yield from _served(tmp_path, provider, local_user=True)


@pytest.fixture
def sso_only(tmp_path: Path, provider: TestProvider) -> Iterator[Browser]:
    yield from _served(tmp_path, provider, local_user=False)


def _events(deployment: Deployment, kind: str) -> list[dict[str, Any]]:
    deployment.refusals.flush(10)  # refusals are written off the request path
    found = [event_json(r) for r in deployment.audit.iter_records()]
    return [e for e in found if e["kind"] == kind]


# the sign-in that is accepted


def test_the_task_records_the_person_the_provider_proved(
    browser: Browser, provider: TestProvider
) -> None:
    assert "Sign in with Corp SSO" in browser.page.text
    assert provider.url in browser.page.headers["content-security-policy"]
    page = browser.client.get(browser.to_provider())
    assert page.status_code == 200, page.text
    assert f"Signed in as <strong>{SUBJECT} (corp)</strong>" in page.text
    assert "name=password" not in page.text
    asked = provider.requests[0]
    assert asked["code_challenge_method"] == "S256"
    assert asked["scope"] == "openid email"
    assert asked["redirect_uri"] == f"{BASE}/oauth/callback"
    answer = browser.consent(page)
    assert answer.status_code == 303, answer.text
    back = query_of(answer.headers["location"])
    assert back["state"] == "st-1"
    reply = browser.token(back["code"])
    assert reply.status_code == 200, reply.text
    task = browser.deployment.lifecycle.get(claims_of(reply.json()["access_token"])["task"])
    assert (task.user_subject, task.user_issuer) == (SUBJECT, provider.url)
    assert task.on_behalf_of == SUBJECT
    signed = _events(browser.deployment, "oauth.sign_in")
    assert [e["outcome"] for e in signed] == ["success"]


def test_without_a_local_user_the_page_offers_only_the_provider(
    sso_only: Browser, provider: TestProvider
) -> None:
    assert "Sign in with Corp SSO" in sso_only.page.text
    assert "name=password" not in sso_only.page.text
    # allowing without signing in is refused; signed in, it is accepted
    refused = sso_only.consent(sso_only.page)
    assert refused.status_code == 401
    assert "sign in first" in refused.text
    page = sso_only.client.get(sso_only.to_provider())
    assert sso_only.consent(page).status_code == 303


# refusals, each shown on the page and audited, never sent to the MCP client


def _refused(browser: Browser, reply: Any, status: int, reason: str) -> None:
    assert reply.status_code == status, reply.text
    assert "location" not in reply.headers
    assert "Authorization refused" in reply.text
    denied = [e for e in _events(browser.deployment, "oauth.sign_in") if e["outcome"] != "success"]
    assert denied, "the refusal is audited"
    assert denied[0]["reason"] == reason, denied


def test_a_callback_with_a_bad_state_is_refused(browser: Browser) -> None:
    callback = browser.to_provider()
    forged = callback.replace("state=", "state=x")
    _refused(browser, browser.client.get(forged), 400, "oauth.sign_in_state")
    assert browser.client.get(callback).status_code == 200  # the twin


def test_a_replayed_callback_is_refused(browser: Browser) -> None:
    callback = browser.to_provider()
    assert browser.client.get(callback).status_code == 200
    _refused(browser, browser.client.get(callback), 400, "oauth.sign_in_state")


def test_a_callback_in_another_browser_is_refused(browser: Browser) -> None:
    callback = browser.to_provider()
    browser.client.cookies.clear()
    _refused(browser, browser.client.get(callback), 403, "oauth.sign_in_state")


def test_a_sign_in_not_started_from_the_page_is_refused(browser: Browser) -> None:
    browser.fields["csrf"] = "x" * 43
    assert browser.start().status_code == 403
    browser.fields = form_fields(browser.page.text)
    assert browser.start("other").status_code == 400
    assert browser.start().status_code == 303  # the twin


def test_an_id_token_with_a_wrong_nonce_is_refused(
    browser: Browser, provider: TestProvider
) -> None:
    provider.claims = {"nonce": "not-the-one-sent"}
    _refused(browser, browser.client.get(browser.to_provider()), 401, "id_token.nonce")
    provider.claims = {}
    assert browser.client.get(browser.to_provider()).status_code == 200


def test_an_id_token_for_another_audience_is_refused(
    browser: Browser, provider: TestProvider
) -> None:
    provider.claims = {"aud": "another-app"}
    _refused(browser, browser.client.get(browser.to_provider()), 401, "id_token.audience")
    provider.claims = {"aud": [CLIENT_ID, "another-app"], "azp": "another-app"}
    _refused(browser, browser.client.get(browser.to_provider()), 401, "id_token.audience")
    provider.claims = {"aud": [CLIENT_ID, "another-app"], "azp": CLIENT_ID}
    assert browser.client.get(browser.to_provider()).status_code == 200


def test_an_issuer_error_is_shown(browser: Browser, provider: TestProvider) -> None:
    provider.error = "access_denied"
    reply = browser.client.get(browser.to_provider())
    _refused(browser, reply, 401, "oauth.sign_in_issuer")
    assert "access_denied" in reply.text
    provider.error = None
    assert browser.client.get(browser.to_provider()).status_code == 200


def test_a_wrong_client_secret_is_refused_by_the_provider(browser: Browser) -> None:
    write_private(browser.deployment.home / "corp-secret", b"wrong\n")
    reply = browser.client.get(browser.to_provider())
    _refused(browser, reply, 401, "oauth.sign_in_token")
    assert "invalid_client" in reply.text


def test_a_readable_secret_file_refuses_every_sign_in(browser: Browser) -> None:
    (browser.deployment.home / "corp-secret").chmod(0o644)
    _refused(browser, browser.client.get(browser.to_provider()), 401, "oauth.sign_in_config")


# settings


def _doc(**oauth: Any) -> dict[str, Any]:
    return {
        "trust_domain": "example.org",
        "server": {"public_url": "https://zl.example"},
        "users": {
            "issuers": [
                {
                    "name": "corp",
                    "issuer": "https://sso.example",
                    "audience": "zl",
                    "jwks_url": "https://sso.example/jwks",
                }
            ]
        },
        "oauth": {"enabled": True, "resources": ["https://mcp.example/mcp"], **oauth},
    }


SIGN_IN = {
    "issuer": "corp",
    "client_id": "zl",
    "authorization_endpoint": "https://sso.example/auth",
    "token_endpoint": "https://sso.example/token",
}


def test_a_sign_in_is_enough_without_a_local_user() -> None:
    config = parse_config(_doc(sign_in=[SIGN_IN]))
    assert config.oauth.local_user is None
    assert config.oauth.sign_in[0].scopes == ("openid",)
    with pytest.raises(InvalidInput, match=r"oauth: set \[oauth.local_user\] or"):
        parse_config(_doc())


@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        ({"issuer": "nobody"}, "config.oauth_sign_in", "names no"),
        ({"client_id": "other"}, "config.oauth_sign_in", "audience"),
        (
            {"token_endpoint": "http://sso.example/token"},
            "config.url",
            r"oauth\.sign_in\[0\]\.token_endpoint",
        ),
        ({"scopes": ["email"]}, "config.oauth_sign_in", "openid"),
        ({"client_secret": "x"}, "config.unknown_key", "client_secret"),
    ],
)
def test_a_bad_sign_in_is_refused_with_its_path(
    change: dict[str, Any], reason: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        parse_config(_doc(sign_in=[{**SIGN_IN, **change}]))
    assert err.value.reason == reason
    loopback = {**SIGN_IN, "token_endpoint": "http://127.0.0.1:8/token"}
    assert parse_config(_doc(sign_in=[loopback])).oauth.sign_in[0] is not None


def test_refused_sign_ins_lock_the_address_not_another(
    browser: Browser, provider: TestProvider
) -> None:
    app: Any = browser.client.app
    app.state.oauth.throttle = SignInThrottle(per_user=5, per_address=2, backoff=30)
    provider.error = "access_denied"
    assert browser.client.get(browser.to_provider()).status_code == 401
    provider.error = None
    assert browser.client.get(browser.to_provider()).status_code == 200  # clears it
    provider.error = "access_denied"
    for _ in range(2):
        assert browser.client.get(browser.to_provider()).status_code == 401
    locked = browser.start()  # the address is locked: not even off to the provider
    assert (locked.status_code, locked.headers["retry-after"]) == (429, "30")
    assert "oauth.sign_in_throttled" in locked.text
    assert "location" not in locked.headers
    reasons = [e.get("reason") for e in _events(browser.deployment, "oauth.sign_in")]
    assert reasons[-1] == "oauth.sign_in_throttled"
    provider.error = None  # the twin: a person at another address signs in
    other = TestClient(app, base_url=BASE, client=("198.51.100.7", 40000))
    assert other.get(Browser(other, browser.deployment).to_provider()).status_code == 200
