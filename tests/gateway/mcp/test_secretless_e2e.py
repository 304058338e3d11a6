"""Secretless upstreams end to end: agents call through the gateway, the upstreams get
their credentials from it, and the agents never hold them.

The stack: a control plane trusting an OpenID provider for people (``SSO``), the
authorization server of :mod:`tests.gateway.mcp.oauth_server` trusting the control
plane's JWKS, and three upstreams behind one gateway:

- ``crm``: the Python SDK's ``MCPServer`` over streamable HTTP behind a
  :class:`BearerGate` (only the authorization server's live tokens for
  ``https://crm.example.org``); its token is exchanged for the task's person;
- ``files``: a stdio server that gets a client-credentials token in ``FILES_TOKEN``
  and only says whether it has one (it writes the token's SHA-256 to a file the test
  reads, never to an answer);
- ``broken``: ``crm`` again, for a client of its own (client credentials) whose secret
  the tests rotate at the authorization server: the gateway's goes stale.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import textwrap
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from mcp import MCPError
from mcp.server.mcpserver import MCPServer

from tests.gateway.mcp.harness import GatewayServer, mcp_session
from tests.gateway.mcp.oauth_server import AuthServer, BearerGate
from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.config import CONFIG_NAME, parse_config, render_config
from zerolane.gateway.edge.jsonrpc import FORBIDDEN, UPSTREAM_UNAVAILABLE
from zerolane.gateway.mcp import GatewayConfig, parse_gateway_config
from zerolane.gateway.mcp.check import probe_upstreams
from zerolane.sdk import Agent, Task
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

TD = "example.org"
AGENT = f"spiffe://{TD}/agents/reporter"
ADMIN = Actor("admin", "secretless-tests")
SSO = "https://sso.example.org"
CRM = "https://crm.example.org"
FILES = "https://files.example.org/"
CLIENT, SECRET = "zerolane-gateway", "gateway-client-secret"
BROKEN, BROKEN_SECRET = "zerolane-broken", "broken-client-secret"
PLAYBOOK: dict[str, Any] = {
    "name": "crm-reader",
    "description": "Read the CRM and local files through the MCP gateway.",
    "actions": ["mcp:crm/whoami", "mcp:files/has_credential", "mcp:broken/whoami"],
    "resources": ["mcp/crm/*", "mcp/files/*", "mcp/broken/*"],
    "destinations": [f"crm.{TD}", f"files.{TD}", f"broken.{TD}"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 20,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
FILES_SERVER = textwrap.dedent(
    """
    import hashlib, os, sys
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("files")

    @server.tool()
    def has_credential() -> str:
        token = os.environ.get("FILES_TOKEN", "")
        with open(sys.argv[1], "a") as seen:
            seen.write(hashlib.sha256(token.encode()).hexdigest() + "\\n")
        return "credential: " + ("set" if token else "unset")

    server.run()
    """
)


def crm_app(auth: AuthServer) -> BearerGate:
    server = MCPServer("crm")

    @server.tool()
    def whoami() -> str:
        return "crm: you are known"

    return BearerGate(server.streamable_http_app(), auth, CRM)


class Served:
    """An ASGI app served by uvicorn on a loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the upstream did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/mcp"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Secretless:
    deployment: Deployment
    cp_url: str
    gateway: GatewayServer
    audience: str
    auth: AuthServer
    crm: BearerGate
    files_seen: Path
    sso_key: ec.EllipticCurvePrivateKey
    config: GatewayConfig

    def id_token(self, sub: str) -> str:
        now = int(time.time())
        claims = {"iss": SSO, "sub": sub, "aud": "zl", "iat": now, "exp": now + 300}
        return jwt.encode(claims, self.sso_key, algorithm="ES256", headers={"kid": "k1"})

    def agent(self) -> Agent:
        token = self.deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
        return Agent.attest(self.cp_url, join_token=token)

    def task(self, agent: Agent, person: str | None = None) -> Task:
        details = [{"type": "zerolane_task", "actions": PLAYBOOK["actions"]}]
        options: dict[str, Any] = {
            "playbook": PLAYBOOK["name"],
            "intent": "Look up the customer's account in the CRM",
            "authorization_details": details,
            "audience": [self.audience],
        }
        if person is None:
            return agent.open_task(**options)
        return agent.open_task_for_user(id_token=self.id_token(person), **options)


