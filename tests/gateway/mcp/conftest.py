"""A running stack: control plane, the MCP gateway, two upstreams (stdio and HTTP).

Upstream ``tools`` is the sample server started by the gateway over stdio; upstream
``web`` is the same server as a streamable HTTP subprocess, exposed with prefix
``web_``. The playbook lets a task read reports and post messages on ``tools`` and
read reports on ``web``; it never allows ``delete_report``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clocks import AheadClock
from tests.gateway.mcp.harness import SAMPLE, GatewayServer, HttpUpstream
from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.mcp import GatewayConfig, parse_gateway_config
from zerolane.sdk import Agent, Task
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

TD = "example.org"
AGENT = f"spiffe://{TD}/agents/reporter"
ADMIN = Actor("admin", "mcp-tests")
PLAYBOOK: dict[str, Any] = {
    "name": "report-reader",
    "description": "Read finance reports through the MCP gateway and post a summary.",
    "actions": [
        "mcp:tools/read_report",
        "mcp:tools/post_message",
        "mcp:tools/delete_report",
        "mcp:web/read_report",
    ],
    "resources": ["mcp/tools/*", "mcp/web/*"],
    "destinations": [f"reports.{TD}", f"web.{TD}"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 20,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
#: what tasks ask for by default: everything but delete_report
ACTIONS = ["mcp:tools/read_report", "mcp:tools/post_message", "mcp:web/read_report"]


def gateway_config(port: int, cp_url: str, web_url: str, stdio_log: Path) -> dict[str, Any]:
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "authorization_servers": [cp_url],
        "servers": [
            {
                "name": "tools",
                "command": sys.executable,
                "args": [str(SAMPLE), "--log", str(stdio_log)],
                "destination": f"reports.{TD}",
                "tools": {"read_report": {"sensitivity": "internal"}},
            },
            {
                "name": "web",
                "url": web_url,
                "destination": f"web.{TD}",
                "prefix": "web_",
                "default_sensitivity": "public",
            },
        ],
    }


@dataclass
class Stack:
    deployment: Deployment
    cp_url: str
    gateway: GatewayServer
    config: GatewayConfig
    stdio_log: Path
    web_log: Path
    #: the deployment's clock (and so the gateway's): set forward to end a task's window
    clock: AheadClock

    @property
    def url(self) -> str:
        return self.gateway.url

    def agent(self) -> Agent:
        token = self.deployment.join_tokens.create(AGENT, ttl=600, actor=ADMIN).token
        return Agent.attest(self.cp_url, join_token=token)

    def task(
        self,
        agent: Agent,
        *,
        actions: list[str] | None = None,
        datatypes: list[str] | None = None,
        audience: str | None = None,
        **kwargs: Any,
    ) -> Task:
        details: dict[str, Any] = {"type": "zerolane_task", "actions": actions or ACTIONS}
        if datatypes is not None:
            details["datatypes"] = datatypes
        return agent.open_task(
            playbook=PLAYBOOK["name"],
            intent="Summarize the Q3 report for the team",
            authorization_details=[details],
            audience=[audience or self.config.audience],
            **kwargs,
        )

    def calls_used(self, task: Task) -> int:
        return self.deployment.lifecycle.get(task.task_id).calls_used

    def events(self, kind: str) -> list[dict[str, Any]]:
        from zerolane.audit.log import event_json

        found = [event_json(r) for r in self.deployment.audit.iter_records()]
        return [e for e in found if e["kind"] == kind]


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("mcp-gateway")
    clock = AheadClock()
    deployment, _admin = init_home(root / "home", TD, clock)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "test"), ADMIN)
    stdio_log, web_log = root / "stdio.jsonl", root / "web.jsonl"
    try:
        with BackgroundServer(deployment) as cp, HttpUpstream(web_log) as web:
            doc = gateway_config(free_port(), cp.url, web.url, stdio_log)
            config = parse_gateway_config(doc)
            with GatewayServer(config, enforcement_of(deployment)) as gateway:
                yield Stack(deployment, cp.url, gateway, config, stdio_log, web_log, clock)
    finally:
        deployment.close()
