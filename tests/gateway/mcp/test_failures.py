"""Fail closed: an undecided call, a broken engine, audit or upstream never let a call through."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import anyio
import pytest
from mcp_types import Tool, ToolAnnotations
from starlette.testclient import TestClient

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.harness import calls
from tests.gateway.mcp.test_gateway_e2e import INITIALIZE, MCP_HEADERS
from zerolane.cli.background import free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.edge.jsonrpc import FORBIDDEN, UPSTREAM_UNAVAILABLE
from zerolane.gateway.mcp import create_gateway_app
from zerolane.gateway.mcp.auth import Gate
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.listing import callable_routes, permitted, request_facts
from zerolane.gateway.mcp.mapping import ToolRoute, route_for
from zerolane.gateway.mcp.messages import Message
from zerolane.gateway.mcp.relay import Relay
from zerolane.gateway.mcp.session import AgentSession, ClientFacts, Outbox
from zerolane.gateway.mcp.targets import Target, audited_arguments, target_of
from zerolane.gateway.mcp.view import View
from zerolane.policy.engine import PolicyEngine, PolicyRequest, PolicyResult
from zerolane.sdk import Task
from zerolane.tasks.decisions import DecideInput, Decider, Decision
from zerolane.tokens.rfc9068 import TaskTokenClaims

READ = Tool(
    name="read_report",
    input_schema={"type": "object"},
    annotations=ToolAnnotations(readOnlyHint=True),
)
ALLOW = Decision("d1", True, (), ("task.request",), "tsk_1", None)
METHOD_NOT_FOUND = -32601


def route(stack: Stack) -> ToolRoute:
    found = route_for(stack.config.servers[0], READ)
    assert found is not None
    return found


def claims_of(stack: Stack, token: str, proof: str) -> TaskTokenClaims:
    holder = stack.deployment.authenticator.task_holder(
        token, proof, method="POST", url=stack.url, audience=stack.config.audience
    )
    return holder.claims


def call(name: str, arguments: dict[str, Any], request_id: int = 1) -> Message:
    params = {"name": name, "arguments": arguments}
    return Message(
        "request", {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    )


def listed_view(servers: tuple[UpstreamConfig, ...]) -> View:
    """A view in which the first server lists ``read_report``."""
    view = View(servers)
    view.set_tools({servers[0].name: [READ]})
    return view


@contextmanager
def agent_session(stack: Stack, *servers: UpstreamConfig) -> Iterator[AgentSession]:
    with stack.agent() as agent, stack.task(agent) as task:
        claims = claims_of(stack, task.token, task.headers("POST", stack.url)["DPoP"])
        yield AgentSession(
            "s1",
            claims,
            ClientFacts({}, "2025-11-25"),
            servers=servers,
            pools={},
            may_read=cast(Any, None),
            connect_seconds=0.5,
        )


def relay_of(stack: Stack) -> Relay:
    return Relay(enforcement_of(stack.deployment), Catalog([]))


async def answered(
    relay: Relay, session: AgentSession, message: Message, **decided: Any
) -> dict[str, Any]:
    """What the relay answers ``message`` within the session (bounded: never a hang)."""
    async with anyio.create_task_group() as group:
        await group.start(session.run)
        outbox = Outbox()
        try:
            with anyio.fail_after(10):
                answer = await relay.answer(session, message, outbox, **decided)
        finally:
            outbox.discard()
            session.close()
    assert answer is not None
    return answer


# --- nothing is relayed without its decision -------------------------------------------


@pytest.mark.parametrize("given", ["nothing", "target", "decision"])
def test_a_tools_call_without_its_decision_is_never_relayed(stack: Stack, given: str) -> None:
    """Handed to the relay undecided, a tools/call is a method it does not relay: it
    never reaches the upstream (which is live: relayed, it would be answered)."""
    server = stack.config.servers[0]
    with agent_session(stack, server) as session:
        message = call("read_report", {"name": "q3"})
        target = target_of(message, listed_view((server,)))
        assert target.server == "tools"  # a call that would go somewhere, decided
        options: dict[str, dict[str, Any]] = {
            "nothing": {},
            "target": {"target": target},
            "decision": {"decision": ALLOW},
        }
        decided = options[given]
        before = len(calls(stack.stdio_log, "read_report"))
        answer = anyio.run(lambda: answered(relay_of(stack), session, message, **decided))
        assert answer["id"] == 1
        assert answer["error"]["code"] == METHOD_NOT_FOUND
        assert "result" not in answer
        assert len(calls(stack.stdio_log, "read_report")) == before


def test_an_allowed_call_with_no_upstream_is_not_relayed(stack: Stack) -> None:
    server = stack.config.servers[0]
    with agent_session(stack, server) as session:
        message = call("nowhere", {})
        target = target_of(message, listed_view((server,)))
        assert target.server is None
        answer = anyio.run(
            lambda: answered(relay_of(stack), session, message, target=target, decision=ALLOW)
        )
        assert "result" not in answer
        assert answer["error"]["code"] != UPSTREAM_UNAVAILABLE


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("kind", ["closed", "silent"])
def test_an_unreachable_upstream_is_an_error_not_a_hang(stack: Stack, kind: str) -> None:
    with silent_listener() as silent:
        port = free_port() if kind == "closed" else silent
        server = UpstreamConfig(
            name="unreachable", destination="x.int", url=f"http://127.0.0.1:{port}/mcp"
        )
        with agent_session(stack, server) as session:
            message = call("read_report", {"name": "q3"})
            target = target_of(message, listed_view((server,)))
            assert target.server == "unreachable"
            answer = anyio.run(
                lambda: answered(relay_of(stack), session, message, target=target, decision=ALLOW)
            )
    assert answer["id"] == 1
    error = answer["error"]
    assert error["code"] == UPSTREAM_UNAVAILABLE
    assert error["data"]["decision_id"] == "d1"
    assert error["data"]["status"] == 502
    assert error["data"]["reason"].startswith("upstream.")


# --- a failing engine lists nothing -----------------------------------------------------


class Broken:
    """A policy engine that raises."""

    version = "broken"

    def decide(self, request: PolicyRequest) -> PolicyResult:
        raise RuntimeError("engine down")


def test_a_failing_engine_lists_nothing(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        claims = claims_of(stack, task.token, task.headers("POST", stack.url)["DPoP"])
        enforcement = enforcement_of(stack.deployment)
        assert callable_routes(enforcement, claims, [route(stack)]) == [route(stack)]
        facts = [request_facts(enforcement, route(stack))] * 2
        assert permitted(enforcement, claims, facts) == [True, True]
        broken = dataclasses.replace(enforcement, engine=lambda: cast(PolicyEngine, Broken()))
        assert callable_routes(broken, claims, [route(stack)]) == []
        assert permitted(broken, claims, facts) == [False, False]


# --- the decision's input records the call ---------------------------------------------


class RecordingDecider:
    """Stands in for the decider: keeps what it is asked, answers as told."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.asked: list[DecideInput] = []

    async def decide_async(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        self.asked.append(request)
        return self.decision


def deciding_with(stack: Stack, decider: RecordingDecider) -> Enforcement:
    return dataclasses.replace(enforcement_of(stack.deployment), decider=cast(Decider, decider))


def test_the_decision_records_the_call_in_its_own_audit_event(stack: Stack) -> None:
    """One decision per call, asked to record the call (tool, bounded arguments, what
    the tool is) in its own event: no second event, no store read of the gateway's."""
    decider = RecordingDecider(ALLOW)
    gate = Gate(config=stack.config, enforcement=deciding_with(stack, decider))
    view = listed_view(stack.config.servers)
    known = gate._input(target_of(call("read_report", {"name": "q3"}), view), None)
    unknown: Target = target_of(call("drop_database", {"table": "x" * 9000}, 2), view)
    decision = anyio.run(gate.decide, "token", "proof", unknown, None)
    assert decision is ALLOW  # answered as the decider told
    [unmapped] = decider.asked
    assert unmapped == gate._input(unknown, None)
    assert known.details == {
        "mcp_method": "tools/call",
        "tool": "read_report",
        "arguments": {"name": "q3"},
        "server": "tools",
        "upstream_tool": "read_report",
        "read_only": True,
        "destructive": False,
    }
    assert known.mcp is not None
    assert known.mcp.arguments == ("name=q3",)
    assert (known.action, known.resource) == ("mcp:tools/read_report", "mcp/tools/read_report")
    assert (known.method, known.url, known.audience) == (
        "POST",
        stack.config.endpoint,
        stack.config.audience,
    )
    assert known.sensitivity == "internal"
    assert unmapped.details == {
        "mcp_method": "tools/call",
        "tool": "drop_database",
        "arguments": {"truncated": True, "bytes": 9013},  # {"table": "xx…"}
    }
    assert (unmapped.action, unmapped.resource) == ("mcp:?/drop_database", "")
    assert (unmapped.destination, unmapped.sensitivity, unmapped.mcp) == ("", None, None)


# --- a decision that failed closed ------------------------------------------------------


def _post(
    client: TestClient, stack: Stack, task: Task, body: dict[str, Any], session: str | None
) -> Any:
    headers = {**MCP_HEADERS, **task.headers("POST", stack.config.endpoint)}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return client.post(stack.config.path, json=body, headers=headers)


def test_a_call_whose_decision_could_not_be_audited_never_reaches_the_upstream(
    stack: Stack,
) -> None:
    """The decider turns a decision it could not audit into a 503 deny (``audit.write``):
    through the gateway's own endpoint, the call is refused with it, and the upstream
    never sees it; the same call allowed reaches it (the twin)."""
    with stack.agent() as agent, stack.task(agent) as task:
        allow = Decision("d1", True, (), ("task.request",), task.task_id, None)
        decider = RecordingDecider(allow.failed_closed("audit.write"))
        app = create_gateway_app(stack.config, deciding_with(stack, decider))
        with TestClient(app, base_url=stack.config.public_url) as client:
            opened = _post(client, stack, task, INITIALIZE, None)
            assert opened.status_code == 200, opened.text
            session = opened.headers["mcp-session-id"]
            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            tools = _post(client, stack, task, listing, session).json()["result"]["tools"]
            assert "read_report" in {tool["name"] for tool in tools}
            before = len(calls(stack.stdio_log, "read_report"))
            params = {"name": "read_report", "arguments": {"name": "q3"}}
            message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}

            refused = _post(client, stack, task, message, session).json()
            assert refused["id"] == 3
            error = refused["error"]
            assert (error["code"], error["data"]["reasons"], error["data"]["status"]) == (
                FORBIDDEN,
                ["audit.write"],
                503,
            )
            assert decider.asked[-1].action == "mcp:tools/read_report"  # it had somewhere to go
            assert len(calls(stack.stdio_log, "read_report")) == before

            decider.decision = allow  # the twin: the same call allowed reaches the upstream
            answered = _post(client, stack, task, {**message, "id": 4}, session).json()
            assert answered["id"] == 4
            assert "result" in answered, answered
            assert len(calls(stack.stdio_log, "read_report")) == before + 1
            headers = {**task.headers("DELETE", stack.config.endpoint), "Mcp-Session-Id": session}
            assert client.delete(stack.config.path, headers=headers).status_code == 200