def trust_people(home: Path, key: ec.EllipticCurvePrivateKey) -> None:
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    (home / "sso.json").write_text(json.dumps({"keys": [jwk]}))
    doc = tomllib.loads((home / CONFIG_NAME).read_text())
    doc["users"] = {
        "issuers": [{"name": "sso", "issuer": SSO, "audience": "zl", "jwks_file": "sso.json"}]
    }
    (home / CONFIG_NAME).write_text(render_config(parse_config(doc)))


def secret_file(path: Path, secret: str) -> str:
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return str(path)


def gateway_doc(
    root: Path, port: int, cp_url: str, crm_url: str, auth: AuthServer
) -> dict[str, Any]:
    script = root / "files_server.py"
    script.write_text(FILES_SERVER)
    client = {
        "type": "oauth",
        "token_endpoint": auth.token_endpoint,
        "revocation_endpoint": auth.revocation_endpoint,
        "client_id": CLIENT,
        "client_secret_file": secret_file(root / "client.secret", SECRET),
    }
    broken = {
        **client,
        "client_id": BROKEN,
        "client_secret_file": secret_file(root / "broken.secret", BROKEN_SECRET),
    }
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "authorization_servers": [cp_url],
        "servers": [
            {
                "name": "crm",
                "url": crm_url,
                "destination": f"crm.{TD}",
                "prefix": "crm_",
                "credential": {**client, "grant": "token_exchange", "audience": CRM},
            },
            {
                "name": "files",
                "command": sys.executable,
                "args": [str(script), str(root / "files-seen.txt")],
                "destination": f"files.{TD}",
                "credential": {**client, "resource": FILES, "env": "FILES_TOKEN"},
            },
            {
                "name": "broken",
                "url": crm_url,
                "destination": f"broken.{TD}",
                "prefix": "broken_",
                "credential": {**broken, "audience": CRM},
            },
        ],
    }


@pytest.fixture(scope="module")
def secretless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secretless]:
    root = tmp_path_factory.mktemp("secretless")
    home = root / "home"
    first, _ = init_home(home, TD)
    first.close()
    key = ec.generate_private_key(ec.SECP256R1())
    trust_people(home, key)
    deployment = Deployment.open(home)
    try:
        deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
        deployment.playbooks.apply(parse_playbook(PLAYBOOK, "test"), ADMIN)
        with BackgroundServer(deployment) as cp:
            auth = AuthServer(
                {CLIENT: SECRET, BROKEN: BROKEN_SECRET},
                trusted_issuer=f"spiffe://{TD}",
                jwks_url=f"{cp.url}/.well-known/jwks.json",
            )
            crm = crm_app(auth)
            with auth.running(), Served(crm) as crm_url:
                doc = gateway_doc(root, free_port(), cp.url, crm_url, auth)
                config = parse_gateway_config(doc)
                with GatewayServer(config, enforcement_of(deployment)) as gateway:
                    yield Secretless(
                        deployment,
                        cp.url,
                        gateway,
                        config.audience,
                        auth,
                        crm,
                        root / "files-seen.txt",
                        key,
                        config,
                    )
    finally:
        deployment.close()


def text_of(result: Any) -> str:
    return "".join(block.text for block in result.content if hasattr(block, "text"))


async def call(session: Any, tool: str) -> Any:
    try:
        return await session.call_tool(tool, {})
    except MCPError as err:
        return err


def run_calls(stack: Secretless, task: Task, *tools: str) -> list[Any]:
    async def main() -> list[Any]:
        async with mcp_session(stack.gateway.url, task) as session:
            # the gateway has no catalog of crm's tools (its tokens are for people): the
            # session's own listing routes its calls
            await session.list_tools()
            return [await call(session, tool) for tool in tools]

    return anyio.run(main)


def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time given"
        time.sleep(0.05)


