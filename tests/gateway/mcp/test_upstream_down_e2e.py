"""An upstream that goes down keeps its tools listed, and a call to one is decided and
answered ``-32004`` (never ``request.unmapped``, never audited as a policy deny); the
gateway says it is not ready, naming it. Its twin, the upstream that still serves,
answers as before."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import MCPError

from tests.gateway.mcp.conftest import ADMIN, TD, Stack
from tests.gateway.mcp.harness import GatewayServer, HttpUpstream, mcp_session
from zerolane.cli.background import free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.edge.jsonrpc import UPSTREAM_UNAVAILABLE
from zerolane.gateway.mcp import parse_gateway_config
from zerolane.sdk import Task
from zerolane.tasks.playbooks import parse_playbook

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_web_upstreams(stack: Stack, tmp_path: Path) -> Iterator[tuple[GatewayServer, HttpUpstream]]:
    """A gateway in front of two HTTP upstreams, ``web`` (the stack's, which stays up)
    and ``gone`` (its own, stopped by the test)."""
    with HttpUpstream(tmp_path / "gone.jsonl") as gone:
        port = free_port()
        doc: dict[str, Any] = {
            "listen": {"host": "127.0.0.1", "port": port},
            "public_url": f"http://127.0.0.1:{port}",
            "authorization_servers": [stack.cp_url],
            "audience": stack.config.audience,  # the stack's tasks are for it
            "servers": [
                {
                    "name": "web",
                    "url": web_url(stack),
                    "destination": f"web.{TD}",
                    "prefix": "web_",
                },
                {"name": "gone", "url": gone.url, "destination": f"web.{TD}", "prefix": "gone_"},
            ],
        }
        with GatewayServer(parse_gateway_config(doc), enforcement_of(stack.deployment)) as gateway:
            yield gateway, gone


def web_url(stack: Stack) -> str:
    [web] = [s for s in stack.config.servers if s.name == "web"]
    assert web.url is not None
    return web.url


def test_a_down_upstream_keeps_its_tools_listed_and_answers_32004(
    stack: Stack, two_web_upstreams: tuple[GatewayServer, HttpUpstream]
) -> None:
    gateway, gone = two_web_upstreams
    ready = httpx.get(f"{gateway.base}/readyz")
    assert ready.status_code == 200  # both serve
    gone.__exit__()  # the upstream goes down

    async def main(task: Task) -> tuple[list[str], Any, Any]:
        async with mcp_session(gateway.url, task) as session:
            names = sorted(tool.name for tool in (await session.list_tools()).tools)
            try:
                down: Any = await session.call_tool("gone_read_report", {"name": "q3"})
            except MCPError as err:
                down = err
            up = await session.call_tool("web_read_report", {"name": "q3"})
            return names, down, up

    actions = ["mcp:web/read_report", "mcp:gone/read_report"]
    doc = {
        "name": "down-reader",
        "description": "Read reports of two HTTP upstreams, one of which goes down.",
        "actions": actions,
        "resources": ["mcp/web/*", "mcp/gone/*"],
        "destinations": [f"web.{TD}"],
        "data_ceiling": "confidential",
        "max_ttl": "15m",
        "max_calls": 20,
        "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
    }
    stack.deployment.playbooks.apply(parse_playbook(doc, "test"), ADMIN)
    with stack.agent() as agent:
        task = agent.open_task(
            playbook="down-reader",
            intent="Read the Q3 report while an upstream is down",
            authorization_details=[{"type": "zerolane_task", "actions": actions}],
            audience=[stack.config.audience],
        )
        names, down, up = anyio.run(main, task)
        decisions = [e for e in stack.events("decision") if e["subject"] == task.task_id]
        task.complete()
    assert "gone_read_report" in names  # still listed: its last known tools
    assert "web_read_report" in names
    assert isinstance(down, MCPError)
    assert down.code == UPSTREAM_UNAVAILABLE
    assert down.data["reason"] == "upstream.unavailable"
    assert "gone" in down.error.message
    assert not up.is_error  # the twin
    # the down call was decided and allowed (then failed upstream): never unmapped
    gone_decision = next(e for e in decisions if e["details"].get("server") == "gone")
    assert gone_decision["outcome"] == "success"
    assert "request.unmapped" not in str(decisions)
    # not ready, naming it (names only), once the gateway's own session with it fails
    # its ping (every 5 s)
    for _ in range(300):
        ready = httpx.get(f"{gateway.base}/readyz")
        if ready.status_code == 503:
            break
        time.sleep(0.1)
    assert ready.status_code == 503
    assert ready.json()["not_serving"] == ["gone"]
