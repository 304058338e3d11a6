"""Helpers for the task API tests: a playbook, key-bound workloads and DPoP requests.

Everything goes through the :class:`~fastapi.testclient.TestClient`, whose requests are
for ``http://testserver``: DPoP proofs for the control plane name that URL.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.server.conftest import AGENT, Api
from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

BASE = "http://testserver"
TASKS_URL = f"{BASE}/v1/tasks"
ADMIN = Actor("admin", "t")
OTHER_AGENT = "spiffe://example.org/agents/a2"
JOB = "spiffe://example.org/jobs/nightly"  # registered, but not an opener of PLAYBOOK
FINANCE = "https://finance.example.org"
SLACK = "https://hooks.slack.com"
#: the URLs the tests' enforcement point serves (``POST /v1/decide`` asks only about these)
POINT_URLS = (
    FINANCE,
    SLACK,
    "https://evil.example",
    "https://finance-api.internal",
    "https://inproc.invalid",
    "https://tools.invalid",
    "https://mcp.example.org",
    "https://zerolane.example.org",
    "http://attacker.example",
)


def add_test_point(deployment: Deployment) -> str:
    """Register the tests' enforcement point; its credential."""
    credential, _ = deployment.enforcement_points.add("tests", POINT_URLS, ADMIN)
    return credential


PLAYBOOK: dict[str, Any] = {
    "name": "quarterly-report",
    "description": "Summarize quarterly results from finance reports onto the wiki.",
    "actions": ["read", "write"],
    "resources": ["reports/*", "pages/*", "services/*"],
    "destinations": ["finance.example.org", "wiki.example.org", "hooks.slack.com"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 20,
    "openers": {"spiffe_ids": ["spiffe://example.org/agents/*"]},
}
INTENT = "Summarize Q3 results for the wiki"
READ = {"action": "read", "sensitivity": "internal"}


def playbook(**changes: Any) -> dict[str, Any]:
    """A copy of :data:`PLAYBOOK` with ``changes``."""
    return {**copy.deepcopy(PLAYBOOK), **changes}


@dataclass
class Workload:
    """An attested workload: its SPIFFE ID, its private key and its JWT-SVID."""

    spiffe_id: str
    key: ec.EllipticCurvePrivateKey
    svid: str


@dataclass
class Opened:
    """A task opened through the API, with the workload that holds it."""

    task_id: str
    token: str
    holder: Workload
    body: dict[str, Any]


def dpop(key: ec.EllipticCurvePrivateKey, token: str, method: str, url: str) -> dict[str, str]:
    """``Authorization: DPoP <token>`` plus a fresh proof for ``method url``."""
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": make_proof(key, method=method, url=url, access_token=token),
    }


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, unverified (the tests check what the server put in them)."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


class TaskApi:
    """The task endpoints of a fresh home, with :data:`PLAYBOOK` applied."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client
        self.deployment = api.deployment
        for spiffe_id in (OTHER_AGENT, JOB):
            self.deployment.registry.register(spiffe_id, selectors=[], owner=None, actor=ADMIN)
        self.apply_playbook(PLAYBOOK)
        #: ``Authorization`` of the tests' enforcement point, for ``POST /v1/decide``
        self.point = {"Authorization": f"Bearer {add_test_point(self.deployment)}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.api.auth

    @property
    def admin_actor(self) -> Actor:
        return ADMIN

    def apply_playbook(self, document: Mapping[str, Any]) -> None:
        self.deployment.playbooks.apply(parse_playbook(document, "test"), ADMIN)

    def attest(self, spiffe_id: str = AGENT, *, bind: bool = True) -> Workload:
        """Attest with a join token; ``bind=False`` omits the public key (no ``cnf``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        body: dict[str, Any] = {"join_token": self.api.join_token(spiffe_id)}
        if bind:
            body["public_jwk"] = proof_jwk(key)
        reply = self.client.post("/v1/attest", json=body)
        assert reply.status_code == 200, reply.text
        return Workload(spiffe_id, key, reply.json()["svid"])

    def open(
        self,
        workload: Workload,
        body: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> httpx2.Response:
        """POST /v1/tasks with the workload's SVID and a fresh proof (unless ``headers``)."""
        sent = {"playbook": PLAYBOOK["name"], "intent": INTENT} if body is None else body
        if headers is None:
            headers = dpop(workload.key, workload.svid, "POST", TASKS_URL)
        return self.client.post("/v1/tasks", json=dict(sent), headers=dict(headers))

    def opened(self, workload: Workload | None = None, **body: Any) -> Opened:
        """Open a task that must be granted."""
        holder = workload or self.attest()
        reply = self.open(holder, {"playbook": PLAYBOOK["name"], "intent": INTENT, **body})
        assert reply.status_code == 201, reply.text
        doc = reply.json()
        return Opened(doc["task_id"], doc["token"], holder, doc)

    def complete(
        self, task_id: str, token: str, key: ec.EllipticCurvePrivateKey
    ) -> httpx2.Response:
        url = f"{BASE}/v1/tasks/{task_id}/complete"
        return self.client.post(
            f"/v1/tasks/{task_id}/complete", headers=dpop(key, token, "POST", url)
        )

    def decide(
        self,
        task: Opened,
        method: str,
        url: str,
        *,
        proof: str | None = "fresh",
        token: str | None = None,
        **mapping: str,
    ) -> dict[str, Any]:
        """POST /v1/decide for one request of ``task``; ``proof=None`` sends none."""
        token = token if token is not None else task.token
        body: dict[str, Any] = {
            "token": token,
            "request": {"method": method, "url": url, **mapping},
        }
        if proof == "fresh":
            body["dpop"] = make_proof(task.holder.key, method=method, url=url, access_token=token)
        elif proof is not None:
            body["dpop"] = proof
        reply = self.client.post("/v1/decide", json=body, headers=self.point)
        assert reply.status_code == 200, reply.text
        decided: dict[str, Any] = reply.json()
        return decided

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The audit events of ``kind``, as the admin API returns them."""
        reply = self.client.get("/v1/admin/audit", params={"limit": 1000}, headers=self.admin)
        return [e for e in reply.json()["events"] if e["kind"] == kind]


@dataclass
class Served:
    """A home with :data:`PLAYBOOK` served by a real uvicorn on a loopback port."""

    url: str
    deployment: Deployment
    #: the credential of an enforcement point serving :data:`POINT_URLS`
    enforcement_point: str

    def join_token(self, spiffe_id: str = AGENT) -> str:
        return self.deployment.join_tokens.create(spiffe_id, ttl=600, actor=ADMIN).token


@contextmanager
def served(home: Path) -> Iterator[Served]:
    """Init ``home`` (agents a1 and a2, :data:`PLAYBOOK`) and serve it until exit."""
    deployment, _ = init_home(home, "example.org")
    try:
        for spiffe_id in (AGENT, OTHER_AGENT):
            deployment.registry.register(spiffe_id, selectors=[], owner=None, actor=ADMIN)
        deployment.playbooks.apply(parse_playbook(PLAYBOOK, "test"), ADMIN)
        point = add_test_point(deployment)
        with BackgroundServer(deployment) as server:
            yield Served(server.url, deployment, point)
    finally:
        deployment.close()
