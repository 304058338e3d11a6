"""Certificate-bound task tokens (RFC 8705) end to end, the two documented ways:

- **TLS served here**: the control plane and a gateway served by uvicorn over TLS with
  client certificates checked against the home's X.509 CA; the agent (SDK) attests with
  a CSR, opens its task over mutual TLS and calls the gateway over it, with no DPoP;
- **a TLS-terminating proxy**: a plain-HTTP gateway believing ``X-Client-Cert`` only
  from its trusted proxy (loopback), and one that trusts another address (so the same
  header, from loopback, is a client's and is ignored).

Attack rows with twins. The allows need the decider to take the request's certificate
(``DecideInput.client_cert``). The sync and the asyncio SDK both; delegation from a
certificate-bound task (``POST /v1/token`` over mutual TLS, no proof) too.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.serialization import Encoding

from tests.gateway.conftest import ADMIN, AGENT, AUDIENCE, PLAYBOOK, TD, EchoUpstream, gateway_toml
from tests.gateway.served import Served
from tests.identity.x509_issuer import server_cert
from zerolane.cli.background import free_port
from zerolane.cli.gateway import build_app, tls_options, uvicorn_config
from zerolane.config import TlsConfig
from zerolane.gateway.config import load_gateway_config
from zerolane.gateway.http import GatewayApp
from zerolane.identity.x509_svid import parse_chain
from zerolane.sdk import Agent, AsyncAgent
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment, init_home
from zerolane.server.tls import uvicorn_tls
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc8693 import ACCESS_TOKEN_TYPE, GRANT_TYPE, JWT_TYPE
from zerolane.tokens.rfc9449 import proof_jwk

pytestmark = pytest.mark.e2e
REPORT = "/finance/reports/q3"


@dataclass
class MtlsStack:
    api_url: str
    server_ca: str  # the TLS servers' certificate (what clients verify)
    direct: str  # the gateway served over TLS
    behind_proxy: str  # plain HTTP, trusting X-Client-Cert from loopback
    untrusting: str  # plain HTTP, trusting X-Client-Cert only from 192.0.2.1
    upstream: EchoUpstream
    deployment: Deployment
    #: an enforcement point serving ``direct`` (what ``task.decide`` asks as)
    enforcement_point: str = ""

    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.server_ca)

    def agent(self) -> Agent:
        token = self.deployment.join_tokens.create(AGENT, ttl=300, actor=ADMIN).token
        http = httpx.Client(verify=self.verify(), timeout=10)
        agent = Agent.attest(self.api_url, join_token=token, x509=True, http=http)
        agent.enable_mtls(verify=self.server_ca)
        return agent


def _gateway(
    base: Path, name: str, upstream: EchoUpstream, tls: str, deployment: Deployment
) -> tuple[GatewayApp, int, dict[str, Any]]:
    port = free_port()
    path = gateway_toml(base / name, upstream.port, port)
    text = path.read_text()
    if "cert_file" in tls:
        text = text.replace(f'"http://127.0.0.1:{port}"', f'"https://127.0.0.1:{port}"', 1)
    path.write_text(text + tls)
    config = load_gateway_config(path)
    return build_app(config, deployment), port, tls_options(config.tls, deployment)


@pytest.fixture(scope="module")
def mtls(upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsStack]:
    base = tmp_path_factory.mktemp("mtls")
    deployment, _ = init_home(base / "home", TD)
    deployment.registry.register(AGENT, selectors=[], owner="tests", actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "tests"), ADMIN)
    cert_file, key_file = server_cert(base / "server")
    served = f'\n[tls]\ncert_file = "{cert_file}"\nkey_file = "{key_file}"\n'
    header = '\n[tls]\nclient_cert_header = "X-Client-Cert"\ntrusted_proxies = ["{}"]\n'
    gateway_deployment = Deployment.open(base / "home")
    gateways = [
        _gateway(base, "direct", upstream, served, gateway_deployment),
        _gateway(base, "proxy", upstream, header.format("127.0.0.1/32"), gateway_deployment),
        _gateway(base, "untrusting", upstream, header.format("192.0.2.1/32"), gateway_deployment),
    ]
    api_port = free_port()
    api_tls = uvicorn_tls(
        TlsConfig(cert_file=str(cert_file), key_file=str(key_file)),
        base=Path("/"),
        ca=deployment.x509_ca,
    )
    api = uvicorn.Config(
        create_app(deployment), host="127.0.0.1", port=api_port, log_level="warning", **api_tls
    )
    servers = [Served(api)] + [
        Served(uvicorn_config(app, "127.0.0.1", port, "warning", tls))
        for app, port, tls in gateways
    ]
    for server in servers:
        server.__enter__()
    try:
        yield MtlsStack(
            api_url=f"https://127.0.0.1:{api_port}",
            server_ca=str(cert_file),
            direct=f"https://127.0.0.1:{gateways[0][1]}",
            behind_proxy=f"http://127.0.0.1:{gateways[1][1]}",
            untrusting=f"http://127.0.0.1:{gateways[2][1]}",
            upstream=upstream,
            deployment=deployment,
            enforcement_point=deployment.enforcement_points.add(
                "direct", [f"https://127.0.0.1:{gateways[0][1]}"], ADMIN
            )[0],
        )
    finally:
        for server in servers:
            server.__exit__()
        gateway_deployment.close()
        deployment.close()


def _reason(response: httpx.Response) -> str:
    return str(response.json()["reason"])


def _escaped(agent: Agent) -> dict[str, str]:
    """The agent's certificate as nginx passes it (``$ssl_client_escaped_cert``)."""
    assert agent.x509 is not None
    leaf = parse_chain(agent.x509.chain_pem)[0]
    return {"X-Client-Cert": quote(leaf.public_bytes(Encoding.PEM).decode(), safe="")}


