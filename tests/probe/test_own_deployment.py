"""The whole catalog against zerolane's own enforcement points: every scenario that
applies passes (issue 14: the probe against zerolane's own running deployment).

The HTTP gateway, nginx with ``zerolane forward-auth`` and the MCP gateway (whose
legitimate twin is an MCP ``initialize``: the token and proof scenarios attack the MCP
endpoint as they attack an HTTP route). The control plane is attacked by the scenarios
that end and delegate tasks (``/v1/tasks/{id}/complete``, ``/v1/token``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.gateway.task_home import ADMIN, PLAYBOOK, TD
from tests.gateway.test_forward_auth_nginx import NGINX
from tests.gateway.test_forward_auth_nginx import Stack as NginxStack
from tests.gateway.test_forward_auth_nginx import stack as nginx_stack  # noqa: F401
from tests.probe.scenarios.test_mcp import DETAILS, McpStack, mcp_stack  # noqa: F401
from tests.probe.scenarios.test_mcp import PLAYBOOK as MCP_PLAYBOOK
from tests.probe.scenarios.test_mcp import PROFILE as MCP_PROFILE
from zerolane.cli.probe_home import HomeSource
from zerolane.probe.context import ProbeContext
from zerolane.probe.model import Need, Outcome
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.report import Report
from zerolane.probe.runner import run
from zerolane.probe.scenarios import CATALOG
from zerolane.probe.wire import Wire
from zerolane.tasks.playbooks import parse_playbook


def unexpected(report: Report, absent: frozenset[Need] = frozenset({Need.MCP})) -> dict[str, str]:
    """Each scenario that did not end as it should against a sound zerolane: ``pass``,
    or ``not_applicable`` for those needing what the target does not have (``absent``)."""
    wrong = {}
    for scenario, result in zip(report.scenarios, report.results, strict=True):
        expected = Outcome.NOT_APPLICABLE if scenario.needs & absent else Outcome.PASS
        if result.outcome is not expected:
            wrong[scenario.id] = f"{result.outcome.value}: {result.reason}"
    return wrong


def test_every_scenario_passes_against_the_http_gateway(gateway_context: ProbeContext) -> None:
    assert unexpected(run(CATALOG, gateway_context)) == {}


@pytest.fixture
def nginx_context(nginx_stack: NginxStack) -> Iterator[ProbeContext]:  # noqa: F811
    deployment = nginx_stack.cp.deployment
    playbook = {
        **PLAYBOOK,
        "name": "probe",
        "openers": {"spiffe_ids": [f"spiffe://{TD}/zerolane/*"]},
        "delegable": True,
        "max_depth": 1,
    }
    deployment.playbooks.apply(parse_playbook(playbook, "probe-tests"), ADMIN)
    source = HomeSource(deployment, nginx_stack.cp.url, "probe", audience=[nginx_stack.url])
    profile = TargetProfile(
        nginx_stack.url,
        Call("GET", "/reports/q3"),
        Call("DELETE", "/reports/q3"),
        echo=Call("GET", "/reports/q3"),
        forbidden_path=Call("GET", "/admin/users"),
    )
    context = ProbeContext(profile, source, Wire())
    yield context
    context.close()
    context.wire.close()


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_every_scenario_passes_against_nginx_with_forward_auth(
    nginx_context: ProbeContext,
) -> None:
    """This forward-auth names no ``audience``: its default, ``public_url`` (nginx's URL,
    which the probe's tasks name), refuses a token meant for another enforcement point
    (``token.wrong_audience``) as the other checks refuse their attacks. nginx and
    forward-auth have an echo route and a forbidden request: nothing is not applicable
    but the MCP scenarios."""
    wrong = unexpected(run(CATALOG, nginx_context))
    assert wrong == {}, "\n".join(f"{k}: {v}" for k, v in wrong.items())


INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "zerolane-probe-tests", "version": "1"},
        },
    }
).encode()


def test_every_scenario_passes_against_the_mcp_gateway(mcp_stack: McpStack) -> None:  # noqa: F811
    """No echo route and no forbidden HTTP request at an MCP endpoint: the scenarios
    needing them are not applicable; everything else passes."""
    playbook = {**MCP_PLAYBOOK, "name": "probe-mcp-all", "delegable": True, "max_depth": 1}
    mcp_stack.deployment.playbooks.apply(parse_playbook(playbook, "probe-tests"), ADMIN)
    source = HomeSource(
        mcp_stack.deployment,
        mcp_stack.cp_url,
        "probe-mcp-all",
        audience=[mcp_stack.audience],
        authorization_details=DETAILS,
    )
    allowed = Call(
        "POST",
        mcp_stack.path,
        body=INITIALIZE,
        headers=(
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ),
    )
    context = ProbeContext(TargetProfile(mcp_stack.url, allowed, mcp=MCP_PROFILE), source, Wire())
    try:
        report = run(CATALOG, context)
    finally:
        context.close()
        context.wire.close()
    absent = frozenset({Need.ECHO, Need.FORBIDDEN_REQUEST})
    wrong = unexpected(report, absent)
    assert wrong == {}, "\n".join(f"{k}: {v}" for k, v in wrong.items())
