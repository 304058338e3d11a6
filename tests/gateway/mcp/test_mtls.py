"""Certificate-bound task tokens (RFC 8705) at the MCP gateway, the two documented ways:

- **TLS served by the gateway** (``[tls] cert_file``/``key_file``, client certificates
  checked against the home's X.509 CA): the agent attests with a CSR, opens its task
  over mutual TLS, and its MCP client talks to the gateway over HTTPS presenting the
  X.509-SVID, with ``Authorization: Bearer`` and no DPoP;
- **a TLS-terminating proxy**: a plain-HTTP gateway believing ``X-Client-Cert`` only
  from its trusted proxy (loopback), and one trusting another address (so the same
  header, from loopback, is a client's and is ignored).

Attack rows with twins: another certificate, none, an untrusted header; a DPoP-bound
token still needs its proof whatever certificate comes with it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from cryptography.hazmat.primitives.serialization import Encoding
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.gateway.mcp.conftest import ACTIONS, ADMIN, AGENT, PLAYBOOK, TD
from tests.gateway.mcp.harness import HttpUpstream, calls, read_log
from tests.gateway.mcp.test_gateway_e2e import INITIALIZE, MCP_HEADERS, text_of
from tests.gateway.served import Served
from tests.identity.x509_issuer import server_cert
from zerolane.cli.background import free_port
from zerolane.cli.gateway import tls_options, uvicorn_config
from zerolane.cli.mcp_gateway import build_app
from zerolane.config import TlsConfig
from zerolane.gateway.mcp import parse_gateway_config
from zerolane.identity.x509_svid import parse_chain
from zerolane.sdk import Agent, Task
from zerolane.sdk.common import client_tls_context
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment, init_home
from zerolane.server.tls import uvicorn_tls
from zerolane.tasks.playbooks import parse_playbook

pytestmark = pytest.mark.e2e
AUDIENCE = "https://mcp.example.org/mcp"  # every gateway here: one task works on all
TOOL_CALL = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "read_report", "arguments": {"name": "q3"}},
}
#: what the playbook and ACTIONS let a task call: never delete_report
CALLABLE = ["post_message", "read_report"]


@dataclass
class MtlsStack:
    api_url: str
    server_ca: str  # the TLS servers' certificate (what clients verify)
    direct: str  # the MCP endpoint served over TLS by the gateway
    behind_proxy: str  # plain HTTP, trusting X-Client-Cert from loopback
    untrusting: str  # plain HTTP, trusting X-Client-Cert only from 192.0.2.1
    web_log: Path
    deployment: Deployment

    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.server_ca)

    def agent(self) -> Agent:
        token = self.deployment.join_tokens.create(AGENT, ttl=300, actor=ADMIN).token
        http = httpx.Client(verify=self.verify(), timeout=10)
        agent = Agent.attest(self.api_url, join_token=token, x509=True, http=http)
        agent.enable_mtls(verify=self.server_ca)
        return agent

    def task(self, agent: Agent, *, binding: Literal["dpop", "mtls"] = "mtls") -> Task:
        return agent.open_task(
            playbook=PLAYBOOK["name"],
            intent="Summarize the Q3 report for the team",
            authorization_details=[{"type": "zerolane_task", "actions": ACTIONS}],
            audience=[AUDIENCE],
            binding=binding,
        )

    def calls_used(self, task: Task) -> int:
        return self.deployment.lifecycle.get(task.task_id).calls_used


def _gateway(
    port: int, web_url: str, tls: dict[str, Any], deployment: Deployment, base: Path
) -> Served:
    scheme = "https" if "cert_file" in tls else "http"
    doc = {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"{scheme}://127.0.0.1:{port}",
        "audience": AUDIENCE,
        "authorization_servers": ["https://zerolane.example.org"],
        "servers": [
            {
                "name": "tools",
                "url": web_url,
                "destination": f"reports.{TD}",
                "tools": {"read_report": {"sensitivity": "internal"}},
            }
        ],
        "tls": tls,
    }
    config = parse_gateway_config(doc, base)
    app = build_app(config, deployment)
    return Served(
        uvicorn_config(app, "127.0.0.1", port, "warning", tls_options(config.tls, deployment))
    )


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsStack]:
    base = tmp_path_factory.mktemp("mcp-mtls")
    deployment, _ = init_home(base / "home", TD)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "test"), ADMIN)
    cert_file, key_file = server_cert(base / "server")
    api_port = free_port()
    api_tls = uvicorn_tls(
        TlsConfig(cert_file=str(cert_file), key_file=str(key_file)),
        base=Path("/"),
        ca=deployment.x509_ca,
    )
    api = uvicorn.Config(
        create_app(deployment), host="127.0.0.1", port=api_port, log_level="warning", **api_tls
    )
    web_log = base / "web.jsonl"
    ports = [free_port() for _ in range(3)]
    served = {"cert_file": "server/server.pem", "key_file": "server/server.key"}  # relative
    header = {"client_cert_header": "X-Client-Cert"}
    try:
        with HttpUpstream(web_log) as web:
            servers = [
                Served(api),
                _gateway(ports[0], web.url, served, deployment, base),
                _gateway(
                    ports[1],
                    web.url,
                    header | {"trusted_proxies": ["127.0.0.1/32"]},
                    deployment,
                    base,
                ),
                _gateway(
                    ports[2],
                    web.url,
                    header | {"trusted_proxies": ["192.0.2.1/32"]},
                    deployment,
                    base,
                ),
            ]
            started: list[Served] = []
            try:
                for server in servers:
                    started.append(server.__enter__())
                yield MtlsStack(
                    api_url=f"https://127.0.0.1:{api_port}",
                    server_ca=str(cert_file),
                    direct=f"https://127.0.0.1:{ports[0]}/mcp",
                    behind_proxy=f"http://127.0.0.1:{ports[1]}/mcp",
                    untrusting=f"http://127.0.0.1:{ports[2]}/mcp",
                    web_log=web_log,
                    deployment=deployment,
                )
            finally:
                for server in reversed(started):
                    server.__exit__()
    finally:
        deployment.close()


def _escaped(agent: Agent) -> dict[str, str]:
    """The agent's certificate as nginx passes it (``$ssl_client_escaped_cert``)."""
    assert agent.x509 is not None
    leaf = parse_chain(agent.x509.chain_pem)[0]
    return {"X-Client-Cert": quote(leaf.public_bytes(Encoding.PEM).decode(), safe="")}


