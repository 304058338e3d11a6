"""A DPoP proof is usable once, everywhere, across restarts: the real ``zerolane up``,
stopped with SIGTERM or killed with SIGKILL and started again on the same home and
port, refuses a captured request replayed to it, and allows the same request made
with a fresh proof."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, run
from zerolane.sdk import Agent
from zerolane.sdk.common import decide_body

TD = "demo.zerolane.dev"
AGENT = f"spiffe://{TD}/agents/report-writer"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "playbooks"
REPORT = "https://finance-api.internal/finance/reports/q3"


def _restart(server: Server, how: signal.Signals) -> None:
    """Stop ``server`` the way ``how`` does, then start it again on the same port."""
    assert server.process is not None
    server.process.send_signal(how)
    server.process.wait(timeout=20)
    if server.process.stderr is not None:
        server.process.stderr.close()
    server.start()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_spent_proof_stays_spent_after_a_restart(
    tmp_path: Path, server_factory: type[Server], how: signal.Signals
) -> None:
    home = tmp_path / "home"
    run("init", "--trust-domain", TD, "--home", str(home))
    run("workload", "register", AGENT, "--home", str(home))
    run("playbook", "apply", str(EXAMPLES / "quarterly-report.yaml"), "--home", str(home))
    token = run("attest", "join-token", AGENT, "--home", str(home)).stdout.strip()
    edge = ("enforcement-point", "add", "finance-edge", "--url", "https://finance-api.internal")
    point = run(*edge, "--home", str(home)).stdout.strip()
    server = server_factory(home)
    server.start()

    with Agent.attest(server.url, join_token=token, enforcement_point=point) as agent:
        task = agent.open_task(playbook="quarterly-report", intent="Compile the Q3 report")
        read = {"action": "read", "sensitivity": "internal"}
        body = decide_body(agent.key, task.token, "GET", REPORT, read, None)
        asked = {"Authorization": f"Bearer {point}"}
        # a control-plane request too: completing the task, captured before it is sent
        complete_url = f"{server.url}/v1/tasks/{task.task_id}/complete"
        complete = task.headers("POST", complete_url)

        first = httpx.post(f"{server.url}/v1/decide", json=body, headers=asked).json()
        assert first["decision"] == "allow"
        _restart(server, how)

        replayed = httpx.post(f"{server.url}/v1/decide", json=body, headers=asked).json()
        assert (replayed["decision"], replayed["reasons"]) == ("deny", ["dpop.replayed"])
        # the legitimate twin: the same request with a fresh proof is allowed
        assert task.decide("GET", REPORT, **read).allowed

        assert httpx.post(complete_url, headers=complete).status_code == 200
        _restart(server, how)
        again = httpx.post(complete_url, headers=complete)
        assert (again.status_code, again.json()["reason"]) == (401, "dpop.replayed")
