"""The Decider passes an MCP call's facts to the policies: a rule on its arguments decides.

A real home (memory stores, the default policies plus one rule on ``request.mcp``), a
task opened from an MCP playbook, and ``DecideInput`` shaped as the MCP gateway makes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.policy.test_mcp_context import NO_PAYROLL
from tests.tasks.conftest import ADMIN, AGENT, World, build_world
from zerolane.errors import Refusal
from zerolane.policy.context import McpFacts
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tasks.playbooks import parse_playbook

GATEWAY = "https://mcp.example.org/mcp"
READ = "mcp:reports/read_report"
PLAYBOOK: dict[str, object] = {
    "name": "mcp-reports",
    "description": "Read reports through the MCP gateway.",
    "actions": [READ],
    "resources": ["mcp/reports/*"],
    "destinations": ["reports.example.org"],
    "data_ceiling": "internal",
    "max_ttl": 600,
    "max_calls": 10,
    "openers": {"spiffe_ids": [AGENT]},
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home")
    deployment = built.deployment
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "tests/policy"), ADMIN)
    (deployment.home / deployment.config.policy_dir / "mcp.cedar").write_text(NO_PAYROLL)
    deployment.engine.reload()
    yield built
    deployment.close()


def decide(world: World, token: str, arguments: dict[str, Any] | None) -> Decision:
    agent = world.agents[AGENT]
    mcp = None
    if arguments is not None:
        mcp = McpFacts.of_call(
            "reports", "read_report", read_only=True, destructive=False, arguments=arguments
        )
    request = DecideInput(
        method="POST",
        url=GATEWAY,
        action=READ,
        resource="mcp/reports/read_report",
        destination="reports.example.org",
        sensitivity="internal",
        audience=GATEWAY,
        mcp=mcp,
    )
    return world.deployment.decider.decide(
        token, world.proof(agent.key, "POST", GATEWAY, token), request
    )


def test_a_rule_on_the_arguments_decides_an_mcp_call(world: World) -> None:
    opened = world.open(world.agent(AGENT), playbook="mcp-reports", audience=[GATEWAY])
    task_id = opened.task.task_id

    payroll = decide(world, opened.token, {"report": "payroll"})
    assert (payroll.allowed, payroll.reasons, payroll.refusal) == (
        False,
        ("mcp.no_payroll",),
        Refusal.FORBIDDEN,
    )
    assert world.task(task_id).calls_used == 0

    q3 = decide(world, opened.token, {"report": "q3", "options": {"format": "pdf"}})
    assert (q3.allowed, q3.policies) == (True, ("task.request",))
    assert decide(world, opened.token, None).allowed  # no MCP facts: decided as before
    assert world.task(task_id).calls_used == 2

    denied = next(
        e for e in world.events("decision") if e["details"]["decision_id"] == payroll.decision_id
    )
    assert denied["outcome"] == "denied"
    assert denied["details"]["policies"] == ["mcp.no_payroll"]
