"""``zerolane demo``: the end-to-end story, narrated, in a throwaway home."""

from __future__ import annotations

import shlex
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.panel import Panel

from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer
from zerolane.cli.common import console
from zerolane.cli.demo_approval import ApprovalStoryFailed, approval_story
from zerolane.cli.demo_delegation import DelegationStoryFailed, delegation_story
from zerolane.cli.demo_gateways import (
    GatewayStoryFailed,
    examples_present,
    gateway_story,
    mcp_story,
)
from zerolane.cli.demo_reasons import explained, self_command
from zerolane.cli.demo_verification import (
    VerificationStoryFailed,
    verification_story,
    with_response_rules,
)
from zerolane.identity import svid as svids
from zerolane.sdk import Agent, Task
from zerolane.sdk.common import TaskGrant, decide_body
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import proof_jwk
from zerolane.types import SystemClock

TD = "demo.zerolane.dev"
AGENT = f"spiffe://{TD}/agents/report-writer"
ADMIN = Actor("admin", "demo")


class DemoFailed(Exception):
    """A step of the story did not behave as zerolane promises."""


def _step(title: str) -> None:
    console.print(f"\n[bold cyan]▶ {title}[/bold cyan]")


def _ok(text: str) -> None:
    console.print(f"  [green]✔[/green] {text}", highlight=False)


def _refused(text: str) -> None:
    console.print(f"  [red]✘[/red] {explained(text)}", highlight=False)


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


PLAYBOOK = {
    "name": "quarterly-report",
    "description": "Summarize quarterly results from finance reports onto the wiki.",
    "actions": ["read", "write"],
    "resources": ["reports/*", "pages/*", "services/*"],
    "destinations": [f"finance.{TD}", f"wiki.{TD}", "hooks.slack.com"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 20,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
FINANCE = f"https://finance.{TD}"
WIKI = f"https://wiki.{TD}"
SLACK = "https://hooks.slack.com"


def _decision(task: Task, label: str, method: str, url: str, **mapping: str) -> bool:
    result = task.decide(method, url, **mapping)
    if result.allowed:
        _ok(f"{label}: [bold]allow[/bold]")
    else:
        _refused(f"{label}: [bold]deny[/bold] {', '.join(result.reasons)}")
    return result.allowed


def _identity_story(deployment: Deployment, server: BackgroundServer) -> Agent:
    _step("The admin registers an AI agent and a playbook (the most its tasks may do)")
    deployment.registry.register(AGENT, selectors=[], owner="reports-team", actor=ADMIN)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "demo"), ADMIN)
    token = deployment.join_tokens.create(AGENT, ttl=300, actor=ADMIN).token
    _ok(f"registered {AGENT}; playbook quarterly-report (ceiling: confidential)")

    point, _ = deployment.enforcement_points.add("demo-edge", [FINANCE, WIKI, SLACK], ADMIN)
    _ok(
        "enforcement point demo-edge registered for the finance, wiki and Slack URLs: "
        "only it may ask for decisions about them (POST /v1/decide)"
    )

    _step("The agent attests with a one-time join token and its own key")
    # The decisions below are asked as demo-edge would ask them for the agent's requests
    # (a gateway or forward-auth in front of those APIs does so in production).
    agent = Agent.attest(server.url, join_token=token, enforcement_point=point)
    svid = agent.svid
    _expect(svid is not None, "no SVID")
    assert svid is not None
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
    # checked as any relying party would: the published keys, the audience, SPIFFE's rules
    verified = svids.verify(
        svid.token, jwks["keys"], audience=f"spiffe://{TD}", clock=SystemClock()
    )
    _expect(verified.jkt == thumbprint(proof_jwk(agent.key)), "SVID not key-bound")
    _ok(f"JWT-SVID for {svid.spiffe_id}, bound to the agent's key (cnf.jkt)")
    replay = httpx.post(f"{server.url}/v1/attest", json={"join_token": token})
    _expect(replay.json().get("reason") == "join_token.used", "a used join token was accepted")
    _refused("the join token replayed from a log: refused (join_token.used)")
    return agent


