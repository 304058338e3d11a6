"""The consent page in a real browser (Playwright driving Debian's Chromium): a person
signs in, picks the playbook, says why, and the browser lands on the client's redirect
URI with a code; a wrong password lands nowhere. Signing in through an OpenID provider
on another site (the test provider at ``localhost``) comes back to the page with its
cookie, and the task records the person. The page's CSP (no script,
``form-action`` to here and the redirect URI's origin) is enforced by the browser here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, sync_playwright

from tests.server.oauth_fixtures import (
    CLIENT_PLAYBOOK,
    PASSWORD,
    REDIRECT,
    USER,
    ControlPlane,
    oauth_home,
    pkce,
    query_of,
)
from tests.server.oidc_provider import SUBJECT, TestProvider, sign_in_home
from tests.server.task_fixtures import claims_of
from zerolane.cli.background import free_port
from zerolane.server.deployment import Deployment
from zerolane.tokens.rfc9449 import make_proof

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
RESOURCE = "http://127.0.0.1:9/mcp"


@pytest.fixture(scope="module")
def cp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = tmp_path_factory.mktemp("oauth-browser") / "home"
    deployment = oauth_home(home, public_url=url, resource=RESOURCE, bearer=False)
    try:
        with ControlPlane(deployment, port):
            yield url
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Listener:
    """The client's loopback redirect listener (RFC 8252): records what reaches it."""

    def __init__(self) -> None:
        reached: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                reached.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"done")

            def log_message(self, *_: object) -> None:
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.reached = reached
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _authorize_url(cp_url: str, redirect: str) -> str:
    client = httpx.post(f"{cp_url}/oauth/register", json={"redirect_uris": [redirect]}).json()
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": redirect,
        "code_challenge": pkce()[1],
        "code_challenge_method": "S256",
        "state": "browser-state",
        "resource": RESOURCE,
    }
    return f"{cp_url}/oauth/authorize?{urlencode(query)}"


def _sign_in(browser: Browser, cp_url: str, password: str) -> tuple[str, str]:
    """Fill and submit the form; where the browser ends (the listener's URL when it got
    there) and the page's text."""
    context = browser.new_context()
    page = context.new_page()
    with Listener() as listener:
        page.goto(_authorize_url(cp_url, listener.uri))
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", password)
        page.select_option("select[name=playbook]", CLIENT_PLAYBOOK["name"])
        page.fill("textarea[name=intent]", "Summarize the Q3 report for the team")
        with page.expect_navigation():
            page.click("button[value=allow]")
        text = page.inner_text("body")
        url = page.url
        answers = [path for path in listener.reached if path.startswith("/callback?")]
        if answers:
            assert url.startswith(listener.uri)
            url = REDIRECT + answers[0].removeprefix("/callback")
    context.close()
    return url, text


def test_signing_in_lands_on_the_redirect_uri_with_a_code(browser: Browser, cp_url: str) -> None:
    url, _ = _sign_in(browser, cp_url, PASSWORD)
    assert url.startswith(REDIRECT + "?")
    answer = query_of(url)
    assert answer["state"] == "browser-state"
    assert len(answer["code"]) >= 40


def test_a_wrong_password_stays_on_the_page_without_a_code(browser: Browser, cp_url: str) -> None:
    url, text = _sign_in(browser, cp_url, "not the password")
    assert url.startswith(f"{cp_url}/oauth/authorize")
    assert "code" not in query_of(url)
    assert "wrong username or password" in text


# signing in through an OpenID provider on another site


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Deployment]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = tmp_path_factory.mktemp("oauth-sso") / "home"
    with TestProvider(host="localhost", interactive=True) as provider:
        deployment = sign_in_home(
            home, provider, public_url=url, resource=RESOURCE, local_user=False
        )
        try:
            with ControlPlane(deployment, port):
                yield url, deployment
        finally:
            deployment.close()


def test_signing_in_through_the_provider_records_the_person(
    browser: Browser, sso: tuple[str, Deployment]
) -> None:
    sso_url, deployment = sso
    context = browser.new_context()
    page = context.new_page()
    verifier, challenge = pkce()
    with Listener() as listener:
        client = httpx.post(
            f"{sso_url}/oauth/register", json={"redirect_uris": [listener.uri]}
        ).json()
        query = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": listener.uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "browser-state",
            "resource": RESOURCE,
        }
        page.goto(f"{sso_url}/oauth/authorize?{urlencode(query)}")
        assert page.locator("input[name=password]").count() == 0
        with page.expect_navigation():
            page.click("text=Sign in with Corp SSO")
        with page.expect_navigation(url=f"{sso_url}/oauth/callback*"):
            page.click("text=Continue")  # at the provider, another site
        assert f"Signed in as {SUBJECT}" in page.inner_text("body")
        page.select_option("select[name=playbook]", CLIENT_PLAYBOOK["name"])
        page.fill("textarea[name=intent]", "Summarize the Q3 report for the team")
        with page.expect_navigation():
            page.click("button[value=allow]")
        answers = [path for path in listener.reached if path.startswith("/callback?")]
    context.close()
    assert answers, "the browser reached the client's redirect URI"
    answer = query_of(REDIRECT + answers[0].removeprefix("/callback"))
    key = ec.generate_private_key(ec.SECP256R1())
    token_url = f"{sso_url}/oauth/token"
    reply = httpx.post(
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "code_verifier": verifier,
            "client_id": client["client_id"],
            "redirect_uri": listener.uri,
        },
        headers={"DPoP": make_proof(key, method="POST", url=token_url)},
    )
    assert reply.status_code == 200, reply.text
    task = deployment.lifecycle.get(claims_of(reply.json()["access_token"])["task"])
    assert (task.user_subject, task.on_behalf_of) == (SUBJECT, SUBJECT)
