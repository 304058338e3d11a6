"""Agent sessions through the MCP gateway, end to end: two agents through one gateway
each see only their own session (its log level, its subscriptions, its id), and a call
the agent cancels is cancelled upstream while the session goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.features import (
    WATCHED,
    Features,
    agent_session,
    eventually,
    running,
    set_level,
    subscribe,
    text_of,
)
from zerolane.sdk import Task

MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def features(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Features]:
    with running(stack, tmp_path_factory.mktemp("conformance")) as found:
        yield found


def raw_post(
    features: Features, task: Task, session_id: str, message: dict[str, Any]
) -> httpx2.Response:
    """``message`` POSTed as ``task`` (fresh credentials) in session ``session_id``."""
    headers = {
        **MCP_HEADERS,
        **task.headers("POST", features.url),
        "mcp-protocol-version": "2025-11-25",
        "mcp-session-id": session_id,
    }
    return httpx2.post(features.url, json=message, headers=headers, timeout=30)


PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
READ_WATCHED = {"jsonrpc": "2.0", "id": 8, "method": "resources/read", "params": {"uri": WATCHED}}


def test_two_agents_each_see_only_their_own_session(features: Features, stack: Stack) -> None:
    """Agent A sets a log level and subscribes; agent B, through the same gateway to the
    same upstreams, gets none of it (the reference server logs the level it was set to,
    the Python one sends updates to the subscriber's session only), and A's session is
    not B's to use."""

    async def main(task_a: Task, task_b: Task) -> None:
        async with (
            agent_session(features.url, task_a) as a,
            agent_session(features.url, task_b) as b,
        ):
            await a.session.list_resources()
            await b.session.list_resources()
            await set_level(a, "debug")
            assert (await subscribe(a, WATCHED)) == types.EmptyResult()
            await eventually(lambda: WATCHED in a.updated())
            await eventually(lambda: "Log level set to: debug" in a.log_texts())
            await b.session.send_ping()
            await anyio.sleep(0.5)
            assert b.updated() == []
            assert b.log_texts() == []
            # B subscribes in turn: its own update comes, A gets no second one
            assert (await subscribe(b, WATCHED)) == types.EmptyResult()
            await eventually(lambda: WATCHED in b.updated())
            await a.session.send_ping()
            assert a.updated() == [WATCHED]
            assert b.updated() == [WATCHED]
            assert b.log_texts() == []
            # a session id is its task's only: for a request relayed as it is and for a
            # decided one (never relayed into the other's session)
            assert raw_post(features, task_b, a.session_id, PING).status_code == 404
            assert raw_post(features, task_a, b.session_id, PING).status_code == 404
            reads, spent = len(features.upstream.noted.read), stack.calls_used(task_b)
            assert raw_post(features, task_b, a.session_id, READ_WATCHED).status_code == 404
            assert len(features.upstream.noted.read) == reads
            assert stack.calls_used(task_b) == spent  # bound to A's task: B spent nothing
            bound = stack.events("decision")[-1]
            assert (bound["subject"], bound["reason"]) == (task_b.task_id, "task.binding")
            # the twins: each in its own session
            assert raw_post(features, task_a, a.session_id, PING).status_code == 200
            assert raw_post(features, task_b, b.session_id, PING).status_code == 200
            read = raw_post(features, task_b, b.session_id, READ_WATCHED)
            assert read.status_code == 200
            assert read.json()["result"]["contents"][0]["text"] == f"{WATCHED}: v1"
            assert len(features.upstream.noted.read) == reads + 1

    with features.task() as task_a, features.task() as task_b:
        anyio.run(main, task_a, task_b)


def test_a_cancelled_call_is_cancelled_upstream_and_the_gateway_stays_usable(
    features: Features,
) -> None:
    upstream = features.upstream

    async def main(task: Task) -> str:
        async with agent_session(features.url, task) as agent:
            started = upstream.noted.slow_started
            with anyio.move_on_after(10) as scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(agent.session.call_tool, "features_slow_task", {})
                    await eventually(lambda: upstream.noted.slow_started > started)
                    group.cancel_scope.cancel()
            assert not scope.cancelled_caught
            await eventually(lambda: upstream.noted.slow_cancelled == upstream.noted.slow_started)
            # the same session goes on
            return text_of(await agent.session.call_tool("test_simple_text", {}))

    with features.task() as task:
        text = anyio.run(main, task)
    assert text == "This is a simple text response for testing."
    calls = upstream.recorder.methods("tools/call")
    cancelled = upstream.recorder.methods("notifications/cancelled")
    assert cancelled, "the upstream was not told"
    assert cancelled[-1]["params"]["requestId"] == calls[-1]["id"]