def _task_story(agent: Agent, server: BackgroundServer) -> None:
    _step("Zero standing privilege: without a task, the agent can do nothing")
    idle = Task(agent, TaskGrant("none", agent.svid.token if agent.svid else "", 0, {}))
    _expect(
        not _decision(idle, "read a report with only its SVID", "GET", f"{FINANCE}/reports/q3"),
        "an SVID alone was allowed",
    )

    _step("The agent opens a task with a declared intent")
    with agent.task(
        playbook="quarterly-report", intent="Summarize Q3 results for the wiki"
    ) as task:
        _ok(f"task {task.task_id}: token bound to its key, valid 5 minutes, 20 calls")
        read = {"action": "read", "sensitivity": "internal"}
        _expect(
            _decision(task, "read the Q3 summary", "GET", f"{FINANCE}/reports/q3", **read),
            "in-scope read denied",
        )
        _expect(
            _decision(
                task,
                "post a status to Slack",
                "POST",
                f"{SLACK}/services/status",
                action="write",
                sensitivity="public",
            ),
            "status post denied",
        )
        _expect(
            not _decision(
                task,
                "delete a report (not its intent)",
                "DELETE",
                f"{FINANCE}/reports/q3",
                action="delete",
            ),
            "out-of-intent request allowed",
        )
        _expect(
            not _decision(
                task,
                "read payroll (restricted)",
                "GET",
                f"{FINANCE}/reports/payroll",
                action="read",
                sensitivity="restricted",
            ),
            "over-sensitivity read allowed",
        )
        _expect(
            _decision(
                task,
                "read the raw Q3 ledger (confidential)",
                "GET",
                f"{FINANCE}/reports/q3-raw",
                action="read",
                sensitivity="confidential",
            ),
            "confidential read denied",
        )
        _expect(
            not _decision(
                task,
                "then post to Slack (egress)",
                "POST",
                f"{SLACK}/services/status",
                action="write",
                sensitivity="public",
            ),
            "egress after a confidential read allowed",
        )
        _expect(
            _decision(
                task,
                "write the wiki page (internal)",
                "PUT",
                f"{WIKI}/pages/q3",
                action="write",
                sensitivity="internal",
            ),
            "internal write denied",
        )
        body = decide_body(agent.key, task.token, "GET", f"{FINANCE}/reports/q3", read, None)
        asking = f"{server.url}/v1/decide"
        itself = httpx.post(asking, json=body).json()  # the agent, with no point's credential
        _expect(itself.get("reason") == "enforcement_point.credential", "an agent was answered")
        _refused("the agent asking /v1/decide itself: refused (enforcement_point.credential)")
        first = httpx.post(asking, json=body, headers=agent.decider_headers()).json()
        second = httpx.post(asking, json=body, headers=agent.decider_headers()).json()
        _expect(first["decision"] == "allow" and second["reasons"] == ["dpop.replayed"], "replay")
        _refused("a captured request replayed (same DPoP proof): deny dpop.replayed")
        finished = task
    _ok("task completed on leaving the with-block")

    _step("After completion, the same token is worthless")
    _expect(
        not _decision(
            finished, "read the Q3 summary again", "GET", f"{FINANCE}/reports/q3", **read
        ),
        "a completed task's token was allowed",
    )


def _story(home: Path) -> None:
    _step(f"An admin creates a trust domain: spiffe://{TD}")
    deployment, _admin_token = init_home(home, TD)
    _ok(f"ES256 signing key {deployment.keyring.active_kid()[:16]}… written 0600 under {home}")
    _ok("admin credential printed once (kept only as a hash); default Cedar policies installed")

    with BackgroundServer(deployment) as server:
        _ok(f"control plane up at {server.url}")
        agent = _identity_story(deployment, server)
        _task_story(agent, server)
        try:
            delegation_story(deployment, agent, server, PLAYBOOK, _step, _ok, _refused)
            approval_story(deployment, agent, PLAYBOOK, _step, _ok, _refused)
        except (DelegationStoryFailed, ApprovalStoryFailed) as err:
            raise DemoFailed(str(err)) from err
        if examples_present():
            try:
                gateway_story(deployment, agent, _step, _ok, _refused)
                mcp_story(deployment, agent, server.url, _step, _ok, _refused)
            except GatewayStoryFailed as err:
                raise DemoFailed(str(err)) from err
        else:
            _step("(the gateway act needs the examples/ folder of a source checkout: skipped)")
        agent.close()

    deployment.close()  # the response rules are read when the control plane starts
    with_response_rules(home)
    deployment = Deployment.open(home)
    with BackgroundServer(deployment) as server:
        try:
            verification_story(
                deployment, server, AGENT, PLAYBOOK, (FINANCE, SLACK), _step, _ok, _refused
            )
        except VerificationStoryFailed as err:
            raise DemoFailed(str(err)) from err

    _step("Every step is in the hash-chained audit log")
    count, broken = deployment.audit.verify()
    _expect(broken is None, "the audit chain is broken")
    kinds: dict[str, int] = {}
    for record in deployment.audit.tail(count):
        key = f"{record.kind} {record.outcome}"
        kinds[key] = kinds.get(key, 0) + 1
    for key, n in sorted(kinds.items()):
        console.print(f"    {n:>3} x {key}", highlight=False)
    _ok(f"{count} events, chain intact")
    deployment.close()


def _serve_until_interrupted(home: Path) -> None:
    deployment = Deployment.open(home)
    with BackgroundServer(deployment) as server:
        console.print(
            f"\nThe control plane keeps serving at {server.url} "
            "(try /.well-known/jwks.json, /openapi.json); Ctrl-C to stop."
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopped")
    deployment.close()


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        once: Annotated[
            bool, typer.Option("--once", help="Exit 0 after the story (for make demo and CI).")
        ] = False,
    ) -> None:
        """Run the end-to-end story in a throwaway home, narrated."""
        home = Path(tempfile.mkdtemp(prefix="zerolane-demo-")) / "home"
        console.print(Panel.fit("[bold]zerolane demo[/bold]: zero trust for the machine lane"))
        started = time.perf_counter()
        try:
            _story(home)
        except DemoFailed as err:
            console.print(f"\n[bold red]demo failed:[/bold red] {err}")
            raise typer.Exit(1) from err
        console.print(
            f"\n[bold green]Done[/bold green] in {time.perf_counter() - started:.1f} s. "
            f"Audit log: {home / 'zerolane.db'}\n"
            f"  inspect it: {self_command()} audit tail --home {shlex.quote(str(home))}\n"
            f"  verify it:  {self_command()} audit verify --home {shlex.quote(str(home))}",
            soft_wrap=True,  # commands stay whole, to be copied as printed
        )
        if not once:
            _serve_until_interrupted(home)
