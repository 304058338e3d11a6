"""A standard MCP client, unmodified: the official SDK's ``OAuthClientProvider`` finds
the control plane from the gateway's 401, registers, sends the person to the consent
page (done here over HTTP: the page, its form, its CSRF token), trades the code for a
token and calls tools through the gateway, every call decided against the task.

The SDK's client sends no DPoP proofs, so it gets a token only where
``allow_bearer_clients`` is set."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import ClientSession, MCPError
from mcp.client.auth import OAuthClientProvider, OAuthTokenError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp_types import TextContent
from pydantic import AnyUrl

from tests.gateway.mcp.harness import calls
from tests.gateway.mcp.oauth_stack import OAuthStack, oauth_stack
from tests.server.client_documents import ClientSite
from tests.server.oauth_fixtures import ADMIN, CLIENT_PLAYBOOK, REDIRECT, TD, Person, pkce
from tests.server.task_fixtures import claims_of
from zerolane.audit.log import event_json
from zerolane.sdk.mcp_auth import McpAuth
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc9449 import make_proof


class Memory:
    """The SDK's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Where the SDK sends the person: the consent is given over HTTP."""

    def __init__(self, cp_url: str, playbook: str = CLIENT_PLAYBOOK["name"]) -> None:
        self._http = httpx.Client(timeout=30)
        self.person = Person(self._http, base=cp_url)
        self.playbook = playbook
        self.answers: list[dict[str, str]] = []
        self.pages = 0

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    async def redirect(self, authorization_url: str) -> None:
        self.pages += 1
        answer = await anyio.to_thread.run_sync(
            functools.partial(self.person.consent, authorization_url, playbook=self.playbook)
        )
        self.answers.append(answer)

    async def callback(self) -> AuthorizationCodeResult:
        answer = self.answers[-1]
        return AuthorizationCodeResult(
            code=answer["code"], state=answer.get("state"), iss=answer.get("iss")
        )


def provider(
    stack: OAuthStack, browser: Browser, storage: Memory, metadata_url: str | None = None
) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=stack.url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[AnyUrl(REDIRECT)],
            client_name="An IDE agent",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
        client_metadata_url=metadata_url,
    )


