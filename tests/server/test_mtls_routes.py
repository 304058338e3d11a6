"""The API side of X.509-SVIDs and certificate-bound tokens: attestation with a CSR, the
CA in the SPIFFE bundle, tasks opened and completed, and delegated (``POST /v1/token``),
with a client certificate taken from a trusted proxy's header (never from anyone
else's). Attack rows with twins."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx2
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient

from tests.identity.x509_issuer import csr_for, issue
from zerolane.audit.events import Actor
from zerolane.config import CONFIG_NAME
from zerolane.identity.bundle import parse_bundle
from zerolane.identity.ca import X509Authority
from zerolane.identity.x509_svid import parse_chain, validate
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc8693 import ACCESS_TOKEN_TYPE, GRANT_TYPE, JWT_TYPE
from zerolane.tokens.rfc8705 import cert_thumbprint
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

TD = "example.org"
AGENT = f"spiffe://{TD}/agents/a1"
ADMIN = Actor("admin", "t")
PROXY = ("127.0.0.1", 50000)
STRANGER = ("10.9.8.7", 50000)
PLAYBOOK = {
    "name": "reports",
    "description": "Read reports.",
    "actions": ["read"],
    "resources": ["finance/*"],
    "destinations": [f"finance.{TD}"],
    "data_ceiling": "internal",
    "max_ttl": 900,
    "max_calls": 5,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
TLS = """
[tls]
client_cert_header = "X-Client-Cert"
trusted_proxies = ["127.0.0.1/32", "::1/128"]
"""


@dataclass
class Held:
    key: ec.EllipticCurvePrivateKey
    chain_pem: str
    bundle_pem: str

    @property
    def leaf(self) -> x509.Certificate:
        return parse_chain(self.chain_pem)[0]

    @property
    def header(self) -> dict[str, str]:
        """What nginx sends: ``$ssl_client_escaped_cert``."""
        return {"X-Client-Cert": quote(self.leaf.public_bytes(Encoding.PEM).decode(), safe="")}


@dataclass
class Api:
    deployment: Deployment
    proxy: TestClient  # requests arriving from the trusted proxy
    stranger: TestClient  # requests from anyone else

    def attest(self, csr: str | None = None) -> dict[str, object]:
        join = self.deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
        body: dict[str, object] = {"join_token": join}
        if csr is not None:
            body["csr"] = csr
        reply = self.stranger.post("/v1/attest", json=body)
        assert reply.status_code == 200, reply.text
        answer: dict[str, object] = reply.json()
        return answer

    def held(self) -> Held:
        key = ec.generate_private_key(ec.SECP256R1())
        answer = self.attest(csr_for(key))
        return Held(key, str(answer["x509_svid"]), str(answer["x509_bundle"]))

    def open(self, client: TestClient, headers: dict[str, str]) -> httpx2.Response:
        body = {"intent": "Read Q3", "playbook": "reports"}
        return client.post("/v1/tasks", json=body, headers=headers)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    home = tmp_path / "home"
    made, _ = init_home(home, TD)
    made.close()
    with (home / CONFIG_NAME).open("a") as config:
        config.write(TLS)
    deployment = Deployment.open(home)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "tests"), ADMIN)
    app = create_app(deployment)
    with (
        TestClient(app, raise_server_exceptions=False, client=PROXY) as proxy,
        TestClient(app, raise_server_exceptions=False, client=STRANGER) as stranger,
    ):
        yield Api(deployment, proxy, stranger)
    deployment.close()


# issuance
def test_attest_with_a_csr_returns_an_x509_svid_and_the_bundle(api: Api) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    answer = api.attest(csr_for(key, uris=(f"spiffe://{TD}/admin",)))
    chain = parse_chain(answer["x509_svid"])
    roots = x509.load_pem_x509_certificates(str(answer["x509_bundle"]).encode())
    verified = validate(chain, roots, trust_domain=TD, at=api.deployment.clock.now())
    assert str(verified.spiffe_id) == AGENT  # attested, never the CSR's
    assert chain[0].public_key() == key.public_key()
    assert answer["x509_expires_at"] == int(chain[0].not_valid_after_utc.timestamp())
    assert isinstance(answer["svid"], str)  # the JWT-SVID as before


def test_attest_without_a_csr_is_unchanged(api: Api) -> None:
    answer = api.attest()
    assert (answer["x509_svid"], answer["x509_bundle"]) == (None, None)


def test_a_bad_csr_is_a_400_and_keeps_the_join_token(api: Api) -> None:
    join = api.deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_for(key).replace("A", "B", 1)
    reply = api.stranger.post("/v1/attest", json={"join_token": join, "csr": csr})
    assert reply.status_code == 400
    assert reply.json()["reason"].startswith("csr.")
    again = api.stranger.post("/v1/attest", json={"join_token": join, "csr": csr_for(key)})
    assert again.status_code == 200


def test_the_spiffe_bundle_publishes_the_ca(api: Api) -> None:
    document = api.stranger.get("/.well-known/spiffe-bundle").text
    bundle = parse_bundle(document)  # our own strict parser accepts it
    assert list(bundle.x509_authorities) == api.deployment.x509_ca.roots()
    keys = api.stranger.get("/.well-known/spiffe-bundle").json()["keys"]
    x509_keys = [k for k in keys if k["use"] == "x509-svid"]
    assert len(x509_keys) == 1
    der = api.deployment.x509_ca.certificate().public_bytes(Encoding.DER)
    assert x509_keys[0]["x5c"] == [base64.b64encode(der).decode()]


# tasks by certificate
def test_certificate_header_from_an_untrusted_peer_is_ignored(api: Api) -> None:
    held = api.held()
    refused = api.open(api.stranger, held.header)  # a client-sent header: binds nothing
    assert refused.status_code == 401
    assert refused.json()["reason"] == "auth.missing"
    opened = api.open(api.proxy, held.header)  # the twin: from the trusted proxy
    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert body["token_type"] == "Bearer"
    cnf = jwt.decode(body["token"], options={"verify_signature": False})["cnf"]
    assert cnf == {"x5t#S256": _x5t(held)}


def test_complete_needs_the_bound_certificate(api: Api) -> None:
    held, other = api.held(), api.held()
    body = api.open(api.proxy, held.header).json()
    url = f"/v1/tasks/{body['task_id']}/complete"
    bearer = {"Authorization": f"Bearer {body['token']}"}
    for client, headers, reason in (
        (api.proxy, bearer, "auth.scheme"),  # no certificate: Bearer is not accepted
        (api.stranger, bearer | held.header, "auth.scheme"),  # its header is ignored
        (api.proxy, {"Authorization": f"DPoP {body['token']}"}, "mtls.cert_missing"),
        (api.proxy, bearer | other.header, "mtls.cert_mismatch"),
    ):
        refused = client.post(url, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["reason"] == reason
    done = api.proxy.post(url, headers=bearer | held.header)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "completed"


def test_a_malformed_header_from_the_proxy_fails_closed(api: Api) -> None:
    refused = api.open(api.proxy, {"X-Client-Cert": "not-a-certificate"})
    assert refused.status_code == 401
    assert refused.json()["reason"] == "mtls.cert_malformed"


def test_an_x509_svid_of_another_ca_opens_nothing(api: Api, tmp_path: Path) -> None:
    impostor = issue(X509Authority(tmp_path / "impostor", TD, api.deployment.clock), AGENT)
    forged = {"X-Client-Cert": quote(impostor.issued.leaf.public_bytes(Encoding.PEM).decode())}
    refused = api.open(api.proxy, forged)
    assert refused.status_code == 401
    assert refused.json()["reason"] == "x509.chain"
    assert api.open(api.proxy, api.held().header).status_code == 201


def _x5t(held: Held) -> str:
    return cert_thumbprint(held.leaf.public_bytes(Encoding.DER))


# delegation from a certificate-bound parent (POST /v1/token)
HELPER = f"spiffe://{TD}/agents/helper"
TEAM = {**PLAYBOOK, "name": "team", "delegable": True, "max_depth": 2}
TOKEN_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Helper:
    """The delegate: a workload with a key-bound JWT-SVID (the actor token)."""

    key: ec.EllipticCurvePrivateKey
    svid: str


def _team(api: Api) -> Helper:
    api.deployment.playbooks.apply(parse_playbook(TEAM, "tests"), ADMIN)
    api.deployment.registry.register(HELPER, selectors=[], owner=None, actor=ADMIN)
    key = ec.generate_private_key(ec.SECP256R1())
    join = api.deployment.join_tokens.create(HELPER, ttl=600, actor=ADMIN).token
    reply = api.stranger.post("/v1/attest", json={"join_token": join, "public_jwk": proof_jwk(key)})
    assert reply.status_code == 200, reply.text
    return Helper(key, reply.json()["svid"])


def _open_team(api: Api, held: Held) -> str:
    body = {"intent": "Read Q3", "playbook": "team", "max_calls": 4}
    reply = api.proxy.post("/v1/tasks", json=body, headers=held.header)
    assert reply.status_code == 201, reply.text
    assert reply.json()["token_type"] == "Bearer"
    return str(reply.json()["token"])


def _delegation(parent: str, helper: Helper) -> dict[str, str]:
    return {
        "grant_type": GRANT_TYPE,
        "subject_token": parent,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "actor_token": helper.svid,
        "actor_token_type": JWT_TYPE,
        "max_calls": "2",
    }


def _exchange(client: TestClient, form: dict[str, str], headers: dict[str, str]) -> httpx2.Response:
    return client.post("/v1/token", data=form, headers=TOKEN_FORM | headers)


def test_a_certificate_bound_parent_delegates_with_its_certificate(api: Api) -> None:
    helper, held = _team(api), api.held()
    parent = _open_team(api, held)
    reply = _exchange(api.proxy, _delegation(parent, helper), held.header)  # no proof
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "DPoP"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": thumbprint(proof_jwk(helper.key))}  # the delegate's key
    assert claims["sub"] == HELPER
    assert claims["act"]["act"]["sub"] == AGENT
    child = api.deployment.lifecycle.get(body["task_id"])
    assert (child.parent_id, child.max_calls) == (_task_id(parent), 2)
    # the child is the delegate's: its proof is accepted, no certificate is needed
    target = f"https://finance.{TD}/reports/q3"
    token = body["access_token"]
    decide = {
        "token": token,
        "dpop": make_proof(helper.key, method="GET", url=target, access_token=token),
        "request": {
            "method": "GET",
            "url": target,
            "action": "read",
            "resource": "finance/q3",
            "destination": f"finance.{TD}",
        },
    }
    credential, _ = api.deployment.enforcement_points.add(
        "finance-proxy", [f"https://finance.{TD}"], Actor("admin", "t")
    )
    point = {"Authorization": f"Bearer {credential}"}
    allowed = api.stranger.post("/v1/decide", json=decide, headers=point)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["decision"] == "allow", allowed.text
    decide["dpop"] = make_proof(held.key, method="GET", url=target, access_token=token)
    stolen = api.proxy.post("/v1/decide", json=decide, headers={**held.header, **point})
    assert stolen.json()["reasons"][0].startswith("dpop."), stolen.text  # not the parent's


def test_delegating_a_certificate_bound_parent_without_its_certificate_is_refused(
    api: Api,
) -> None:
    helper, held, other = _team(api), api.held(), api.held()
    parent = _open_team(api, held)
    form = _delegation(parent, helper)
    url = "http://testserver/v1/token"
    proof = {"DPoP": make_proof(held.key, method="POST", url=url, access_token=parent)}
    for client, headers, reason in (
        (api.proxy, {}, "mtls.cert_missing"),  # no certificate at all
        (api.proxy, proof, "mtls.cert_missing"),  # a proof by its key never replaces it
        (api.stranger, held.header, "mtls.cert_missing"),  # a client-sent header: ignored
        (api.proxy, other.header, "mtls.cert_mismatch"),  # another workload's certificate
    ):
        refused = _exchange(client, form, headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["reason"] == reason
        assert refused.headers["www-authenticate"] == (
            f'Bearer error="invalid_token", error_description="{reason}"'
        )
    # refused before the parent's holder was authenticated: token.refused, at a rate
    api.deployment.refusals.flush(10)
    bodies = [json.loads(e.body) for e in api.deployment.audit.iter_records()]
    assert not [b for b in bodies if b["kind"] == "task.delegate"]
    events = [b for b in bodies if b["kind"] == "token.refused"]
    assert [e["reason"] for e in events] == [
        "mtls.cert_missing",
        "mtls.cert_missing",
        "mtls.cert_missing",
        "mtls.cert_mismatch",
    ]
    mismatch = events[-1]  # the token verified: the audit names its task and workload
    task_id = jwt.decode(parent, options={"verify_signature": False})["task"]
    assert (mismatch["subject"], mismatch["actor"]["id"]) == (task_id, AGENT)
    assert mismatch["details"]["presented_x5t"] != mismatch["details"]["expected_x5t"]
    granted = _exchange(api.proxy, form, held.header)  # the twin
    assert granted.status_code == 200, granted.text


def test_a_dpop_parent_still_needs_its_proof_whatever_certificate_comes(api: Api) -> None:
    helper, held = _team(api), api.held()
    key = held.key
    join = api.deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
    attested = api.stranger.post(
        "/v1/attest", json={"join_token": join, "public_jwk": proof_jwk(key)}
    )
    svid = attested.json()["svid"]
    url = "http://testserver/v1/tasks"
    opened = api.stranger.post(
        "/v1/tasks",
        json={"intent": "Read Q3", "playbook": "team", "max_calls": 4},
        headers={
            "Authorization": f"DPoP {svid}",
            "DPoP": make_proof(key, method="POST", url=url, access_token=svid),
        },
    )
    assert opened.status_code == 201, opened.text
    parent = opened.json()["token"]
    assert "jkt" in jwt.decode(parent, options={"verify_signature": False})["cnf"]
    form = _delegation(parent, helper)
    refused = _exchange(api.proxy, form, held.header)  # the certificate, no proof
    assert refused.status_code == 401, refused.text
    assert refused.json()["reason"] == "dpop.missing"
    token_url = "http://testserver/v1/token"
    proof = {"DPoP": make_proof(key, method="POST", url=token_url, access_token=parent)}
    granted = _exchange(api.proxy, form, proof | held.header)  # the twin: with its proof
    assert granted.status_code == 200, granted.text


def _task_id(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["task"])
