"""A real control plane for the in-process guard and forward-auth tests.

:func:`control_plane` creates a home with :func:`init_home` (SQLite, default policies),
registers an agent and the ``tools`` playbook, and serves the API on a loopback port;
agents attest through the SDK exactly as in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.server.task_fixtures import add_test_point
from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer
from zerolane.sdk import Agent
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

TD = "example.org"
AGENT = f"spiffe://{TD}/agents/tool-runner"
ADMIN = Actor("admin", "tests")
API = "reports-api"  # the destination label of the API behind a proxy
SLACK = "hooks.slack.com"  # outside the trust domain: egress
PLAYBOOK: dict[str, Any] = {
    "name": "tools",
    "description": "Read reports and files, write pages, post a status.",
    "actions": ["read", "write"],
    "resources": ["files/**", "reports/*", "pages/*", "services/*"],
    "destinations": ["inproc", API, SLACK],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 50,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
INTENT = "Summarize the Q3 reports"


@dataclass
class ControlPlane:
    deployment: Deployment
    server: BackgroundServer
    #: the credential of an enforcement point serving the tests' URLs (the guard's too)
    enforcement_point: str

    @property
    def url(self) -> str:
        return self.server.url

    def join_token(self) -> str:
        return self.deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token

    def agent(self) -> Agent:
        return Agent.attest(
            self.url, join_token=self.join_token(), enforcement_point=self.enforcement_point
        )

    def decisions(self) -> list[dict[str, Any]]:
        """The details of every ``decision`` audit event so far."""
        bodies = [json.loads(r.body) for r in self.deployment.audit.iter_records()]
        return [b["details"] for b in bodies if b["kind"] == "decision"]


@contextmanager
def control_plane(home: Path) -> Iterator[ControlPlane]:
    deployment, _admin = init_home(home, TD)
    try:
        deployment.registry.register(AGENT, selectors=[], owner="tools-team", actor=ADMIN)
        deployment.playbooks.apply(parse_playbook(PLAYBOOK, "tests/gateway"), ADMIN)
        point = add_test_point(deployment)
        with BackgroundServer(deployment) as server:
            yield ControlPlane(deployment, server, point)
    finally:
        deployment.close()
