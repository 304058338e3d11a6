"""The tasks core wired as a deployment wires it: a home over memory stores, a fixed clock.

:func:`build_world` writes a zerolane home whose store URL is ``memory://`` (keys, the
default policies, the config), opens it with :meth:`Deployment.open` and a
:class:`FixedClock`, and registers the ``reports`` playbook. Agents attest with a join
token and their own P-256 key, exactly as the SDK does; every DPoP proof is stamped with
the fixed clock, so moving the clock moves everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.attestors.cases import FixedClock
from zerolane.audit.events import Actor
from zerolane.config import CONFIG_NAME, Config, TasksConfig, render_config
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.identity.keyring import Keyring
from zerolane.identity.service import AttestRequest
from zerolane.policy.defaults import install_defaults
from zerolane.server.deployment import Deployment
from zerolane.store.memory import MemoryStores
from zerolane.store.ports import Stores
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import WorkloadCaller
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tasks.lifecycle import OpenedTask, OpenRequest
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

TD = "example.org"
ISSUER = f"spiffe://{TD}"
AGENT = f"spiffe://{TD}/agents/a1"
PEER = f"spiffe://{TD}/agents/a2"
OUTSIDER = f"spiffe://{TD}/robots/r1"  # registered, but not among the playbook's openers
ADMIN = Actor("admin", "test")
OPEN_URL = f"https://cp.{TD}/v1/tasks"

FINANCE = f"finance.{TD}"  # internal (the trust domain's hosts are internal)
WIKI = f"wiki.{TD}"  # internal
SLACK = "hooks.slack.com"  # outside: egress
EVIL = "evil.example.net"  # in no playbook
GATEWAY = "https://gw.example.org"

PLAYBOOK_DOC: dict[str, object] = {
    "name": "reports",
    "description": "Summarize finance reports onto the wiki and post a status.",
    "actions": ["read", "write"],
    "resources": ["finance/*", "wiki/**"],
    "destinations": [FINANCE, WIKI, SLACK],
    "data_ceiling": "confidential",
    "max_ttl": 900,
    "max_calls": 20,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
PLAYBOOK = parse_playbook(PLAYBOOK_DOC, "tests/tasks")


@dataclass
class Agent:
    """A registered workload holding its DPoP key and a key-bound JWT-SVID."""

    spiffe_id: str
    key: ec.EllipticCurvePrivateKey
    svid: str

    @property
    def jkt(self) -> str:
        return thumbprint(proof_jwk(self.key))


@dataclass
class World:
    deployment: Deployment
    clock: FixedClock
    agents: dict[str, Agent] = field(default_factory=dict)

    @property
    def stores(self) -> MemoryStores:
        stores = self.deployment.stores
        assert isinstance(stores, MemoryStores)
        return stores

    @property
    def any_stores(self) -> Stores:
        """The stores, whatever their backend."""
        return self.deployment.stores

    # identities
    def agent(
        self, spiffe_id: str = AGENT, *, bound: bool = True, selectors: tuple[str, ...] = ()
    ) -> Agent:
        """Register ``spiffe_id`` (once) and attest it with a fresh key."""
        deployment = self.deployment
        if self.any_stores.get_workload(spiffe_id) is None:
            deployment.registry.register(spiffe_id, selectors=selectors, owner="team", actor=ADMIN)
        key = ec.generate_private_key(ec.SECP256R1())
        join = deployment.join_tokens.create(spiffe_id, ttl=600, actor=ADMIN).token
        issued = deployment.identity.attest(
            AttestRequest(
                evidence={"join_token": join}, public_jwk=proof_jwk(key) if bound else None
            )
        )
        agent = Agent(spiffe_id, key, issued.token)
        self.agents[spiffe_id] = agent
        return agent

    def proof(
        self, key: ec.EllipticCurvePrivateKey, method: str, url: str, token: str | None
    ) -> str:
        """A fresh DPoP proof at the world's time."""
        return make_proof(
            key, method=method, url=url, access_token=token, iat=int(self.clock.now())
        )

    def caller(self, agent: Agent) -> WorkloadCaller:
        """The agent authenticated for ``POST /v1/tasks`` (SVID + proof)."""
        proof = self.proof(agent.key, "POST", OPEN_URL, agent.svid)
        return self.deployment.authenticator.workload(
            agent.svid, proof, method="POST", url=OPEN_URL
        )

    # tasks
    def open(
        self,
        agent: Agent,
        details: list[Any] | None = None,
        *,
        intent: str = "Summarize Q3 results for the wiki",
        playbook: str = "reports",
        **options: Any,
    ) -> OpenedTask:
        return self.deployment.lifecycle.open(
            self.caller(agent),
            OpenRequest(intent=intent, playbook=playbook, authorization_details=details, **options),
        )

    def ask(
        self,
        agent: Agent,
        token: str,
        action: str = "read",
        resource: str = "finance/q3",
        destination: str = FINANCE,
        sensitivity: str | None = "internal",
        *,
        method: str | None = None,
        audience: str | None = None,
        proof: str | None = None,
        bound_to: str | None = None,
    ) -> Decision:
        """Decide one request made under ``token``, with a fresh proof unless given
        (``bound_to``: the task the enforcement point binds the request to)."""
        method = method or ("GET" if action == "read" else "POST")
        url = f"https://{destination}/{resource}"
        if proof is None:
            proof = self.proof(agent.key, method, url, token)
        return self.deployment.decider.decide(
            token,
            proof,
            DecideInput(
                method=method,
                url=url,
                action=action,
                resource=resource,
                destination=destination,
                sensitivity=sensitivity,
                audience=audience,
                task_id=bound_to,
            ),
        )

    def task(self, task_id: str) -> TaskRecord:
        """The task as stored right now."""
        task = self.any_stores.get_task(task_id)
        assert task is not None
        return task

    # audit
    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every audit event recorded so far (of ``kind``), as its JSON body."""
        bodies = [json.loads(r.body) for r in self.any_stores.read_events(0, 100_000)]
        return [b for b in bodies if kind is None or b["kind"] == kind]


def details(**fields: Any) -> list[dict[str, Any]]:
    """One RFC 9396 entry of type ``zerolane_task`` with ``fields``."""
    return [{"type": "zerolane_task", **fields}]


def build_world(home: Path, store_url: str = "memory://", *, at: float | None = None) -> World:
    """A home over memory stores (or ``store_url``) with the default policies, opened at
    a fixed time (``at``, else the clock's default)."""
    clock = FixedClock() if at is None else FixedClock(at)
    ensure_private_dir(home)
    Keyring(home / "keys", clock).create()
    config = Config(
        trust_domain=TD,
        store_url=store_url,
        tasks=TasksConfig(internal_destinations=(TD, f"*.{TD}")),
    )
    install_defaults(home / config.policy_dir)
    write_private(home / CONFIG_NAME, render_config(config).encode())
    deployment = Deployment.open(home, clock)
    deployment.playbooks.apply(PLAYBOOK, ADMIN)
    return World(deployment, clock)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home")
    yield built
    built.deployment.close()


@pytest.fixture
def agent(world: World) -> Agent:
    return world.agent(AGENT)
