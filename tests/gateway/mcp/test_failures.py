"""Fail closed: no state, a mismatched decision, a broken engine, audit or upstream."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, cast

import anyio
import pytest
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolRequestParams, Tool, ToolAnnotations
from starlette.requests import Request

from tests.gateway.mcp.conftest import Stack
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.mcp.auth import Enforcer, audited_arguments
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.listing import callable_routes
from zerolane.gateway.mcp.mapping import ToolRoute, route_for
from zerolane.gateway.mcp.messages import ToolCallMessage
from zerolane.gateway.mcp.proxy import FORBIDDEN, UPSTREAM_UNAVAILABLE, GatewayHandlers
from zerolane.gateway.mcp.state import SCOPE_KEY, RequestState, ToolCall
from zerolane.gateway.mcp.upstream import Upstream
from zerolane.policy.engine import PolicyEngine, PolicyRequest, PolicyResult
from zerolane.tasks.decisions import DecideInput, Decider, Decision
from zerolane.tokens.rfc9068 import TaskTokenClaims

READ = Tool(
    name="read_report",
    input_schema={"type": "object"},
    annotations=ToolAnnotations(readOnlyHint=True),
)
ALLOW = Decision("d1", True, (), ("task.request",), "tsk_1", None)


def context(state: RequestState | None, request_id: int = 1) -> ServerRequestContext[Any]:
    scope: dict[str, Any] = {"type": "http", "method": "POST", "headers": []}
    if state is not None:
        scope[SCOPE_KEY] = state
    return ServerRequestContext(
        session=cast(Any, None),
        lifespan_context={},
        protocol_version="2025-06-18",
        method="tools/call",
        request_id=request_id,
        request=Request(scope),
    )


def route(stack: Stack) -> ToolRoute:
    found = route_for(stack.config.servers[0], READ)
    assert found is not None
    return found


def handlers(stack: Stack, *upstreams: Upstream) -> GatewayHandlers:
    return GatewayHandlers(enforcement_of(stack.deployment), Catalog(list(upstreams)))


def refusal(handler: GatewayHandlers, ctx: ServerRequestContext[Any], name: str) -> MCPError:
    params = CallToolRequestParams(name=name, arguments={"name": "q3"})

    async def main() -> None:
        await handler.call_tool(ctx, params)

    with pytest.raises(MCPError) as caught:
        anyio.run(main)
    return caught.value


def test_a_call_without_the_middlewares_state_is_refused(stack: Stack) -> None:
    error = refusal(handlers(stack), context(None), "read_report")
    assert (error.code, error.data["reasons"]) == (FORBIDDEN, ["auth.missing"])


@pytest.mark.parametrize(("name", "request_id"), [("delete_report", 1), ("read_report", 2)])
def test_an_allow_for_another_call_is_not_used(stack: Stack, name: str, request_id: int) -> None:
    state = RequestState("tsk_1", call=ToolCall(1, "read_report", route(stack), ALLOW))
    error = refusal(handlers(stack), context(state, request_id), name)
    assert error.data["reasons"] == ["decision.missing"]


def test_an_unreachable_upstream_is_an_error_not_a_hang(stack: Stack) -> None:
    upstream = Upstream(stack.config.servers[0], wait_seconds=0.01)  # never connected
    state = RequestState("tsk_1", call=ToolCall(1, "read_report", route(stack), ALLOW))
    error = refusal(handlers(stack, upstream), context(state), "read_report")
    assert error.code == UPSTREAM_UNAVAILABLE
    assert error.data["decision_id"] == "d1"


def test_listing_without_a_verified_task_is_refused(stack: Stack) -> None:
    async def main() -> None:
        await handlers(stack).list_tools(context(RequestState("tsk_1")), None)

    with pytest.raises(MCPError) as caught:
        anyio.run(main)
    assert caught.value.code == FORBIDDEN


class Broken:
    """A policy engine that raises."""

    version = "broken"

    def decide(self, request: PolicyRequest) -> PolicyResult:
        raise RuntimeError("engine down")


def claims_of(stack: Stack, token: str, proof: str) -> TaskTokenClaims:
    holder = stack.deployment.authenticator.task_holder(
        token, proof, method="POST", url=stack.url, audience=stack.config.audience
    )
    return holder.claims


def test_a_failing_engine_lists_nothing(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        claims = claims_of(stack, task.token, task.headers("POST", stack.url)["DPoP"])
        enforcement = enforcement_of(stack.deployment)
        assert callable_routes(enforcement, claims, [route(stack)]) == [route(stack)]
        broken = dataclasses.replace(enforcement, engine=lambda: cast(PolicyEngine, Broken()))
        assert callable_routes(broken, claims, [route(stack)]) == []


class RecordingDecider:
    """Stands in for the decider: keeps what it is asked, answers as told."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.asked: list[DecideInput] = []

    async def decide_async(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        self.asked.append(request)
        return self.decision


def enforcer_with(stack: Stack, decider: RecordingDecider) -> Enforcer:
    enforcement = dataclasses.replace(
        enforcement_of(stack.deployment), decider=cast(Decider, decider)
    )
    return Enforcer(
        cast(Any, None), config=stack.config, enforcement=enforcement, catalog=Catalog([])
    )


def test_the_decision_records_the_call_in_its_own_audit_event(stack: Stack) -> None:
    """One decision per call, asked to record the call (tool, bounded arguments, what
    the tool is) in its own event: no second event, no store read of the gateway's."""
    decider = RecordingDecider(ALLOW)
    enforcer = enforcer_with(stack, decider)
    called = ToolCallMessage(1, "read_report", {"name": "q3"})
    known = enforcer._request(called, route(stack), None)
    unknown = ToolCallMessage(2, "drop_database", {"table": "x" * 9000})
    state = asyncio.run(enforcer._decide("token", "proof", unknown, None))  # no such tool here
    assert state.call is not None
    assert state.call.decision is ALLOW  # answered as the decider told
    [unmapped] = decider.asked
    assert unmapped == enforcer._request(unknown, None, None)
    assert known.details == {
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
    assert unmapped.details == {
        "tool": "drop_database",
        "arguments": {"truncated": True, "bytes": 9013},  # {"table": "xx…"}
    }
    assert (unmapped.action, unmapped.resource) == ("mcp:?/drop_database", "")


class CountingUpstream:
    """An upstream that counts the calls that reach it."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.name = config.name
        self.tools = (READ,)
        self.calls: list[str] = []

    async def call_tool(self, name: str, *_: Any) -> Any:
        self.calls.append(name)
        raise AssertionError("a refused call reached the upstream")


def test_a_call_whose_decision_could_not_be_audited_never_reaches_the_upstream(
    stack: Stack,
) -> None:
    """The decider turns a decision it could not audit into a 503 deny (``audit.write``):
    the call is refused with it, and the upstream never sees it."""
    upstream = CountingUpstream(stack.config.servers[0])
    failed = ALLOW.failed_closed("audit.write")
    state = RequestState("tsk_1", call=ToolCall(1, "read_report", route(stack), failed))
    error = refusal(handlers(stack, cast(Upstream, upstream)), context(state), "read_report")
    assert (error.code, error.data["reasons"], error.data["status"]) == (
        FORBIDDEN,
        ["audit.write"],
        503,
    )
    assert upstream.calls == []


def test_large_arguments_are_audited_by_size() -> None:
    assert audited_arguments({"a": 1}) == {"a": 1}
    assert audited_arguments({"a": "x" * 10_000}) == {"truncated": True, "bytes": 10_009}
