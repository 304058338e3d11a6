"""The official MCP conformance suite, run directly against its reference server and
through the gateway: what passes directly must pass through it.

The gateway relays the whole MCP protocol between an agent and an upstream; a task that
may do everything the reference server offers must see that server as the suite sees it
directly. The suite (``npx @modelcontextprotocol/conformance@0.1.12``, all 32 server
scenarios) knows nothing of task tokens, so it talks to a :class:`SigningForwarder` that
signs each request as the task's client would. Both runs go at once, each against its own
reference server. A scenario that passes directly and fails through the gateway, or a
check that succeeds directly and not through it, fails the test with the suite's
messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.gateway.mcp.conformance import (
    SuiteRun,
    describe,
    install_suite,
    run_suite,
)
from tests.gateway.mcp.conftest import ADMIN, TD, Stack
from tests.gateway.mcp.signing_forwarder import SigningForwarder
from tests.gateway.mcp.test_resumable_e2e import conformance_server, gateway_to, task_for
from zerolane.server.deployment import Deployment
from zerolane.tasks.playbooks import parse_playbook

SERVER = "conformance"
PLAYBOOK = "conformance-everything"
#: ``--suite all`` of 0.1.12
SCENARIOS = 32
#: seconds a scenario may go without progress (directly all 32 take a few seconds)
STALL = 10


async def tools_of(url: str) -> list[str]:
    """The tools the server lists, asked directly with the MCP SDK's client."""
    async with (
        streamable_http_client(url) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return sorted(tool.name for tool in (await session.list_tools()).tools)


def allow_everything(deployment: Deployment, actions: list[str]) -> None:
    """A playbook letting a task do ``actions`` on anything of the reference server."""
    doc = {
        "name": PLAYBOOK,
        "description": "Everything the MCP conformance reference server offers.",
        "actions": actions,
        "resources": [f"mcp/{SERVER}/**"],
        "destinations": [f"{SERVER}.{TD}"],
        "data_ceiling": "confidential",
        "max_ttl": "30m",
        "max_calls": 10_000,
        "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
    }
    deployment.playbooks.apply(parse_playbook(doc, "test"), ADMIN)


@contextmanager
def reference_server(tmp_path: Path, name: str) -> Iterator[str]:
    home = tmp_path / name
    home.mkdir()
    with conformance_server(home) as url:
        yield url


def lost_checks(direct: SuiteRun, through: SuiteRun) -> list[str]:
    """Each check that succeeded directly and not through the gateway, with why."""
    lost: list[str] = []
    for name in sorted(direct.passed()):
        seen = through.scenarios.get(name)
        for check in direct.scenarios[name].checks:
            if not check.passed:
                continue
            there = seen.check(check.id) if seen is not None else None
            if there is None:
                lost.append(f"  {name} / {check.id}: not reported through the gateway")
            elif not there.passed:
                lost.append(f"  {name} / {check.id}: {there.status}: {there.message}")
    return lost


def report(direct: SuiteRun, through: SuiteRun) -> str:
    passed = sorted(through.passed())
    failed = sorted(set(through.scenarios) - through.passed())
    return (
        f"directly: {len(direct.passed())} of {len(direct.scenarios)} scenarios passed\n"
        f"through the gateway: {len(passed)} passed: {', '.join(passed)}\n"
        f"through the gateway: {len(failed)} failed: {', '.join(failed)}\n"
    )


def test_every_scenario_passing_directly_passes_through_the_gateway(
    stack: Stack, tmp_path: Path
) -> None:
    suite = install_suite(tmp_path)
    scenarios = suite.scenarios(tmp_path)
    assert len(scenarios) == SCENARIOS, scenarios
    with ExitStack() as running:
        direct_url = running.enter_context(reference_server(tmp_path, "direct"))
        upstream_url = running.enter_context(reference_server(tmp_path, "upstream"))
        tools = anyio.run(tools_of, upstream_url)
        assert tools, "the reference server listed no tools"
        actions = [f"mcp:{SERVER}/{tool}" for tool in tools]
        actions += [f"mcp:{SERVER}/resources/read", f"mcp:{SERVER}/prompts/get"]
        allow_everything(stack.deployment, actions)
        gateway = running.enter_context(gateway_to(stack, SERVER, upstream_url))
        agent = running.enter_context(stack.agent())
        task = running.enter_context(task_for(agent, gateway, PLAYBOOK, actions))
        forwarder = running.enter_context(SigningForwarder(task, gateway.url))
        with ThreadPoolExecutor(2) as pool:  # the two runs at once
            direct_run = pool.submit(
                run_suite, suite, direct_url, tmp_path / "run-direct", scenarios, STALL
            )
            through_run = pool.submit(
                run_suite, suite, forwarder.url, tmp_path / "run-through", scenarios, STALL
            )
            direct, through = direct_run.result(), through_run.result()
    print(report(direct, through))

    failing = set(scenarios) - direct.passed()
    assert not failing, f"failing directly:\n{describe(direct, failing)}\n{direct.stderr}"
    assert forwarder.requests > 0
    lost = direct.passed() - through.passed()
    checks = lost_checks(direct, through)
    assert not lost, (
        f"{report(direct, through)}"
        f"scenarios passing directly and not through the gateway:\n{describe(through, lost)}"
    )
    assert not checks, "checks succeeding directly and not through the gateway:\n" + "\n".join(
        checks
    )