def test_direct_tls_token_bound_to_the_agents_certificate(mtls: MtlsStack) -> None:
    with mtls.agent() as agent:
        task = agent.open_task(
            playbook="tool-user", intent="mTLS", audience=[AUDIENCE], binding="mtls"
        )
        assert task.grant.token_type == "Bearer"
        before = mtls.upstream.count()
        response = task.request("GET", mtls.direct + REPORT)  # over mutual TLS, no proof
        assert response.status_code == 200, response.text
        assert mtls.upstream.count() == before + 1
        echo = response.json()
        sent = {name.lower() for name, _ in echo["headers"]}
        assert not sent & {"authorization", "dpop", "x-client-cert"}
        task.complete()
        assert task.request("GET", mtls.direct + REPORT).json()["reason"] == "task.completed"


def test_direct_tls_another_certificate_or_none_is_refused(mtls: MtlsStack) -> None:
    with mtls.agent() as agent, mtls.agent() as thief:
        task = agent.open_task(
            playbook="tool-user", intent="mTLS", audience=[AUDIENCE], binding="mtls"
        )
        bearer = {"Authorization": f"Bearer {task.token}"}
        stolen = thief.mtls_http.get(mtls.direct + REPORT, headers=bearer)  # cert B
        assert (stolen.status_code, _reason(stolen)) == (401, "mtls.cert_mismatch")
        challenge = stolen.headers["www-authenticate"]
        assert challenge == 'Bearer error="invalid_token", error_description="mtls.cert_mismatch"'
        plain = httpx.get(mtls.direct + REPORT, headers=bearer, verify=mtls.verify())
        assert (plain.status_code, _reason(plain)) == (401, "auth.scheme")  # no cert: no Bearer
        as_dpop = httpx.get(
            mtls.direct + REPORT,
            headers={"Authorization": f"DPoP {task.token}"},
            verify=mtls.verify(),
        )
        assert (as_dpop.status_code, _reason(as_dpop)) == (401, "mtls.cert_missing")
        allowed = agent.mtls_http.get(mtls.direct + REPORT, headers=bearer)  # cert A: the twin
        assert allowed.status_code == 200, allowed.text
        task.complete()


def test_proxy_header_from_the_trusted_proxy_binds(mtls: MtlsStack) -> None:
    with mtls.agent() as agent, mtls.agent() as thief:
        task = agent.open_task(
            playbook="tool-user", intent="mTLS", audience=[AUDIENCE], binding="mtls"
        )
        bearer = {"Authorization": f"Bearer {task.token}"}
        other = httpx.get(mtls.behind_proxy + REPORT, headers=bearer | _escaped(thief))
        assert (other.status_code, _reason(other)) == (401, "mtls.cert_mismatch")
        missing = httpx.get(
            mtls.behind_proxy + REPORT, headers={"Authorization": f"DPoP {task.token}"}
        )
        assert (missing.status_code, _reason(missing)) == (401, "mtls.cert_missing")
        allowed = httpx.get(mtls.behind_proxy + REPORT, headers=bearer | _escaped(agent))
        assert allowed.status_code == 200, allowed.text
        sent = {name.lower() for name, _ in allowed.json()["headers"]}
        assert "x-client-cert" not in sent  # never forwarded upstream
        task.complete()