def session_run(stack: OAuthStack, auth: OAuthClientProvider, work: Any) -> Any:
    async def main() -> Any:
        async with (
            httpx2.AsyncClient(auth=auth, timeout=30) as http,
            streamable_http_client(stack.url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await work(session)

    return anyio.run(main)


_browsers: list[Browser] = []


def browser_of(stack: OAuthStack, playbook: str = CLIENT_PLAYBOOK["name"]) -> Browser:
    browser = Browser(stack.cp_url, playbook)
    _browsers.append(browser)
    return browser


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    yield
    while _browsers:
        _browsers.pop().__exit__()


@pytest.fixture(scope="module")
def bearer_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthStack]:
    with oauth_stack(tmp_path_factory.mktemp("oauth-bearer"), bearer=True) as stack:
        yield stack


def test_the_sdk_client_consents_lists_and_calls_decided(bearer_stack: OAuthStack) -> None:
    stack = bearer_stack
    browser, storage = browser_of(stack), Memory()

    async def work(session: ClientSession) -> dict[str, Any]:
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        allowed = await session.call_tool("read_report", {"name": "q3"})
        try:
            refused: Any = await session.call_tool("delete_report", {"name": "q3"})
        except MCPError as err:
            refused = err
        return {"tools": tools, "allowed": allowed, "refused": refused}

    out = session_run(stack, provider(stack, browser, storage), work)
    assert browser.pages == 1
    assert out["tools"] == ["post_message", "read_report"]  # the playbook's, no delete
    assert not out["allowed"].is_error
    assert isinstance(out["refused"], MCPError)
    assert calls(stack.stdio_log, "delete_report") == []
    assert [c["tool"] for c in calls(stack.stdio_log)] == ["read_report"]
    # the task: opened by the client's workload identity, for alice, by the playbook
    assert storage.client is not None
    assert storage.tokens is not None
    assert storage.tokens.refresh_token is not None
    client_id = storage.client.client_id
    events: list[Any] = [event_json(r) for r in stack.deployment.audit.iter_records()]
    opened = [e for e in events if e["kind"] == "task.opened"]
    assert opened[-1]["actor"]["id"] == f"spiffe://{TD}/mcp-clients/{client_id}"
    assert opened[-1]["details"]["on_behalf_of"] == "alice"
    assert opened[-1]["details"]["playbook"] == CLIENT_PLAYBOOK["name"]
    task_id = opened[-1]["subject"]
    decided = [e for e in events if e["kind"] == "decision" and e["subject"] == task_id]
    assert [e["details"]["decision"] for e in decided] == ["allow", "deny"]


def test_a_revoked_task_ends_the_clients_access(bearer_stack: OAuthStack) -> None:
    stack = bearer_stack
    browser, storage = browser_of(stack), Memory()
    auth = provider(stack, browser, storage)

    async def first(session: ClientSession) -> str:
        return str((await session.list_tools()).tools[0].name)

    session_run(stack, auth, first)
    assert storage.tokens is not None
    task_id = str(claims_of(storage.tokens.access_token)["task"])
    stack.deployment.lifecycle.revoke(task_id, actor=ADMIN)
    reply = httpx.post(
        stack.url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={
            "Authorization": f"Bearer {storage.tokens.access_token}",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert reply.status_code == 403
    assert reply.json()["reason"] == "task.revoked"


def test_without_bearer_clients_only_dpop_clients_get_tokens(tmp_path: Path) -> None:
    with oauth_stack(tmp_path, bearer=False) as stack:
        browser, storage = browser_of(stack), Memory()

        async def work(session: ClientSession) -> None:
            await session.list_tools()

        with pytest.raises(Exception) as failed:  # noqa: PT011 (inside the SDK's task groups)
            session_run(stack, provider(stack, browser, storage), work)
        assert _has(failed.value, OAuthTokenError)
        assert browser.pages == 1  # the person consented; the token was refused
        assert storage.tokens is None
        events = [event_json(r) for r in stack.deployment.audit.iter_records()]
        assert [e for e in events if e["kind"] == "task.opened"] == []
        # the twin: a client that proves a key gets a bound token and works
        key = ec.generate_private_key(ec.SECP256R1())
        token = _dpop_token(stack, browser.person, key)

        def sign(method: str, url: str) -> dict[str, str]:
            proof = make_proof(key, method=method, url=url, access_token=token)
            return {"Authorization": f"DPoP {token}", "DPoP": proof}

        async def main() -> str:
            async with (
                httpx2.AsyncClient(auth=McpAuth(sign), timeout=30) as http,
                streamable_http_client(stack.url, http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                result = await session.call_tool("read_report", {"name": "q3"})
                block = result.content[0]
                assert isinstance(block, TextContent)
                return block.text

        assert "Q3 revenue" in anyio.run(main)
        # without its key the token is nothing: as Bearer it is the wrong scheme
        stolen = httpx.post(
            stack.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert (stolen.status_code, stolen.json()["reason"]) == (401, "auth.scheme")


#: for clients named by the URL of their metadata document (never ``mcp-clients/*``)
URL_PLAYBOOK = {
    **CLIENT_PLAYBOOK,
    "name": "url-clients",
    "openers": {"spiffe_ids": [f"spiffe://{TD}/mcp-clients/url/127.0.0.1_*/*"]},
}


def test_the_sdk_client_named_by_its_metadata_document(tmp_path: Path) -> None:
    """The SDK's ``client_metadata_url`` (CIMD): no registration; the control plane
    fetches the document from the client's https site and the task is the URL
    client's. A document naming another URL is refused on the page, no task opens."""
    with ClientSite(tls=True) as site:

        def trust_site(app: Any) -> None:
            app.state.oauth.documents.verify = site.verify

        with oauth_stack(
            tmp_path,
            bearer=True,
            oauth={"client_metadata_loopback": True},
            configure=trust_site,
        ) as stack:
            stack.deployment.playbooks.apply(parse_playbook(URL_PLAYBOOK, "test"), ADMIN)
            url = site.document("/oauth/client.json")
            browser, storage = browser_of(stack, "url-clients"), Memory()

            async def work(session: ClientSession) -> Any:
                return await session.call_tool("read_report", {"name": "q3"})

            result = session_run(stack, provider(stack, browser, storage, url), work)
            assert not result.is_error
            assert storage.client is not None
            assert storage.client.client_id == url
            events: list[Any] = [event_json(r) for r in stack.deployment.audit.iter_records()]
            learned = [e for e in events if e["kind"] == "oauth.client_registered"]
            assert [(e["subject"], e["outcome"]) for e in learned] == [(url, "success")]
            opened = [e for e in events if e["kind"] == "task.opened"]
            assert opened[-1]["actor"]["id"] == learned[0]["actor"]["id"]
            assert "/mcp-clients/url/127.0.0.1_" in opened[-1]["actor"]["id"]
            assert site.hits == ["/oauth/client.json"]  # kept from the page to the token
            assert [c["tool"] for c in calls(stack.stdio_log)] == ["read_report"]

            # the twin refused: a document that does not name its own URL
            forged = site.serve("/forged.json", {"client_id": url, "redirect_uris": [REDIRECT]})
            pages: list[Any] = []

            async def look(authorization_url: str) -> None:
                pages.append(
                    await anyio.to_thread.run_sync(browser.person.open_page, authorization_url)
                )

            async def no_code() -> AuthorizationCodeResult:
                raise RuntimeError("the page gave no code")

            refused = OAuthClientProvider(
                server_url=stack.url,
                client_metadata=OAuthClientMetadata(redirect_uris=[AnyUrl(REDIRECT)]),
                storage=Memory(),
                redirect_handler=look,
                callback_handler=no_code,
                client_metadata_url=forged,
            )
            with pytest.raises(Exception) as failed:  # noqa: PT011 (in the SDK's task groups)
                session_run(stack, refused, work)
            assert _has(failed.value, RuntimeError)
            assert [p.status_code for p in pages] == [400]
            assert "invalid_client" in pages[0].text
            assert "location" not in pages[0].headers
            after = [event_json(r) for r in stack.deployment.audit.iter_records()]
            assert len([e for e in after if e["kind"] == "task.opened"]) == len(opened)


def _dpop_token(stack: OAuthStack, person: Person, key: ec.EllipticCurvePrivateKey) -> str:
    """The OAuth flow by hand, as a DPoP-capable client does it."""
    cp = stack.cp_url
    client = httpx.post(f"{cp}/oauth/register", json={"redirect_uris": [REDIRECT]}).json()
    verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
        "resource": stack.config.audience,
    }
    code = person.consent(f"{cp}/oauth/authorize?{urlencode(query)}")["code"]
    reply = httpx.post(
        f"{cp}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT,
            "resource": stack.config.audience,
        },
        headers={"DPoP": make_proof(key, method="POST", url=f"{cp}/oauth/token")},
    )
    assert reply.json()["token_type"] == "DPoP", reply.text
    return str(reply.json()["access_token"])


def _has(err: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(err, kind):
        return True
    inner = getattr(err, "exceptions", ())
    return any(_has(e, kind) for e in inner) or (
        err.__cause__ is not None and _has(err.__cause__, kind)
    )
