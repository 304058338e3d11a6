"""The MCP gateway records the expiry of a task it finds expired, on every kind of
request: a ``tools/call`` (through the decision), any other request (the live-task
check) and ``tools/list`` (the listing). The task is then stored expired with its
``task.expired`` event, so no clock stepped back, other process or restart revives it."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import httpx2
from mcp import MCPError

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.harness import mcp_session
from tests.gateway.mcp.test_failures import claims_of, route
from tests.gateway.mcp.test_gateway_e2e import INITIALIZE, MCP_HEADERS
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.edge.jsonrpc import FORBIDDEN
from zerolane.gateway.mcp.listing import callable_routes
from zerolane.sdk import Task
from zerolane.types import TaskState

#: the expiring task's window: long enough to open its session on a loaded machine (a
#: one-second window ran out before the session opened in CI), short enough that the
#: clock set past it leaves later proofs well within their 60-second window
WINDOW = 10


class At:
    """A clock standing at one moment."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def post(stack: Stack, task: Task, body: dict[str, Any]) -> httpx2.Response:
    headers = {**MCP_HEADERS, **task.headers("POST", stack.url)}
    return httpx2.post(stack.url, json=body, headers=headers)


def past_its_window(stack: Stack, task: Task) -> None:
    """Set the stack's clock past the task's window (its token still within the leeway)."""
    stack.clock.past(stack.deployment.lifecycle.get(task.task_id).expires_at)


def stored_state(stack: Stack, task: Task) -> TaskState:
    stored = stack.deployment.stores.get_task(task.task_id)
    assert stored is not None
    return stored.state


def expiries(stack: Stack, task: Task) -> list[dict[str, Any]]:
    return [e for e in stack.events("task.expired") if e["subject"] == task.task_id]


def test_a_tools_call_on_an_expired_task_records_its_expiry(stack: Stack) -> None:
    with stack.agent() as agent:
        expiring, live = stack.task(agent, ttl=WINDOW), stack.task(agent)

        async def call_after_the_window() -> MCPError | None:
            async with mcp_session(stack.url, expiring) as session:  # opened while live
                past_its_window(stack, expiring)
                try:
                    await session.call_tool("read_report", {"name": "q3"})
                except MCPError as refused:
                    return refused
            return None

        refused = anyio.run(call_after_the_window)
        assert refused is not None
        assert refused.code == FORBIDDEN
        assert refused.data["reasons"] == ["task.expired"]
        assert stored_state(stack, expiring) is TaskState.EXPIRED
        [recorded] = expiries(stack, expiring)
        assert recorded["outcome"] == "success"
        assert stack.deployment.lifecycle.get(expiring.task_id).end_reason == "expired"
        # the twin: a task within its window is left active, nothing recorded for it
        assert post(stack, live, INITIALIZE).status_code == 200
        assert stored_state(stack, live) is TaskState.ACTIVE
        assert expiries(stack, live) == []
        live.complete()


def test_any_other_request_on_an_expired_task_records_its_expiry(stack: Stack) -> None:
    with stack.agent() as agent:
        expiring, live = stack.task(agent, ttl=WINDOW), stack.task(agent)
        past_its_window(stack, expiring)
        reply = post(stack, expiring, INITIALIZE)
        assert (reply.status_code, reply.json()["reason"]) == (403, "task.expired")
        assert stored_state(stack, expiring) is TaskState.EXPIRED
        assert len(expiries(stack, expiring)) == 1
        assert stack.events("mcp.refused")[-1]["reason"] == "task.expired"
        # refused again, from the stored state now: still one expiry recorded
        assert post(stack, expiring, INITIALIZE).json()["reason"] == "task.expired"
        assert len(expiries(stack, expiring)) == 1
        assert post(stack, live, INITIALIZE).status_code == 200  # the twin
        assert stored_state(stack, live) is TaskState.ACTIVE
        live.complete()


def test_listing_an_expired_task_lists_nothing_and_records_its_expiry(stack: Stack) -> None:
    with stack.agent() as agent:
        task = stack.task(agent)  # not completed: it ends expired
        claims = claims_of(stack, task.token, task.headers("POST", stack.url)["DPoP"])
        enforcement = enforcement_of(stack.deployment)
        # the twin first: within its window the tool is listed and nothing is recorded
        assert callable_routes(enforcement, claims, [route(stack)]) == [route(stack)]
        assert stored_state(stack, task) is TaskState.ACTIVE
        expires_at = stack.deployment.lifecycle.get(task.task_id).expires_at
        later = dataclasses.replace(enforcement, clock=At(expires_at + 1))
        assert callable_routes(later, claims, [route(stack)]) == []
        assert stored_state(stack, task) is TaskState.EXPIRED
        assert len(expiries(stack, task)) == 1