def test_client_sent_header_from_an_untrusted_peer_is_ignored(mtls: MtlsStack) -> None:
    with mtls.agent() as agent:
        task = agent.open_task(
            playbook="tool-user", intent="mTLS", audience=[AUDIENCE], binding="mtls"
        )
        headers = {"Authorization": f"Bearer {task.token}"} | _escaped(agent)
        before = mtls.upstream.count()
        ignored = httpx.get(mtls.untrusting + REPORT, headers=headers)
        assert (ignored.status_code, _reason(ignored)) == (401, "auth.scheme")
        dpop = {"Authorization": f"DPoP {task.token}"} | _escaped(agent)
        ignored = httpx.get(mtls.untrusting + REPORT, headers=dpop)
        assert (ignored.status_code, _reason(ignored)) == (401, "mtls.cert_missing")
        assert mtls.upstream.count() == before
        trusted = httpx.get(mtls.behind_proxy + REPORT, headers=headers)  # the twin
        assert trusted.status_code == 200, trusted.text
        task.complete()


def test_dpop_tokens_still_work_and_ignore_certificates(mtls: MtlsStack) -> None:
    with mtls.agent() as agent:
        task = agent.open_task(playbook="tool-user", intent="DPoP", audience=[AUDIENCE])
        assert task.grant.token_type == "DPoP"
        url = mtls.behind_proxy + REPORT
        with_cert = httpx.get(
            url, headers={"Authorization": f"DPoP {task.token}"} | _escaped(agent)
        )
        assert (with_cert.status_code, _reason(with_cert)) == (401, "dpop.missing")
        response = task.request("GET", url)  # the twin: with its proof
        assert response.status_code == 200, response.text
        task.complete()


def test_sdk_opens_and_completes_a_certificate_bound_task(mtls: MtlsStack) -> None:
    """The control plane's own side, over TLS it serves: no gateway, no decider."""
    with mtls.agent() as agent:
        assert agent.x509 is not None
        leaf = parse_chain(agent.x509.chain_pem)[0]
        assert leaf.public_key() == agent.key.public_key()
        task = agent.open_task(playbook="tool-user", intent="mTLS", binding="mtls")
        assert task.grant.token_type == "Bearer"
        assert task.headers("GET", mtls.direct) == {"Authorization": f"Bearer {task.token}"}
        url = f"{mtls.api_url}/v1/tasks/{task.task_id}/complete"
        stolen = httpx.post(  # the token without the certificate: refused
            url, headers=task.headers("POST", url), verify=mtls.verify()
        )
        assert (stolen.status_code, _reason(stolen)) == (401, "auth.scheme")
        task.complete()  # the twin, over mutual TLS
        stored = mtls.deployment.lifecycle.get(task.task_id)
        assert stored.state.value == "completed"
        with Agent(mtls.api_url) as bare, pytest.raises(RuntimeError):
            bare.open_task(playbook="tool-user", intent="x", binding="mtls")  # no X.509-SVID


# the asyncio SDK, the same way (each test drives its own event loop)
HELPER = f"spiffe://{TD}/agents/helper"
TEAM = {**PLAYBOOK, "name": "tool-team", "delegable": True, "max_depth": 1}


async def _async_agent(mtls: MtlsStack, spiffe_id: str = AGENT, *, x509: bool = True) -> AsyncAgent:
    token = mtls.deployment.join_tokens.create(spiffe_id, ttl=300, actor=ADMIN).token
    http = httpx.AsyncClient(verify=mtls.verify(), timeout=10)
    agent = await AsyncAgent.attest(
        mtls.api_url,
        join_token=token,
        x509=x509,
        http=http,
        enforcement_point=mtls.enforcement_point,
    )
    if x509:
        await agent.enable_mtls(verify=mtls.server_ca)
    return agent


