"""End to end: real processes, the SDK over HTTP, policy reload by SIGHUP and file change."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, run
from zerolane.sdk import Agent

pytestmark = pytest.mark.e2e
TD = "demo.zerolane.dev"
AGENT = f"spiffe://{TD}/agents/report-writer"
EXAMPLES = Path(__file__).parents[2] / "examples" / "playbooks"
REPORT = "https://finance-api.internal/finance/reports/q3"
LEDGER = "https://finance-api.internal/finance/ledger/2026/q3"
NO_LEDGER = """
@id("custom.no_ledger")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.resource like "finance/ledger/*" };
"""
SCHEMA_INVALID = """
@id("custom.broken")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.sensitivity == "high" };
"""


def _wait_for(predicate: object, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _reload_events(home: Path) -> list[dict[str, object]]:
    out = run("audit", "tail", "--json", "-n", "500", "--home", str(home)).stdout
    events = [json.loads(line) for line in out.splitlines()]
    return [e for e in events if e["kind"] == "policy.reloaded"]


def test_task_lifecycle_and_policy_reload(tmp_path: Path, server_factory: type[Server]) -> None:
    home = tmp_path / "home"
    run("init", "--trust-domain", TD, "--home", str(home))
    run("workload", "register", AGENT, "--home", str(home))
    run("playbook", "apply", str(EXAMPLES / "quarterly-report.yaml"), "--home", str(home))
    token = run("attest", "join-token", AGENT, "--home", str(home)).stdout.strip()
    edge = ("enforcement-point", "add", "finance-edge", "--url", "https://finance-api.internal")
    point = run(*edge, "--home", str(home)).stdout.strip()
    assert point.startswith("zlep_")
    server = server_factory(home)
    server.start()
    assert server.process is not None

    with Agent.attest(server.url, join_token=token, enforcement_point=point) as agent:
        with agent.task(playbook="quarterly-report", intent="Compile the Q3 report") as task:
            assert task.decide("GET", REPORT).allowed
            denied = task.decide("DELETE", REPORT)
            assert not denied.allowed
            assert denied.reasons == ("scope.action",)
            assert task.decide("GET", LEDGER).allowed

            # An invalid policy is refused by the CLI before anything is signalled...
            policies = home / "policies"
            (policies / "broken.cedar").write_text(SCHEMA_INVALID)
            refused = run("policy", "reload", "--home", str(home), check=False)
            assert refused.returncode == 2
            # ... and by the server on SIGHUP and on the file change: the old set stays.
            os.kill(server.process.pid, signal.SIGHUP)
            _wait_for(
                lambda: any(e["outcome"] == "failure" for e in _reload_events(home)),
                "a refused reload in the audit log",
            )
            assert task.decide("GET", LEDGER).allowed

            # A valid new policy takes effect without a restart.
            (policies / "broken.cedar").unlink()
            (policies / "custom.cedar").write_text(NO_LEDGER)
            os.kill(server.process.pid, signal.SIGHUP)
            _wait_for(lambda: not task.decide("GET", LEDGER).allowed, "the new policy")
            assert task.decide("GET", LEDGER).reasons == ("custom.no_ledger",)
            assert task.decide("GET", REPORT).allowed
        finished = task

        after = finished.decide("GET", REPORT)
        assert not after.allowed
        assert after.reasons == ("task.completed",)

    listed = json.loads(run("task", "list", "--json", "--home", str(home)).stdout)
    assert [(t["task_id"], t["state"]) for t in listed] == [(finished.task_id, "completed")]
    server.stop()
    assert any(e["outcome"] == "success" for e in _reload_events(home))
    assert run("audit", "verify", "--home", str(home)).returncode == 0