def test_large_arguments_are_audited_by_size() -> None:
    assert audited_arguments({"a": 1}) == {"a": 1}
    assert audited_arguments({"a": "x" * 10_000}) == {"truncated": True, "bytes": 10_009}


def test_a_silent_upstream_does_not_hold_up_initialize(stack: Stack) -> None:
    """An agent's initialize waits a bounded time for its upstream sessions: one that
    never answers (within a 30 s connect bound) goes on opening in the session, the agent
    is not kept waiting for it; an upstream that answers is usable (the twin)."""
    good = stack.config.servers[0]
    with (
        silent_listener() as silent,
        stack.agent() as agent,
        stack.task(agent) as task,
    ):
        mute = UpstreamConfig(
            name="mute", destination="x.int", url=f"http://127.0.0.1:{silent}/mcp"
        )
        claims = claims_of(stack, task.token, task.headers("POST", stack.url)["DPoP"])
        session = AgentSession(
            "s2",
            claims,
            ClientFacts({}, "2025-11-25"),
            servers=(mute, good),
            pools={},
            may_read=cast(Any, None),
            connect_seconds=30,
        )

        async def main() -> tuple[float, bool, str | None]:
            async with anyio.create_task_group() as group:
                await group.start(session.run)
                started = anyio.current_time()
                await session.open_links(wait_seconds=0.5)
                waited = anyio.current_time() - started
                usable = not (await session.link(good.name)).closed
                session.close()
            return waited, usable, session.failure("mute")

        waited, usable, failure = anyio.run(main)
    assert waited < 2  # not the mute upstream's 30 s
    assert usable
    assert failure is None  # it was still opening, not failed, when the agent went on