def test_async_sdk_certificate_bound_task_end_to_end(mtls: MtlsStack) -> None:
    async def main() -> None:
        async with await _async_agent(mtls) as agent, await _async_agent(mtls) as thief:
            assert agent.x509 is not None
            leaf = parse_chain(agent.x509.chain_pem)[0]
            assert leaf.public_key() == agent.key.public_key()
            task = await agent.open_task(
                playbook="tool-user", intent="mTLS", audience=[AUDIENCE], binding="mtls"
            )
            assert task.grant.token_type == "Bearer"
            assert task.headers("GET", mtls.direct) == {"Authorization": f"Bearer {task.token}"}
            before = mtls.upstream.count()
            response = await task.request("GET", mtls.direct + REPORT)  # mutual TLS, no proof
            assert response.status_code == 200, response.text
            assert mtls.upstream.count() == before + 1
            sent = {name.lower() for name, _ in response.json()["headers"]}
            assert not sent & {"authorization", "dpop", "x-client-cert"}
            bearer = {"Authorization": f"Bearer {task.token}"}
            stolen = await thief.mtls_http.get(mtls.direct + REPORT, headers=bearer)  # cert B
            assert (stolen.status_code, _reason(stolen)) == (401, "mtls.cert_mismatch")
            plain = await agent.http.get(mtls.direct + REPORT, headers=bearer)  # no cert
            assert (plain.status_code, _reason(plain)) == (401, "auth.scheme")
            decision = await task.decide(  # POST /v1/decide over mutual TLS, no proof
                "GET",
                mtls.direct + REPORT,
                action="read",
                resource="finance/reports/q3",
                destination="finance-api.internal",
            )
            assert decision.allowed, decision.reasons
            url = f"{mtls.api_url}/v1/tasks/{task.task_id}/complete"
            refused = await agent.http.post(url, headers=bearer)  # the token alone
            assert (refused.status_code, _reason(refused)) == (401, "auth.scheme")
            await task.complete()  # the twin, over mutual TLS
            assert mtls.deployment.lifecycle.get(task.task_id).state.value == "completed"
            after = await task.request("GET", mtls.direct + REPORT)
            assert _reason(after) == "task.completed"

    asyncio.run(main())


def test_async_sdk_without_an_x509_svid_has_no_mtls(mtls: MtlsStack) -> None:
    async def main() -> None:
        async with await _async_agent(mtls, x509=False) as agent:
            assert agent.x509 is None
            with pytest.raises(RuntimeError):
                await agent.enable_mtls(verify=mtls.server_ca)
            with pytest.raises(RuntimeError):
                await agent.open_task(playbook="tool-user", intent="x", binding="mtls")
            task = await agent.open_task(playbook="tool-user", intent="DPoP")  # the twin
            assert task.grant.token_type == "DPoP"
            await task.complete()

    asyncio.run(main())


def test_sdk_delegates_from_a_certificate_bound_task(mtls: MtlsStack) -> None:
    """Sync and async: the parent proves itself by its certificate (no proof); the child
    is bound to the delegate's key and used with DPoP."""
    mtls.deployment.playbooks.apply(parse_playbook(TEAM, "tests"), ADMIN)
    mtls.deployment.registry.register(HELPER, selectors=[], owner="tests", actor=ADMIN)

    async def main() -> None:
        async with (
            await _async_agent(mtls) as agent,
            await _async_agent(mtls) as thief,
            await _async_agent(mtls, HELPER, x509=False) as helper,
        ):
            assert helper.svid is not None
            task = await agent.open_task(
                playbook="tool-team", intent="mTLS", audience=[AUDIENCE], binding="mtls"
            )
            form = {
                "grant_type": GRANT_TYPE,
                "subject_token": task.token,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "actor_token": helper.svid.token,
                "actor_token_type": JWT_TYPE,
            }
            url = f"{mtls.api_url}/v1/token"
            for client, reason in (
                (agent.http, "mtls.cert_missing"),  # the token, no certificate
                (thief.mtls_http, "mtls.cert_mismatch"),  # another certificate
            ):
                refused = await client.post(url, data=form)
                assert (refused.status_code, _reason(refused)) == (401, reason)
            grant = await task.delegate(delegate_svid=helper.svid.token, max_calls=2)
            assert grant.token_type == "DPoP"
            cnf = jwt.decode(grant.token, options={"verify_signature": False})["cnf"]
            assert cnf == {"jkt": thumbprint(proof_jwk(helper.key))}
            child = helper.adopt(grant)
            response = await child.request("GET", mtls.behind_proxy + REPORT)  # DPoP
            assert response.status_code == 200, response.text
            await child.complete()
            await task.complete()

    asyncio.run(main())
    with mtls.agent() as agent:  # the sync client, the same way
        helper_token = mtls.deployment.join_tokens.create(HELPER, ttl=300, actor=ADMIN).token
        with Agent.attest(
            mtls.api_url, join_token=helper_token, http=httpx.Client(verify=mtls.verify())
        ) as helper:
            assert helper.svid is not None
            task = agent.open_task(
                playbook="tool-team", intent="mTLS", audience=[AUDIENCE], binding="mtls"
            )
            grant = task.delegate(delegate_svid=helper.svid.token, max_calls=1)
            response = helper.adopt(grant).request("GET", mtls.behind_proxy + REPORT)
            assert response.status_code == 200, response.text
            task.complete()
