"""The demo's continuous-verification act: detectors read every access event, response
rules act on what they find.

The rules go into the home's configuration and the control plane starts again with
them (they are read when it starts). An agent that reads confidential data and then
tries to post outside has its task revoked by the ``toxic_chains`` detector's rule;
an agent probing its scope has its task suspended by ``scope_probing``'s, until an
admin resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer
from zerolane.config import CONFIG_NAME
from zerolane.sdk import Agent, Task
from zerolane.server.deployment import Deployment
from zerolane.tasks.playbooks import parse_playbook
from zerolane.types import TaskState

Say = Callable[[str], None]
ADMIN = Actor("admin", "demo")
#: how long the act waits for a detection's response before it calls the story failed
WAIT_SECONDS = 15.0
RULES = """
# added by the demo's continuous-verification act
[detection]
poll_interval = 0.05

[[response.rules]]
name = "stop-exfiltration"
detectors = ["toxic_chains"]
actions = ["revoke"]

[[response.rules]]
name = "stop-probers"
detectors = ["scope_probing"]
actions = ["suspend"]
"""


class VerificationStoryFailed(Exception):
    """A step of the continuous-verification act did not behave as promised."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise VerificationStoryFailed(what)


def with_response_rules(home: Path) -> None:
    """Add the act's detection settings and response rules to ``home``'s config."""
    with (home / CONFIG_NAME).open("a", encoding="utf-8") as config:
        config.write(RULES)


def _until(deployment: Deployment, task: Task, state: TaskState) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if deployment.lifecycle.get(task.task_id).state is state:
            return True
        time.sleep(0.05)
    return False


def verification_story(
    deployment: Deployment,
    server: BackgroundServer,
    agent_id: str,
    playbook: dict[str, Any],
    urls: tuple[str, str],
    step: Say,
    ok: Say,
    refused: Say,
) -> None:
    """Run the act over a control plane started with :data:`RULES` in its config:
    ``agent_id`` is registered, ``playbook`` (quarterly-report) is applied again (the
    gateway act replaced it with the examples' own), ``urls`` are the finance API and
    the outside hook its tasks may reach."""
    finance, outside = urls
    step("Continuous verification: detectors read every access event, rules respond")
    ok("response rules: toxic_chains → revoke the task, scope_probing → suspend it")
    deployment.playbooks.apply(parse_playbook(playbook, "demo"), ADMIN)
    point, _ = deployment.enforcement_points.add("demo-watch", [finance, outside], ADMIN)
    token = deployment.join_tokens.create(agent_id, ttl=300, actor=ADMIN).token
    agent = Agent.attest(server.url, join_token=token, enforcement_point=point)
    try:
        _exfiltration(deployment, agent, finance, outside, ok, refused)
        _probing(deployment, agent, finance, ok, refused)
    finally:
        agent.close()


def _decide(
    task: Task, label: str, method: str, url: str, ok: Say, refused: Say, **facts: str
) -> bool:
    result = task.decide(method, url, **facts)
    if result.allowed:
        ok(f"{label}: [bold]allow[/bold]")
    else:
        refused(f"{label}: [bold]deny[/bold] {', '.join(result.reasons)}")
    return result.allowed


def _exfiltration(
    deployment: Deployment, agent: Agent, finance: str, outside: str, ok: Say, refused: Say
) -> None:
    task = agent.open_task(playbook="quarterly-report", intent="Summarize the Q3 ledger")
    ledger = {"action": "read", "sensitivity": "confidential"}
    _expect(
        _decide(
            task,
            "read the raw Q3 ledger (confidential)",
            "GET",
            f"{finance}/reports/q3-raw",
            ok,
            refused,
            **ledger,
        ),
        "the confidential read was denied",
    )
    post = {"action": "write", "sensitivity": "public"}
    _expect(
        not _decide(
            task, "post it outside", "POST", f"{outside}/services/status", ok, refused, **post
        ),
        "the post outside was allowed",
    )
    _expect(_until(deployment, task, TaskState.REVOKED), "the exfiltrating task was not revoked")
    ok("toxic_chains saw a confidential read, then an outside write: stop-exfiltration revoked")
    next_read = _read(task, finance, "its next request, an ordinary read", ok, refused)
    _expect(not next_read, "a revoked task was allowed")


def _probing(deployment: Deployment, agent: Agent, finance: str, ok: Say, refused: Say) -> None:
    task = agent.open_task(playbook="quarterly-report", intent="Summarize Q3 results")
    denied = 0
    for quarter in ("q1", "q2", "q3", "q4", "q5"):  # five distinct things it may not do
        denied += not task.decide("DELETE", f"{finance}/reports/{quarter}", action="delete").allowed
    _expect(denied == 5, "a delete outside the task's scope was allowed")
    refused("five deletes outside its scope: [bold]deny[/bold] scope.action, each")
    _expect(_until(deployment, task, TaskState.SUSPENDED), "the probing task was not suspended")
    ok("scope_probing saw five distinct denied requests: stop-probers suspended the task")
    next_read = _read(task, finance, "its next request, an ordinary read", ok, refused)
    _expect(not next_read, "a suspended task was allowed")
    deployment.lifecycle.resume(task.task_id, actor=ADMIN, reason="reviewed by the demo")
    ok("an admin reviews it and resumes the task (zerolane task resume)")
    _expect(
        _read(task, finance, "the same read, resumed", ok, refused), "a resumed task was denied"
    )
    task.complete()


def _read(task: Task, finance: str, label: str, ok: Say, refused: Say) -> bool:
    """An ordinary in-scope read of the Q3 report, told; whether it was allowed."""
    internal = {"action": "read", "sensitivity": "internal"}
    return _decide(task, label, "GET", f"{finance}/reports/q3", ok, refused, **internal)
