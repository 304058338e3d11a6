"""A gateway route in shadow mode, end to end: a request the policies deny is forwarded
to the upstream, audited as a would-deny and counted apart in the metrics; the same
route switched back to ``enforce`` denies it and nothing reaches the upstream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import AUDIENCE, Stack
from zerolane.audit.shadow import shadow_report
from zerolane.cli.background import free_port
from zerolane.cli.gateway import BackgroundGateway, build_app
from zerolane.gateway.config import load_gateway_config
from zerolane.gateway.http import GatewayApp
from zerolane.server.deployment import Deployment

pytestmark = pytest.mark.e2e

ROUTE = "route:finance DELETE /reports/{id}"


def _config(folder: Path, upstream: int, port: int, mode: str | None) -> Path:
    """One upstream: reads enforced; deletes (outside the task's scope) in ``mode``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = f'mode = "{mode}"' if mode else ""
    path = folder / "gateway.toml"
    path.write_text(
        f"""
public_url = "http://127.0.0.1:{port}"
audience = "{AUDIENCE}"
metrics = true

[listen]
port = {port}

[[upstreams]]
name = "finance"
base_url = "http://127.0.0.1:{upstream}/fin"
prefix = "/finance"
destination = "finance-api.internal"

[[upstreams.routes]]
method = "GET"
path = "/reports/{{id}}"
action = "read"
resource = "finance/reports/{{id}}"

[[upstreams.routes]]
method = "DELETE"
path = "/reports/{{id}}"
action = "delete"
resource = "finance/reports/{{id}}"
{written}
"""
    )
    return path


@contextmanager
def gateway(stack: Stack, folder: Path, mode: str | None) -> Iterator[GatewayApp]:
    """A gateway over the stack's home and echo upstream, its delete route in ``mode``."""
    port = free_port()
    config = load_gateway_config(_config(folder, stack.upstream.port, port, mode))
    deployment = Deployment.open(stack.home)
    app = build_app(config, deployment)
    try:
        with BackgroundGateway(app, port=port):
            yield app
    finally:
        deployment.close()


def _seen(echo: dict[str, Any]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


def _decision(stack: Stack, decision_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        body
        for body in (json.loads(r.body) for r in stack.deployment.audit.tail(100))
        if body["kind"] == "decision" and body["details"]["decision_id"] == decision_id
    ]
    assert len(found) == 1
    return found[0]


def test_a_route_in_shadow_forwards_what_enforcing_it_denies(stack: Stack, tmp_path: Path) -> None:
    started = time.time()
    with stack.task() as task:
        url = "/finance/reports/q3"
        with gateway(stack, tmp_path / "shadow", "shadow") as app:
            before = stack.upstream.count()
            let = task.request("DELETE", app.config.public_url + url)
            assert let.status_code == 200, let.text
            assert stack.upstream.count() == before + 1  # it reached the upstream
            seen = _seen(let.json())
            assert seen["x-zerolane-shadow"] == ["scope.action"]
            event = _decision(stack, seen["x-zerolane-decision"][0])
            assert (event["outcome"], event["reason"]) == ("success", "shadow")
            details = event["details"]
            assert details["decision"] == "shadow"
            assert details["would_deny"] == ["scope.action"]
            assert details["shadow"] == [ROUTE]
            metrics = app.metrics.render().decode()
            counted = '_decisions_total{outcome="shadow",reason="scope.action"} 1.0'
            assert counted in metrics
            # and counted in the shadow report under its reason, with its route
            report = shadow_report(stack.deployment.stores, started, time.time())
            [group] = [g for g in report.groups if g.reason == "scope.action"]
            assert task.task_id in group.tasks
            assert ROUTE in group.modes
            assert "tool-user" in group.playbooks

            # a read the policies allow is a plain allow, and an agent cannot forge the
            # shadow header toward the upstream
            plain = task.request(
                "GET", app.config.public_url + url, headers={"X-Zerolane-Shadow": "forged"}
            )
            assert plain.status_code == 200, plain.text
            assert "x-zerolane-shadow" not in _seen(plain.json())

        # the twin: the same route enforced denies it, and nothing reaches the upstream
        with gateway(stack, tmp_path / "enforce", None) as app:
            before = stack.upstream.count()
            denied = task.request("DELETE", app.config.public_url + url)
            assert denied.status_code == 403, denied.text
            assert denied.json()["reason"] == "scope.action"
            assert stack.upstream.count() == before
            event = _decision(stack, denied.json()["decision_id"])
            assert event["details"]["decision"] == "deny"
            assert "would_deny" not in event["details"]