def _tls_of(mtls: MtlsStack, agent: Agent) -> ssl.SSLContext:
    """A client TLS context presenting ``agent``'s X.509-SVID."""
    assert agent.x509 is not None
    return client_tls_context(agent.key, agent.x509, mtls.server_ca)


@asynccontextmanager
async def _session(
    url: str,
    task: Task,
    verify: ssl.SSLContext | bool = True,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session, signed by ``task.mcp_auth()`` (Bearer for a
    certificate-bound task, DPoP otherwise)."""
    async with (
        httpx2.AsyncClient(
            auth=task.mcp_auth(), verify=verify, headers=headers, timeout=30
        ) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _list_and_call(
    url: str,
    task: Task,
    verify: ssl.SSLContext | bool = True,
    headers: dict[str, str] | None = None,
) -> tuple[list[str], Any]:
    async def main() -> tuple[list[str], Any]:
        async with _session(url, task, verify, headers) as session:
            names = sorted(tool.name for tool in (await session.list_tools()).tools)
            try:
                result: Any = await session.call_tool("read_report", {"name": "q3"})
            except MCPError as err:
                result = err
            return names, result

    return anyio.run(main)


def _refusal(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["reason"])


def _post(client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post(url, json=body, headers=MCP_HEADERS | headers)


def _forwarded_cert_headers(mtls: MtlsStack) -> set[str]:
    """Client-certificate and agent credential headers the upstream ever received."""
    seen = {
        name.lower()
        for e in read_log(mtls.web_log)
        if e["event"] == "http"
        for name in e["headers"]
    }
    return seen & {"x-client-cert", "authorization", "dpop"}


def test_metadata_advertises_certificate_bound_tokens(mtls: MtlsStack) -> None:
    base = mtls.direct.removesuffix("/mcp")
    document = httpx.get(
        f"{base}/.well-known/oauth-protected-resource/mcp", verify=mtls.verify()
    ).json()
    assert document["tls_client_certificate_bound_access_tokens"] is True
    assert document["dpop_bound_access_tokens_required"] is False
    assert document["resource"] == AUDIENCE


def test_direct_tls_lists_and_calls_with_the_bound_certificate(mtls: MtlsStack) -> None:
    with mtls.agent() as agent:
        task = mtls.task(agent)
        assert task.grant.token_type == "Bearer"
        assert task.headers("POST", mtls.direct) == {"Authorization": f"Bearer {task.token}"}
        before = len(calls(mtls.web_log, "read_report"))
        names, result = _list_and_call(mtls.direct, task, _tls_of(mtls, agent))
        assert names == CALLABLE  # tools/list filtered for a certificate-bound task
        assert not isinstance(result, MCPError), result
        assert text_of(result).startswith("Q3")
        assert len(calls(mtls.web_log, "read_report")) == before + 1
        assert mtls.calls_used(task) == 1
        assert not _forwarded_cert_headers(mtls)
        task.complete()


def test_direct_tls_another_certificate_or_none_is_refused(mtls: MtlsStack) -> None:
    with mtls.agent() as agent, mtls.agent() as thief:
        task = mtls.task(agent)
        bearer = {"Authorization": f"Bearer {task.token}"}
        before = len(calls(mtls.web_log))
        for body in (INITIALIZE, TOOL_CALL):  # authenticated, and decided
            stolen = _post(thief.mtls_http, mtls.direct, body, bearer)  # certificate B
            assert _refusal(stolen) == (401, "mtls.cert_mismatch")
            challenge = stolen.headers.get_list("www-authenticate")[0]
            assert challenge.startswith('Bearer error="invalid_token"')
            assert 'resource_metadata="https://127.0.0.1:' in challenge
            assert "/.well-known/oauth-protected-resource/mcp" in challenge
        with httpx.Client(verify=mtls.verify()) as plain:  # no certificate at all
            assert _refusal(_post(plain, mtls.direct, TOOL_CALL, bearer)) == (401, "auth.scheme")
            as_dpop = {"Authorization": f"DPoP {task.token}"}
            missing = _post(plain, mtls.direct, TOOL_CALL, as_dpop)
            assert _refusal(missing) == (401, "mtls.cert_missing")
            assert 'error="invalid_token"' in missing.headers["www-authenticate"]
        assert len(calls(mtls.web_log)) == before  # nothing reached the upstream
        assert mtls.calls_used(task) == 0
        _, result = _list_and_call(mtls.direct, task, _tls_of(mtls, agent))  # the twin: cert A
        assert not isinstance(result, MCPError), result
        assert mtls.calls_used(task) == 1
        task.complete()


def test_trusted_proxy_header_binds(mtls: MtlsStack) -> None:
    with mtls.agent() as agent, mtls.agent() as thief:
        task = mtls.task(agent)
        bearer = {"Authorization": f"Bearer {task.token}"}
        with httpx.Client() as client:
            other = _post(client, mtls.behind_proxy, TOOL_CALL, bearer | _escaped(thief))
        assert _refusal(other) == (401, "mtls.cert_mismatch")
        names, result = _list_and_call(mtls.behind_proxy, task, headers=_escaped(agent))
        assert names == CALLABLE
        assert not isinstance(result, MCPError), result
        assert text_of(result).startswith("Q3")
        assert mtls.calls_used(task) == 1
        assert not _forwarded_cert_headers(mtls)  # never forwarded upstream
        task.complete()


def test_header_from_an_untrusted_peer_is_ignored(mtls: MtlsStack) -> None:
    with mtls.agent() as agent, httpx.Client() as client:
        task = mtls.task(agent)
        before = len(calls(mtls.web_log))
        headers = {"Authorization": f"Bearer {task.token}"} | _escaped(agent)
        ignored = _post(client, mtls.untrusting, TOOL_CALL, headers)
        assert _refusal(ignored) == (401, "auth.scheme")  # no certificate: no Bearer
        dpop = {"Authorization": f"DPoP {task.token}"} | _escaped(agent)
        for body in (INITIALIZE, TOOL_CALL):
            assert _refusal(_post(client, mtls.untrusting, body, dpop)) == (
                401,
                "mtls.cert_missing",
            )
        assert len(calls(mtls.web_log)) == before
        assert mtls.calls_used(task) == 0
        names, _ = _list_and_call(mtls.behind_proxy, task, headers=_escaped(agent))  # the twin
        assert names == CALLABLE
        task.complete()


def test_a_dpop_token_needs_its_proof_whatever_certificate_comes(mtls: MtlsStack) -> None:
    with mtls.agent() as agent:
        task = mtls.task(agent, binding="dpop")
        assert task.grant.token_type == "DPoP"
        for scheme in ("DPoP", "Bearer"):  # the certificate never replaces the proof
            headers = {"Authorization": f"{scheme} {task.token}"}
            for body in (INITIALIZE, TOOL_CALL):
                refused = _post(agent.mtls_http, mtls.direct, body, headers)
                assert _refusal(refused) == (401, "dpop.missing")
            with httpx.Client() as client:
                proxied = _post(client, mtls.behind_proxy, TOOL_CALL, headers | _escaped(agent))
            assert _refusal(proxied) == (401, "dpop.missing")
        assert mtls.calls_used(task) == 0
        names, result = _list_and_call(mtls.direct, task, _tls_of(mtls, agent))  # with proofs
        assert names == CALLABLE
        assert not isinstance(result, MCPError), result
        assert mtls.calls_used(task) == 1
        task.complete()