def test_the_upstream_gets_a_token_exchanged_for_the_tasks_person(secretless: Secretless) -> None:
    stack = secretless
    with stack.agent() as agent, stack.task(agent, "alice") as task:
        seen_before = len(stack.crm.seen)
        (result,) = run_calls(stack, task, "crm_whoami")
        assert text_of(result) == "crm: you are known"
        (issued,) = stack.auth.of("alice")
        assert issued.audience == (CRM,)
        assert issued.act == {"sub": AGENT}

        # the upstream saw the gateway's token on every request of the agent's session
        # (POST, its GET stream, the DELETE ending it), never the agent's credentials.
        # The agent's session also links to ``broken`` (the same server, its own token),
        # whose DELETE may come first: wait for the one carrying this session's token
        def mine() -> list[str]:
            return [s.method for s in stack.crm.seen[seen_before:] if s.bearer == issued.token]

        eventually(lambda: "DELETE" in mine())
        assert {"POST", "GET", "DELETE"} <= set(mine())
        for seen in stack.crm.seen:
            assert "dpop" not in seen.headers
            assert task.token not in json.dumps(seen.headers)
        # ... and the agent never saw the token
        assert issued.token not in str(result)


def test_each_task_gets_its_own_token(secretless: Secretless) -> None:
    stack = secretless
    with stack.agent() as agent:
        with stack.task(agent, "bob") as one, stack.task(agent, "carol") as two:
            run_calls(stack, one, "crm_whoami")
            run_calls(stack, two, "crm_whoami")
        (bobs,) = stack.auth.of("bob")
        (carols,) = stack.auth.of("carol")
        assert bobs.token != carols.token
        used = {s.bearer for s in stack.crm.seen}
        assert {bobs.token, carols.token} <= used


def test_a_stdio_upstream_gets_its_token_in_its_environment(secretless: Secretless) -> None:
    stack = secretless
    with stack.agent() as agent, stack.task(agent) as task:
        (result,) = run_calls(stack, task, "has_credential")
        assert text_of(result) == "credential: set"
        issued = [i for i in stack.auth.issued if i.audience == (FILES,)]
        seen = stack.files_seen.read_text().split()
        assert hashlib.sha256(issued[-1].token.encode()).hexdigest() == seen[-1]
        assert issued[-1].token not in str(result)


def test_a_task_without_a_person_is_refused_a_token_exchange_upstream(
    secretless: Secretless,
) -> None:
    """A token-exchange upstream has no session of the gateway's own (no person to
    exchange for): its tools are known only to the sessions of tasks with a person.
    Another person's listing never stands in for this task's (one person's tools are not
    another's), so without a person the tool is not routed: refused ``request.unmapped``,
    with no token asked for; the task's other upstream answers (the twin)."""
    stack = secretless
    with stack.agent() as agent:
        with stack.task(agent, "frank") as known:
            run_calls(stack, known)  # a person's session lists crm and calls it
        requests_before = len(stack.auth.requests)
        with stack.task(agent) as task:
            refused, allowed = run_calls(stack, task, "crm_whoami", "has_credential")
    assert isinstance(refused, MCPError)
    assert refused.code == FORBIDDEN
    assert refused.error.data["reasons"] == ["request.unmapped"]
    assert text_of(allowed) == "credential: set"
    exchanges = [f for f, _ in stack.auth.requests[requests_before:] if "subject_token" in f]
    assert exchanges == []


def test_a_refused_client_secret_answers_upstream_credential_without_the_secret(
    secretless: Secretless, caplog: pytest.LogCaptureFixture
) -> None:
    stack = secretless
    stack.auth.clients[BROKEN] = "rotated-at-the-server"
    try:
        with (
            caplog.at_level(logging.DEBUG),
            stack.agent() as agent,
            stack.task(agent, "dave") as task,
        ):
            (refused,) = run_calls(stack, task, "broken_whoami")
    finally:
        stack.auth.clients[BROKEN] = BROKEN_SECRET
    assert isinstance(refused, MCPError)
    assert refused.code == UPSTREAM_UNAVAILABLE
    assert refused.error.data["reason"] == "upstream.credential"
    assert "HTTP 401 (invalid_client)" in refused.error.message
    # the server's error_description echoed the Authorization header it got
    assert stack.auth.requests[-1][1] == 401
    said = json.dumps(refused.error.data) + refused.error.message + caplog.text
    for secret in (BROKEN_SECRET, SECRET, "Basic "):
        assert secret not in said


