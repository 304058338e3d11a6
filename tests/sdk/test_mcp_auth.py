"""``task.mcp_auth()``: every request of an MCP client signed with a fresh proof of its own.

Offline against a mock transport (each proof checked as the gateway checks it), then the
official MCP client through the real MCP gateway (the stack of ``tests/gateway/mcp``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import httpx2
import jwt
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from tests.gateway.mcp import conftest as mcp_stack
from tests.gateway.mcp.conftest import PLAYBOOK, Stack
from zerolane.sdk import Agent, AsyncAgent, AsyncTask, Task
from zerolane.sdk.common import TaskGrant
from zerolane.sdk.mcp_auth import MCP_TIMEOUT, McpAuth
from zerolane.store.memory.replay import MemoryReplayCache
from zerolane.tokens.rfc9449 import verify_proof

stack = mcp_stack.stack  # the gateway stack fixture, started once for this package
GRANT = TaskGrant(task_id="tsk_1", token="header.payload.signature", expires_at=0, scope={})
GATEWAY = "https://mcp.example.org/mcp"
SENT = [("POST", f"{GATEWAY}?session=1"), ("GET", GATEWAY), ("DELETE", GATEWAY)]


class Recorder:
    """A mock transport's handler keeping every request it is sent."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(200, json={})


def check_signed(requests: list[httpx2.Request]) -> None:
    """Each request carries the token and a proof for its own method and URL, never reused."""
    replay = MemoryReplayCache()
    assert [(r.method, str(r.url)) for r in requests] == SENT
    for request in requests:
        assert request.headers["authorization"] == f"DPoP {GRANT.token}"
        verify_proof(
            request.headers["dpop"],
            method=request.method,
            url=str(request.url),
            access_token=GRANT.token,
            replay=replay,  # shared: a proof seen twice would be refused
            now=jwt.decode(request.headers["dpop"], options={"verify_signature": False})["iat"],
        )


def test_sync_task_signs_each_request() -> None:
    recorder = Recorder()
    with Agent("http://cp.invalid") as agent:
        auth = Task(agent, GRANT).mcp_auth()
        assert isinstance(auth, McpAuth)
        with httpx2.Client(auth=auth, transport=httpx2.MockTransport(recorder)) as client:
            for method, url in SENT:
                client.request(method, url)
    check_signed(recorder.requests)


def test_async_task_signs_each_request() -> None:
    recorder = Recorder()

    async def main() -> None:
        async with AsyncAgent("http://cp.invalid") as agent:
            auth = AsyncTask(agent, GRANT).mcp_auth()
            transport = httpx2.MockTransport(recorder)
            async with httpx2.AsyncClient(auth=auth, transport=transport) as client:
                for method, url in SENT:
                    await client.request(method, url)

    asyncio.run(main())
    check_signed(recorder.requests)


def text_of(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def use_gateway(url: str, auth: httpx2.Auth) -> tuple[list[str], str, MCPError]:
    """List, call an allowed tool and a refused one, as an agent would."""
    async with (
        httpx2.AsyncClient(auth=auth, timeout=MCP_TIMEOUT) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = sorted(tool.name for tool in (await session.list_tools()).tools)
        text = text_of(await session.call_tool("read_report", {"name": "q3"}))
        try:
            await session.call_tool("delete_report", {"name": "q3"})
        except MCPError as err:
            return names, text, err
        raise AssertionError("delete_report was allowed")


def test_an_agent_connects_through_the_gateway_with_mcp_auth(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        names, text, error = anyio.run(use_gateway, stack.url, task.mcp_auth())
        assert names == ["post_message", "read_report", "web_read_report"]
        assert "Q3 revenue" in text
        assert error.data["reasons"] == ["scope.action"]
        assert stack.calls_used(task) == 1


def test_an_async_agent_connects_through_the_gateway_with_mcp_auth(stack: Stack) -> None:
    token = stack.deployment.join_tokens.create(mcp_stack.AGENT, ttl=600, actor=mcp_stack.ADMIN)

    async def main() -> tuple[list[str], str, MCPError, str]:
        async with (
            await AsyncAgent.attest(stack.cp_url, join_token=token.token) as agent,
            agent.task(
                playbook=PLAYBOOK["name"],
                intent="Summarize the Q3 report",
                authorization_details=[{"type": "zerolane_task", "actions": mcp_stack.ACTIONS}],
                audience=[stack.config.audience],
            ) as task,
        ):
            names, text, error = await use_gateway(stack.url, task.mcp_auth())
            return names, text, error, task.task_id

    names, text, error, task_id = anyio.run(main)
    assert names == ["post_message", "read_report", "web_read_report"]
    assert "Q3 revenue" in text
    assert error.data["reasons"] == ["scope.action"]
    assert stack.deployment.lifecycle.get(task_id).calls_used == 1
