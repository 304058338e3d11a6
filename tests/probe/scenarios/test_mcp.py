"""MCP tools outside the task, against zerolane's MCP gateway (control plane, gateway,
the sample server over stdio): the allowed tool is listed and called, the forbidden
one neither listed nor called; and the MCP client's reading of answers."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.gateway.mcp.harness import SAMPLE, calls
from tests.probe.scenarios.weak import ALL, FAILS, weak_context
from tests.probe.weak_target import Weakness
from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.cli.gateway import uvicorn_config
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.cli.probe_home import HomeSource
from zerolane.config import HttpLimits
from zerolane.gateway.mcp import (
    Enforcement,
    GatewayConfig,
    create_gateway_app,
    parse_gateway_config,
)
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import StaticBearer
from zerolane.probe.mcp_wire import MAX_PAGES, McpClient, error_text, messages_of
from zerolane.probe.model import Exchange, Outcome, Result
from zerolane.probe.profile import Call, McpProfile, TargetProfile
from zerolane.probe.runner import run
from zerolane.probe.scenarios import mcp
from zerolane.probe.wire import Wire
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.playbooks import parse_playbook

TD = "probe-mcp.example.org"
ADMIN = Actor("admin", "probe-mcp-tests")
PLAYBOOK: dict[str, Any] = {
    "name": "probe-mcp",
    "description": "Read and delete reports through the MCP gateway (tasks ask for less).",
    "actions": ["mcp:tools/read_report", "mcp:tools/delete_report"],
    "resources": ["mcp/tools/*"],
    "destinations": [f"reports.{TD}"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 50,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/zerolane/*"]},
}
#: what the probe's tasks ask for: reading only (delete_report is outside the task)
DETAILS = [{"type": "zerolane_task", "actions": ["mcp:tools/read_report"]}]
PROFILE = McpProfile(
    "/mcp",
    allowed_tool="read_report",
    forbidden_tool="delete_report",
    allowed_arguments={"name": "q3"},
    forbidden_arguments={"name": "q3"},
)


class ServedGateway:
    """The MCP gateway served as ``zerolane mcp-gateway run`` serves it (zerolane's
    protocol class, its request-head limits), in a daemon thread."""

    def __init__(self, config: GatewayConfig, enforcement: Enforcement) -> None:
        app = create_gateway_app(config, enforcement)
        served = uvicorn_config(app, config.host, config.port, limits=HttpLimits())
        self.server = uvicorn.Server(served)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = config.public_url

    def __enter__(self) -> ServedGateway:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("the MCP gateway did not start")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class McpStack:
    deployment: Deployment
    cp_url: str
    audience: str
    url: str  # the gateway's public URL
    path: str  # its MCP endpoint's path
    stdio_log: Path

    def source(self, details: list[dict[str, Any]]) -> HomeSource:
        """The probe's credentials: tasks of the probe's playbook asking for ``details``."""
        return HomeSource(
            self.deployment,
            self.cp_url,
            "probe-mcp",
            audience=[self.audience],
            authorization_details=details,
        )

    @contextmanager
    def context(self, details: list[dict[str, Any]]) -> Iterator[ProbeContext]:
        profile = TargetProfile(self.url, Call("POST", self.path), mcp=PROFILE)
        context = ProbeContext(profile, self.source(details), Wire())
        try:
            yield context
        finally:
            context.close()
            context.wire.close()


@pytest.fixture(scope="module")
def mcp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpStack]:
    root = tmp_path_factory.mktemp("probe-mcp")
    deployment, _ = init_home(root / "home", TD)
    deployment.playbooks.apply(parse_playbook(PLAYBOOK, "probe-tests"), ADMIN)
    stdio_log = root / "stdio.jsonl"
    port = free_port()
    try:
        with BackgroundServer(deployment) as cp:
            server = {
                "name": "tools",
                "command": sys.executable,
                "args": [str(SAMPLE), "--log", str(stdio_log)],
                "destination": f"reports.{TD}",
            }
            config = parse_gateway_config(
                {
                    "listen": {"host": "127.0.0.1", "port": port},
                    "public_url": f"http://127.0.0.1:{port}",
                    "authorization_servers": [cp.url],
                    "servers": [server],
                }
            )
            with ServedGateway(config, enforcement_of(deployment)):
                yield McpStack(
                    deployment, cp.url, config.audience, config.public_url, config.path, stdio_log
                )
    finally:
        deployment.close()


@pytest.fixture
def mcp_context(mcp_stack: McpStack) -> Iterator[ProbeContext]:
    with mcp_stack.context(DETAILS) as context:
        yield context


def results(context: ProbeContext) -> dict[str, Result]:
    return {r.scenario: r for r in run(mcp.SCENARIOS, context).results}


def test_the_mcp_gateway_refuses_and_hides_the_tool_outside_the_task(
    mcp_context: ProbeContext, mcp_stack: McpStack
) -> None:
    before = len(calls(mcp_stack.stdio_log, "delete_report"))
    found = results(mcp_context)
    assert {k: r.outcome for k, r in found.items()} == {
        "mcp.tool_outside_task": Outcome.PASS,
        "mcp.tools_list_filtered": Outcome.PASS,
    }
    called = found["mcp.tool_outside_task"]
    twin = next(e for e in called.evidence if e.role == "twin")
    attack = next(e for e in called.evidence if e.role == "attack")
    assert twin.status == 200
    assert b"Q3 revenue" in twin.body
    assert "JSON-RPC error -32003" in called.reason
    assert attack.status == 200
    # the forbidden tool never ran; the allowed one did
    assert len(calls(mcp_stack.stdio_log, "delete_report")) == before
    assert calls(mcp_stack.stdio_log, "read_report")
    listed = found["mcp.tools_list_filtered"]
    assert "shows 'read_report' and not 'delete_report'" in listed.reason
    # the session id and the token are masked in the evidence
    shown = repr([r.evidence for r in found.values()])
    assert mcp_context.credential().token not in shown
    init = next(
        e for r in found.values() for e in r.evidence if "mcp-session-id" in e.response_headers
    )
    assert init.response_headers["mcp-session-id"].startswith("***")


def test_a_task_that_holds_the_tool_fails_both(mcp_stack: McpStack) -> None:
    """The same scenarios with a task that was given delete_report: the gateway lets it
    list and call it, so the scenarios report it (the twin of the pass above)."""
    both = ["mcp:tools/read_report", "mcp:tools/delete_report"]
    with mcp_stack.context([{"type": "zerolane_task", "actions": both}]) as context:
        found = results(context)
    assert {k: r.outcome for k, r in found.items()} == {
        "mcp.tool_outside_task": Outcome.FAIL,
        "mcp.tools_list_filtered": Outcome.FAIL,
    }


def test_a_target_without_mcp_is_not_applicable() -> None:
    context = ProbeContext(
        TargetProfile("http://127.0.0.1:9", Call("GET", "/x")),
        StaticBearer("probe-static-token"),
        Wire(),
    )
    try:
        found = results(context)
    finally:
        context.wire.close()
    assert {r.outcome for r in found.values()} == {Outcome.NOT_APPLICABLE}


def test_an_unreachable_mcp_endpoint_is_inconclusive() -> None:
    profile = TargetProfile(f"http://127.0.0.1:{free_port()}", Call("GET", "/x"), mcp=PROFILE)
    context = ProbeContext(profile, StaticBearer("probe-static-token"), Wire(timeout=2))
    try:
        found = results(context)
    finally:
        context.wire.close()
    assert {r.outcome for r in found.values()} == {Outcome.INCONCLUSIVE}
    assert all("initialize was not answered" in r.reason for r in found.values())


def exchange(body: bytes, kind: str, status: int = 200) -> Exchange:
    return Exchange(
        "attack", "POST", "u", {}, 0, status, {"content-type": kind}, "", 0.0, body=body
    )


def test_answers_are_read_as_json_or_as_an_sse_stream() -> None:
    sse = b'event: message\r\ndata: {"jsonrpc":"2.0",\r\ndata: "id":1,"result":{}}\r\n\r\n'
    assert messages_of(exchange(sse, "text/event-stream")) == [
        {"jsonrpc": "2.0", "id": 1, "result": {}}
    ]
    assert messages_of(exchange(b'data: {"id":2}', "text/event-stream")) == [{"id": 2}]
    assert messages_of(exchange(b'[{"id":1},{"id":2},3]', "application/json")) == [
        {"id": 1},
        {"id": 2},
    ]
    assert messages_of(exchange(b"not json", "application/json")) == []
    assert messages_of(exchange(b"", "application/json")) == []
    assert error_text({"error": {"code": -32003, "message": "denied"}}) == "-32003: denied"
    assert error_text({"error": "x"}) == "(malformed)"


@pytest.mark.parametrize(
    ("status", "answer", "found"),
    [
        (403, None, "refused"),
        (200, None, "unclear"),
        (200, {"id": 1, "error": {"code": -32003, "message": "no"}}, "refused"),
        (200, {"id": 1, "result": {"content": [{"type": "text", "text": "ok"}]}}, "accepted"),
        (
            200,
            {"id": 1, "result": {"isError": True, "content": [{"text": "Access denied."}]}},
            "refused",
        ),
        (
            200,
            {"id": 1, "result": {"isError": True, "content": [{"text": "no report named x"}]}},
            "accepted",
        ),
        (200, {"id": 1, "result": "odd"}, "unclear"),
    ],
)
def test_a_tool_call_answer_is_judged(
    status: int, answer: dict[str, Any] | None, found: str
) -> None:
    assert mcp.verdict(exchange(b"", "application/json", status), answer) == found


def test_the_client_keeps_the_session_and_the_version(mcp_context: ProbeContext) -> None:
    client = McpClient(mcp_context, mcp_context.credential(), PROFILE.path)
    setup, failed = client.open()
    assert failed is None
    assert [e.status for e in setup] == [200, 202]
    assert client.session is not None
    assert client.version is not None
    assert setup[1].request_headers["mcp-session-id"].startswith("***")
    listing, names = client.tools("attack")
    assert names == ["read_report"]
    assert len(listing) == 1
    session = client.session
    client.close()
    assert client.session is None
    # the session is over: a request in it is not answered as one
    late = mcp_context.wire.send(
        "setup",
        "POST",
        client.url,
        headers={
            **mcp_context.authorization(mcp_context.credential(), "POST", client.url),
            "Mcp-Session-Id": session,
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        body=b'{"jsonrpc":"2.0","id":9,"method":"tools/list"}',
    )
    assert late.status == 404


@pytest.mark.parametrize("weakness", ALL, ids=str)
def test_against_the_weak_target_only_the_matching_weakness_fails(
    weakness: Weakness | None,
) -> None:
    """Every tool listed: tools_list_filtered fails (and the call outside the scope is
    still refused); every tool called: tool_outside_task fails; nothing else here."""
    with weak_context(weakness) as context:
        found = results(context)
    failed = {k for k, r in found.items() if r.outcome is Outcome.FAIL}
    assert failed == FAILS.get(weakness, frozenset()) & found.keys()
    if weakness is None:
        assert {r.outcome for r in found.values()} == {Outcome.PASS}


Script = dict[str, Callable[[dict[str, Any]], httpx.Response]]


def rpc(message: dict[str, Any], result: Any = None, *, error: Any = None) -> httpx.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
    body.update({"error": error} if error is not None else {"result": result})
    return httpx.Response(200, json=body)


def initialized(message: dict[str, Any]) -> httpx.Response:
    return rpc(message, {"protocolVersion": "2025-06-18", "capabilities": {}})


def listed(*names: str) -> Callable[[dict[str, Any]], httpx.Response]:
    return lambda m: rpc(m, {"tools": [{"name": n} for n in names]})


def text(message: dict[str, Any], said: str, *, error: bool = False) -> httpx.Response:
    return rpc(message, {"content": [{"type": "text", "text": said}], "isError": error})


def unknown(message: dict[str, Any]) -> httpx.Response:
    return rpc(message, error={"code": -32601, "message": "no such method"})


def scripted(script: Script) -> Iterator[ProbeContext]:
    """A context whose wire talks to a scripted MCP server (``script`` answers each
    method; a tools/call is answered by ``tools/call:<name>``)."""

    def handle(request: httpx.Request) -> httpx.Response:
        message = json.loads(request.content)
        if "id" not in message:
            return httpx.Response(202)
        method = message["method"]
        if method == "tools/call":
            method += ":" + message["params"]["name"]
        answer = script.get(method, unknown)
        return answer(message)

    wire = Wire(client=httpx.Client(transport=httpx.MockTransport(handle)))
    profile = TargetProfile("http://mcp.test", Call("POST", "/mcp"), mcp=PROFILE)
    context = ProbeContext(profile, StaticBearer("probe-static-token"), wire)
    yield context
    wire.close()


def run_scripted(script: Script) -> dict[str, Result]:
    for context in scripted({"initialize": initialized, **script}):
        return results(context)
    raise AssertionError("unreachable")


def test_a_refused_initialize_is_inconclusive() -> None:
    found = run_scripted({"initialize": lambda m: rpc(m, error={"code": -1, "message": "x"})})
    assert {r.outcome for r in found.values()} == {Outcome.INCONCLUSIVE}
    assert all("JSON-RPC error -1: x" in r.reason for r in found.values())


def test_a_listing_is_read_page_by_page() -> None:
    def paged(message: dict[str, Any]) -> httpx.Response:
        cursor = (message.get("params") or {}).get("cursor")
        if cursor is None:
            return rpc(message, {"tools": [{"name": "other"}], "nextCursor": "2"})
        return rpc(message, {"tools": [{"name": "read_report"}, {"name": "delete_report"}]})

    found = run_scripted({"tools/list": paged})
    listed_result = found["mcp.tools_list_filtered"]
    assert listed_result.outcome is Outcome.FAIL
    assert "(3 tools listed)" in listed_result.reason
    assert len([e for e in listed_result.evidence if e.role == "attack"]) == 2


@pytest.mark.parametrize(
    "answer",
    [
        lambda m: rpc(m, error={"code": -32603, "message": "down"}),
        lambda m: rpc(m, {"tools": "none"}),
        listed("other"),
    ],
    ids=["error", "malformed", "without"],
)
def test_a_listing_without_the_allowed_tool_is_inconclusive(
    answer: Callable[[dict[str, Any]], httpx.Response],
) -> None:
    found = run_scripted({"tools/list": answer})
    result = found["mcp.tools_list_filtered"]
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "does not show the allowed tool" in result.reason


@pytest.mark.parametrize(
    ("allowed", "why"),
    [
        (lambda m: rpc(m, error={"code": -32003, "message": "no"}), "JSON-RPC error -32003: no"),
        (lambda m: text(m, "broken", error=True), "a tool error"),
        (lambda m: httpx.Response(202), "no result"),
        (lambda m: httpx.Response(403), "status 403"),
    ],
    ids=["error", "tool-error", "no-result", "403"],
)
def test_an_allowed_tool_that_cannot_be_called_is_inconclusive(
    allowed: Callable[[dict[str, Any]], httpx.Response], why: str
) -> None:
    found = run_scripted({"tools/call:read_report": allowed})
    result = found["mcp.tool_outside_task"]
    assert result.outcome is Outcome.INCONCLUSIVE
    assert f"could not be called ({why})" in result.reason


@pytest.mark.parametrize(
    ("forbidden", "outcome", "reason"),
    [
        (lambda m: httpx.Response(403), Outcome.PASS, "refused (status 403)"),
        (
            lambda m: text(m, "Permission denied for this tool", error=True),
            Outcome.PASS,
            "refused (a tool error that says it was refused)",
        ),
        (lambda m: text(m, "no report named q3", error=True), Outcome.FAIL, "the tool ran"),
        (lambda m: httpx.Response(202), Outcome.INCONCLUSIVE, "whether the tool ran is unknown"),
    ],
    ids=["403", "says-refused", "tool-ran", "no-answer"],
)
def test_the_forbidden_call_is_judged_by_its_answer(
    forbidden: Callable[[dict[str, Any]], httpx.Response], outcome: Outcome, reason: str
) -> None:
    found = run_scripted(
        {"tools/call:read_report": lambda m: text(m, "Q3"), "tools/call:delete_report": forbidden}
    )
    result = found["mcp.tool_outside_task"]
    assert result.outcome is outcome
    assert reason in result.reason


def test_a_scenario_run_without_an_mcp_profile_is_refused() -> None:
    context = ProbeContext(
        TargetProfile("http://127.0.0.1:9", Call("GET", "/x")),
        StaticBearer("probe-static-token"),
        Wire(),
    )
    try:
        with pytest.raises(ValueError, match="no MCP endpoint"):
            mcp.SCENARIOS[0].run(context)
    finally:
        context.wire.close()


def test_a_listing_that_never_ends_is_read_to_its_page_limit() -> None:
    def endless(message: dict[str, Any]) -> httpx.Response:
        cursor = int((message.get("params") or {}).get("cursor") or 0)
        return rpc(message, {"tools": [{"name": f"t{cursor}"}], "nextCursor": str(cursor + 1)})

    found = run_scripted({"tools/list": endless})
    result = found["mcp.tools_list_filtered"]
    assert result.outcome is Outcome.INCONCLUSIVE  # read_report never shown
    assert f"{MAX_PAGES} tools, not it" in result.reason
    assert len([e for e in result.evidence if e.role == "attack"]) == MAX_PAGES


#: a JWT the target quotes back (the probe's own JWTs are masked by their shape)
QUOTED_JWT = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJwcm9iZSJ9.c2lnbmF0dXJl"


def test_a_refusal_that_quotes_the_credential_shows_it_masked() -> None:
    """A target's JSON-RPC error quoting the token it got (whole, or a JWT the 200
    characters of a message would cut short): the reason, in every report, shows it
    masked; the rest of the message, like any other refusal's, as it was."""
    quoting = "invalid credential probe-static-token; " + "x" * 150 + " " + QUOTED_JWT
    found = run_scripted(
        {
            "tools/call:read_report": lambda m: text(m, "Q3"),
            "tools/call:delete_report": lambda m: rpc(
                m, error={"code": -32003, "message": quoting}
            ),
        }
    )
    result = found["mcp.tool_outside_task"]
    assert result.outcome is Outcome.PASS
    assert "refused (JSON-RPC error -32003: invalid credential ***(sha256:" in result.reason
    assert "probe-static-token" not in result.reason
    assert "eyJhbGciOiJFUzI1NiIsInR5cCI6" not in result.reason
    # the initialize refusal's reason too (the client's own error text)
    refused = run_scripted({"initialize": lambda m: rpc(m, error={"code": -1, "message": quoting})})
    assert all("probe-static-token" not in r.reason for r in refused.values())
    assert all("eyJhbGciOiJFUzI1NiIsInR5cCI6" not in r.reason for r in refused.values())