def test_the_token_is_dropped_and_revoked_when_the_task_completes(secretless: Secretless) -> None:
    stack = secretless
    with stack.agent() as agent:
        task = stack.task(agent, "erin")

        async def main() -> None:
            async with mcp_session(stack.gateway.url, task) as session:
                await session.list_tools()
                assert text_of(await call(session, "crm_whoami")) == "crm: you are known"
                (issued,) = stack.auth.of("erin")
                assert issued.token not in stack.auth.revocations
                await anyio.to_thread.run_sync(task.complete)
                # the sweep ends the task's session, then its tokens are revoked
                revoked = functools.partial(
                    eventually, lambda: issued.token in stack.auth.revocations
                )
                await anyio.to_thread.run_sync(revoked, 20.0)
                assert stack.auth.introspect(issued.token) is None

        anyio.run(main)


def test_check_asks_each_upstream_with_the_gateways_own_credential(secretless: Secretless) -> None:
    crm, files, broken = anyio.run(probe_upstreams, secretless.config)
    assert crm.failure is not None
    assert "exchanged for a task's person" in crm.failure
    assert (files.tools, files.failure) == (("has_credential",), None)
    assert (broken.tools, broken.failure) == (("whoami",), None)
    gateways = [i for i in secretless.auth.issued if i.subject == BROKEN]
    assert gateways  # the check's token, the gateway's own


def test_a_token_about_to_expire_is_renewed_within_the_agents_session(
    secretless: Secretless,
) -> None:
    stack = secretless
    files_before = [i.token for i in stack.auth.issued if i.audience == (FILES,)]
    stack.auth.expires_in = 2  # renewed after 1 s (half its life: it is under 30 s)
    try:
        with stack.agent() as agent, stack.task(agent, "gina") as task:

            async def main() -> None:
                async with mcp_session(stack.gateway.url, task) as session:
                    await session.list_tools()
                    assert text_of(await call(session, "crm_whoami")) == "crm: you are known"
                    await anyio.sleep(1.2)
                    assert text_of(await call(session, "crm_whoami")) == "crm: you are known"
                    assert text_of(await call(session, "has_credential")) == "credential: set"
                    await anyio.sleep(1.2)
                    assert text_of(await call(session, "has_credential")) == "credential: set"

            anyio.run(main)
    finally:
        stack.auth.expires_in = 300
    tokens = [issued.token for issued in stack.auth.of("gina")]
    assert len(tokens) >= 2
    # HTTP: one upstream session all along, its header renewed in place
    posts = [s for s in stack.crm.seen if s.method == "POST" and s.bearer in tokens]
    assert {s.bearer for s in posts} >= {tokens[0], tokens[-1]}
    first = {s.headers.get("mcp-session-id") for s in posts if s.bearer == tokens[0]} - {None}
    later = {s.headers.get("mcp-session-id") for s in posts if s.bearer != tokens[0]}
    assert len(first) == 1
    assert later == first
    # stdio: the server restarted with a new token in its environment
    files = [i.token for i in stack.auth.issued if i.audience == (FILES,)]
    assert len(files) >= len(files_before) + 2
    last = stack.files_seen.read_text().split()[-1]
    assert last == hashlib.sha256(files[-1].encode()).hexdigest()


def test_a_token_exchange_upstream_does_not_make_the_gateway_unready(
    secretless: Secretless,
) -> None:
    """The gateway has no session of its own with an upstream reached only with a
    person's token: /readyz names it apart and stays ready for the others."""
    ready = httpx.get(f"{secretless.gateway.base}/readyz")
    [crm] = [
        s.name for s in secretless.config.servers if s.credential and s.credential.grant_exchanges
    ]
    assert ready.json()["per_person"] == [crm]
    assert crm not in ready.json()["not_serving"]
    assert crm not in ready.json()["serving"]
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
