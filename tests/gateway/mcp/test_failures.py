"""Fail closed: no state, a mismatched decision, a broken engine, audit or upstream."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import anyio
import pytest
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolRequestParams, Tool, ToolAnnotations
from starlette.requests import Request

from tests.gateway.mcp.conftest import Stack
from zerolane.audit.log import AuditLog
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.errors import Unavailable
from zerolane.gateway.mcp.auth import Enforcer, audited_arguments
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.listing import callable_routes
from zerolane.gateway.mcp.mapping import ToolRoute, route_for
from zerolane.gateway.mcp.messages import ToolCallMessage
from zerolane.gateway.mcp.proxy import FORBIDDEN, UPSTREAM_UNAVAILABLE, GatewayHandlers
from zerolane.gateway.mcp.state import SCOPE_KEY, RequestState, ToolCall
from zerolane.gateway.mcp.upstream import Upstream
from zerolane.policy.engine import PolicyEngine, PolicyRequest, PolicyResult
from zerolane.tasks.decisions import Decision
from zerolane.tokens.rfc9068 import TaskTokenClaims

READ = Tool(
    name="read_report",
    input_schema={"type": "object"},
    annotations=ToolAnnotations(readOnlyHint=True),
)
ALLOW = Decision("d1", True, (), ("task.request",), "tsk_1", 200)


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


class RefusingAudit(AuditLog):
    def record(self, *args: Any, **kwargs: Any) -> Any:
        raise Unavailable("audit.write", "the sink refused")


def test_a_call_whose_arguments_cannot_be_audited_is_not_forwarded(stack: Stack) -> None:
    enforcement = dataclasses.replace(
        enforcement_of(stack.deployment),
        audit=RefusingAudit(stack.deployment.stores, stack.deployment.clock),
    )
    enforcer = Enforcer(
        cast(Any, None), config=stack.config, enforcement=enforcement, catalog=Catalog([])
    )
    with stack.agent() as agent, stack.task(agent) as task:
        proof = task.headers("POST", stack.url)["DPoP"]
        message = ToolCallMessage(1, "read_report", {"name": "q3"})
        decision = enforcer._decide_sync(task.token, proof, message, route(stack))
        assert (decision.allowed, decision.reasons, decision.status) == (
            False,
            ("audit.write",),
            503,
        )


def test_large_arguments_are_audited_by_size() -> None:
    assert audited_arguments({"a": 1}) == {"a": 1}
    assert audited_arguments({"a": "x" * 10_000}) == {"truncated": True, "bytes": 10_009}
