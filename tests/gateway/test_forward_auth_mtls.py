"""Forward-auth and certificate-bound task tokens (RFC 8705 ``cnf.x5t#S256``).

The proxy terminates TLS, so the client certificate reaches forward-auth only as a
header the proxy sets (nginx ``$ssl_client_escaped_cert``, Envoy's XFCC). It is
believed only from ``[tls] trusted_proxies``; from anyone else it is ignored. Attack
rows with their twins; decisions go through a real Decider over a real home.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.testclient import TestClient

from tests.gateway.task_home import INTENT, PLAYBOOK, ControlPlane, control_plane
from tests.gateway.test_forward_auth import PUBLIC, settings
from zerolane.errors import InvalidInput
from zerolane.gateway.forward_auth import create_app
from zerolane.gateway.forward_auth_config import parse_config
from zerolane.identity.x509_svid import parse_chain
from zerolane.sdk import Agent
from zerolane.tasks.lifecycle import OpenRequest
from zerolane.tokens.rfc9449 import make_proof

PROXY = ("127.0.0.1", 50000)  # the proxy's address: in trusted_proxies
STRANGER = ("10.9.8.7", 50000)  # anyone else able to reach the endpoint
TLS = {"client_cert_header": "X-Client-Cert", "trusted_proxies": ["127.0.0.1/32", "::1/128"]}
TARGET = "/reports/q3"


@dataclass
class Holder:
    """An agent with an X.509-SVID and a task whose token is bound to it."""

    agent: Agent
    task_id: str
    token: str

    @property
    def pem(self) -> str:
        assert self.agent.x509 is not None
        return parse_chain(self.agent.x509.chain_pem)[0].public_bytes(Encoding.PEM).decode()

    @property
    def escaped(self) -> dict[str, str]:
        """What nginx sends with ``proxy_set_header X-Client-Cert $ssl_client_escaped_cert``."""
        return {"X-Client-Cert": quote(self.pem, safe="")}

    @property
    def xfcc(self) -> dict[str, str]:
        """What Envoy sends (``SANITIZE_SET``, ``set_current_client_cert_details: cert``)."""
        value = f'Hash=00ff;Cert="{quote(self.pem, safe="")}";URI=spiffe://example.org/x'
        return {"X-Forwarded-Client-Cert": value}

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("forward-auth-mtls") / "home") as plane:
        yield plane


def holder(cp: ControlPlane) -> Holder:
    """Attest with a CSR (SDK), then open a task for the API (forward-auth's default
    audience) by the X.509-SVID, as ``POST /v1/tasks`` over mutual TLS does: its token is
    bound to the certificate."""
    agent = Agent.attest(cp.url, join_token=cp.join_token(), x509=True)
    assert agent.x509 is not None
    der = parse_chain(agent.x509.chain_pem)[0].public_bytes(Encoding.DER)
    caller = cp.deployment.authenticator.workload_by_certificate(der)
    opened = cp.deployment.lifecycle.open(
        caller, OpenRequest(intent=INTENT, playbook=str(PLAYBOOK["name"]), audience=[PUBLIC])
    )
    return Holder(agent, opened.task.task_id, opened.token)


@pytest.fixture
def bound(cp: ControlPlane) -> Iterator[Holder]:
    made = holder(cp)
    with made.agent:
        yield made


def app_for(cp: ControlPlane, proxy: str = "nginx", **extra: Any) -> Any:
    return create_app(settings(proxy, **extra), cp.deployment.decider, cp.deployment.audit)


def client(app: Any, peer: tuple[str, int]) -> TestClient:
    return TestClient(app, client=peer)


def original(method: str = "GET", target: str = TARGET) -> dict[str, str]:
    return {"X-Original-Method": method, "X-Original-URI": target}


def reason(reply: Any) -> tuple[int, str]:
    return reply.status_code, reply.json()["reason"]


def test_the_bound_certificate_from_the_trusted_proxy_is_allowed(
    cp: ControlPlane, bound: Holder
) -> None:
    with client(app_for(cp, tls=TLS), PROXY) as proxy:
        reply = proxy.get("/forward-auth", headers=original() | bound.bearer | bound.escaped)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-zerolane-task"] == bound.task_id
        decision = cp.decisions()[-1]
        assert decision["decision_id"] == reply.headers["x-zerolane-decision"]
        assert decision["url"] == f"{PUBLIC}{TARGET}"
        # the scheme does not matter: the token's cnf says what must come with it
        as_dpop = {"Authorization": f"DPoP {bound.token}"}
        again = proxy.get("/forward-auth", headers=original() | as_dpop | bound.escaped)
        assert again.status_code == 200, again.text


def test_a_header_from_an_untrusted_peer_binds_nothing(cp: ControlPlane, bound: Holder) -> None:
    app = app_for(cp, tls=TLS)
    with client(app, STRANGER) as stranger, client(app, PROXY) as proxy:
        sent = original() | bound.bearer | bound.escaped
        ignored = stranger.get("/forward-auth", headers=sent)
        assert reason(ignored) == (401, "auth.scheme")  # no certificate: no Bearer
        as_dpop = original() | {"Authorization": f"DPoP {bound.token}"} | bound.escaped
        ignored = stranger.get("/forward-auth", headers=as_dpop)
        assert reason(ignored) == (401, "mtls.cert_missing")
        assert ignored.headers["www-authenticate"] == (
            'Bearer error="invalid_token", error_description="mtls.cert_missing"'
        )
        assert proxy.get("/forward-auth", headers=sent).status_code == 200  # the twin


def test_without_tls_configured_no_header_is_believed(cp: ControlPlane, bound: Holder) -> None:
    """The default: forward-auth reads no certificate, so such a token fails closed."""
    with client(app_for(cp), PROXY) as proxy:
        as_dpop = original() | {"Authorization": f"DPoP {bound.token}"} | bound.escaped
        assert reason(proxy.get("/forward-auth", headers=as_dpop)) == (401, "mtls.cert_missing")


def test_another_certificate_or_none_is_refused(cp: ControlPlane, bound: Holder) -> None:
    thief = holder(cp)
    with thief.agent, client(app_for(cp, tls=TLS), PROXY) as proxy:
        stolen = proxy.get("/forward-auth", headers=original() | bound.bearer | thief.escaped)
        assert reason(stolen) == (401, "mtls.cert_mismatch")
        assert stolen.headers["www-authenticate"] == (
            'Bearer error="invalid_token", error_description="mtls.cert_mismatch"'
        )
        assert stolen.json()["decision_id"]  # a decision, recorded
        missing = proxy.get(
            "/forward-auth", headers=original() | {"Authorization": f"DPoP {bound.token}"}
        )
        assert reason(missing) == (401, "mtls.cert_missing")
        # a DPoP proof by the agent's own key never replaces the certificate
        url = PUBLIC + TARGET
        signed = make_proof(bound.agent.key, method="GET", url=url, access_token=bound.token)
        with_proof = original() | {"Authorization": f"DPoP {bound.token}", "DPoP": signed}
        assert reason(proxy.get("/forward-auth", headers=with_proof)) == (
            401,
            "mtls.cert_missing",
        )
        ok = proxy.get("/forward-auth", headers=original() | thief.bearer | thief.escaped)
        assert ok.status_code == 200, ok.text  # the twin: the thief's own task, its cert


def test_a_bad_or_repeated_header_from_the_proxy_fails_closed(
    cp: ControlPlane, bound: Holder
) -> None:
    with client(app_for(cp, tls=TLS), PROXY) as proxy:
        bad = proxy.get(
            "/forward-auth", headers=original() | bound.bearer | {"X-Client-Cert": "not-a-cert"}
        )
        assert reason(bad) == (401, "mtls.cert_malformed")
        header = ("X-Client-Cert", bound.escaped["X-Client-Cert"])
        repeated = [*original().items(), *bound.bearer.items(), header, header]
        twice = proxy.get("/forward-auth", headers=repeated)
        assert reason(twice) == (401, "mtls.cert_malformed")
        recorded = cp.decisions()[-1]
        assert recorded["decision_id"] == twice.json()["decision_id"]
        assert recorded["enforcement_point"] == "forward-auth"
        empty = proxy.get(  # nginx without a client certificate: an empty value
            "/forward-auth", headers=original() | bound.bearer | {"X-Client-Cert": ""}
        )
        assert reason(empty) == (401, "auth.scheme")
        assert proxy.get(
            "/forward-auth", headers=original() | bound.bearer | bound.escaped
        ).is_success


def test_envoy_xfcc_from_the_trusted_proxy(cp: ControlPlane, bound: Holder) -> None:
    tls = {**TLS, "client_cert_header": "X-Forwarded-Client-Cert"}
    app = app_for(cp, "envoy", tls=tls)
    with client(app, PROXY) as envoy, client(app, STRANGER) as stranger:
        allowed = envoy.get("/forward-auth" + TARGET, headers=bound.bearer | bound.xfcc)
        assert allowed.status_code == 200, allowed.text
        ignored = stranger.get("/forward-auth" + TARGET, headers=bound.bearer | bound.xfcc)
        assert reason(ignored) == (401, "auth.scheme")
        thief = holder(cp)
        with thief.agent:
            stolen = envoy.get("/forward-auth" + TARGET, headers=bound.bearer | thief.xfcc)
            assert reason(stolen) == (401, "mtls.cert_mismatch")


def test_dpop_tokens_still_need_their_proof_whatever_certificate_comes(
    cp: ControlPlane, bound: Holder
) -> None:
    with (
        cp.agent() as agent,
        agent.task(playbook=str(PLAYBOOK["name"]), intent=INTENT, audience=[PUBLIC]) as task,
        client(app_for(cp, tls=TLS), PROXY) as proxy,
    ):
        token_only = original() | {"Authorization": f"DPoP {task.token}"} | bound.escaped
        assert reason(proxy.get("/forward-auth", headers=token_only)) == (401, "dpop.missing")
        bearer = original() | {"Authorization": f"Bearer {task.token}"} | bound.escaped
        assert reason(proxy.get("/forward-auth", headers=bearer)) == (401, "dpop.missing")
        signed = original() | task.headers("GET", PUBLIC + TARGET) | bound.escaped
        assert proxy.get("/forward-auth", headers=signed).status_code == 200  # the twin


@pytest.mark.parametrize(
    ("tls", "reason"),
    [
        ({"client_cert_header": "X-Client-Cert"}, "config.tls"),  # without its proxies
        ({"trusted_proxies": ["127.0.0.1/32"]}, "config.tls"),  # without a header
        ({**TLS, "cert_file": "server.pem"}, "config.unknown_key"),  # plain HTTP here
        ({**TLS, "client_cert_header": "Authorization"}, "config.tls"),
        ({**TLS, "trusted_proxies": ["not-an-address"]}, "config.tls"),
        ("X-Client-Cert", "config.type"),
    ],
)
def test_bad_tls_tables_are_refused(tls: Any, reason: str) -> None:
    doc = {"public_url": PUBLIC, "destination": "api", "routes": [dict(ROUTE)], "tls": tls}
    with pytest.raises(InvalidInput) as refused:
        parse_config(doc)
    assert refused.value.reason == reason
    assert "tls" in refused.value.message


ROUTE = {"method": "GET", "path": "/reports/{name}", "action": "read", "resource": "r/{name}"}


def test_a_good_tls_table_is_kept() -> None:
    doc = {"public_url": PUBLIC, "destination": "api", "routes": [dict(ROUTE)], "tls": TLS}
    config = parse_config(doc)
    assert config.tls.client_cert_header == "X-Client-Cert"
    assert config.tls.trusted_proxies == ("127.0.0.1/32", "::1/128")
    assert parse_config({**doc, "tls": {}}).tls.client_cert_header is None
