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
