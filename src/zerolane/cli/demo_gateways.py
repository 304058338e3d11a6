"""The demo's second act: the same zero-trust decisions where the traffic is.

An agent's requests go through the HTTP gateway to the sample tool API of
``examples/gateway/``: the gateway decides each one, strips the agent's credentials and
injects the upstream's own (a per-task HMAC key, a static wiki token) that the agent
never holds.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from zerolane.audit.events import Actor
from zerolane.cli.background import free_port
from zerolane.cli.gateway import BackgroundGateway, build_app
from zerolane.gateway.config import parse_gateway_config
from zerolane.sdk import Agent
from zerolane.server.deployment import Deployment
from zerolane.tasks.playbooks import load_playbook_file

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
Say = Callable[[str], None]


class GatewayStoryFailed(Exception):
    """The gateway did not behave as zerolane promises."""


def examples_present() -> bool:
    return (EXAMPLES / "gateway" / "tool_api.py").exists()


@contextmanager
def _tool_api(port: int, secrets: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "gateway" / "tool_api.py"),
            "--port",
            str(port),
            "--secrets",
            str(secrets),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/finance/reports/q3", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise GatewayStoryFailed("the sample tool API did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _gateway_config(work: Path, upstream: str, port: int) -> Any:
    doc = tomllib.loads((EXAMPLES / "gateway" / "gateway.toml").read_text())
    public = f"http://127.0.0.1:{port}"
    doc.update(public_url=public, audience=public, listen={"host": "127.0.0.1", "port": port})
    for entry in doc["upstreams"]:
        entry["base_url"] = upstream + "/" + entry["base_url"].rsplit("/", 1)[-1]
    return parse_gateway_config(doc, work)


def gateway_story(deployment: Deployment, agent: Agent, step: Say, ok: Say, refused: Say) -> None:
    """Run the HTTP-gateway act; raises :class:`GatewayStoryFailed` on a broken promise."""
    step("Enforcement where the traffic is: the HTTP gateway in front of a tool API")
    work = deployment.home / "demo-gateway"
    secrets = work / "secrets"
    playbook = load_playbook_file(EXAMPLES / "playbooks" / "quarterly-report.yaml")
    deployment.playbooks.apply(playbook, Actor("admin", "demo"))
    with _tool_api(free_port(), secrets) as upstream:
        config = _gateway_config(work, upstream, free_port())
        with BackgroundGateway(build_app(config, deployment), port=config.listen.port) as gw:
            ok(f"gateway at {gw.url} → tool API at {upstream}")
            ok("the tool API's credentials live in the gateway; the agent never holds them")
            with agent.task(
                playbook="quarterly-report",
                intent="Publish the Q3 summary on the wiki",
                audience=[config.audience],
            ) as task:
                report = task.request("GET", f"{gw.url}/finance/reports/q3")
                if report.status_code != 200:
                    raise GatewayStoryFailed(f"in-scope read refused: {report.text}")
                served = report.json()["served_to_task"]
                ok(f"GET /finance/reports/q3: 200, the API saw a per-task key for {served}")
                delete = task.request("DELETE", f"{gw.url}/finance/reports/q3")
                if delete.status_code != 403:
                    raise GatewayStoryFailed("an out-of-intent DELETE went through")
                refused(
                    f"DELETE /finance/reports/q3: 403 {delete.json()['reason']} (never forwarded)"
                )
                page = task.request(
                    "PUT", f"{gw.url}/wiki/pages/finance/quarterly/q3", content=b"# Q3\n"
                )
                if page.status_code != 200:
                    raise GatewayStoryFailed(f"wiki write refused: {page.text}")
                ok("PUT the wiki page: 200, the gateway injected the wiki's token")
                bare = httpx.get(f"{gw.url}/finance/reports/q3")
                if bare.status_code != 401:
                    raise GatewayStoryFailed("a request without a task token went through")
                refused(f"the same GET with no task token: 401 {bare.json()['reason']}")


def _mcp_playbook(td: str) -> dict[str, object]:
    return {
        "name": "report-tools",
        "description": "Read finance reports through the reports MCP server.",
        "actions": ["mcp:reports/read_report"],
        "resources": ["mcp/reports/*"],
        "destinations": [f"reports.{td}"],
        "data_ceiling": "internal",
        "max_ttl": "15m",
        "max_calls": 10,
        "openers": {"spiffe_ids": [f"spiffe://{td}/agents/*"]},
    }


async def _use_mcp(url: str, auth: Any) -> tuple[list[str], str, str]:
    """List tools, call an allowed one and a refused one, as an MCP client would."""
    import httpx2
    from mcp import ClientSession, MCPError
    from mcp.client.streamable_http import streamable_http_client

    from zerolane.sdk.mcp_auth import MCP_TIMEOUT

    async with (
        httpx2.AsyncClient(auth=auth, timeout=MCP_TIMEOUT) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = sorted(tool.name for tool in (await session.list_tools()).tools)
        result = await session.call_tool("read_report", {"name": "q3"})
        text = " ".join(getattr(part, "text", "") for part in result.content)
        try:
            await session.call_tool("delete_report", {"name": "q3"})
            error = ""
        except MCPError as err:
            error = str(err)
        return names, text, error


def mcp_story(
    deployment: Deployment, agent: Agent, control_plane: str, step: Say, ok: Say, refused: Say
) -> None:
    """Run the MCP-gateway act; raises :class:`GatewayStoryFailed` on a broken promise."""
    import asyncio

    from zerolane.cli.background import BackgroundApp
    from zerolane.cli.mcp_gateway import enforcement_of
    from zerolane.gateway.mcp import create_gateway_app
    from zerolane.gateway.mcp import parse_gateway_config as parse_mcp_config
    from zerolane.tasks.playbooks import parse_playbook

    step("Agent tool calls: the MCP gateway in front of an MCP server")
    td = deployment.config.trust_domain
    deployment.playbooks.apply(parse_playbook(_mcp_playbook(td), "demo"), Actor("admin", "demo"))
    port = free_port()
    config = parse_mcp_config(
        {
            "listen": {"host": "127.0.0.1", "port": port},
            "public_url": f"http://127.0.0.1:{port}",
            "authorization_servers": [control_plane],
            "servers": [
                {
                    "name": "reports",
                    "command": sys.executable,
                    "args": [str(EXAMPLES / "mcp" / "sample_server.py")],
                    "destination": f"reports.{td}",
                    "tools": {"read_report": {"sensitivity": "internal"}},
                }
            ],
        }
    )
    with BackgroundApp(create_gateway_app(config, enforcement_of(deployment)), port=port) as gw:
        anonymous = httpx.post(config.endpoint, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        challenge = anonymous.headers.get("www-authenticate", "")
        if anonymous.status_code != 401 or "resource_metadata" not in challenge:
            raise GatewayStoryFailed("the MCP gateway let an anonymous client in")
        ok(f"MCP gateway at {gw.url}: no token, 401 pointing at its RFC 9728 metadata")
        with agent.task(
            playbook="report-tools", intent="Read the Q3 report", audience=[config.audience]
        ) as task:
            names, text, error = asyncio.run(_use_mcp(config.endpoint, task.mcp_auth()))
        if names != ["read_report"] or not text or "scope.action" not in error:
            raise GatewayStoryFailed(f"MCP decisions went wrong: {names} {text!r} {error!r}")
        ok(f"tools/list shows only what the task may call: {', '.join(names)}")
        ok(f"tools/call read_report(q3): {text[:60]}")
        refused("tools/call delete_report: refused (scope.action), the server never saw it")
