"""The MCP gateway end to end with the official ``mcp`` client, real upstream processes."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.client.auth.utils import extract_resource_metadata_from_www_auth
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from tests.gateway.mcp.conftest import AGENT, Stack
from tests.gateway.mcp.harness import calls, mcp_session, read_log
from zerolane.gateway.edge.jsonrpc import FORBIDDEN
from zerolane.gateway.mcp.relay import DECISION_META, TASK_META
from zerolane.sdk import Task

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def text_of(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def listed(stack: Stack, task: Task) -> list[str]:
    async def main() -> list[str]:
        async with mcp_session(stack.url, task) as session:
            return sorted(tool.name for tool in (await session.list_tools()).tools)

    return anyio.run(main)


def attempt(stack: Stack, task: Task, name: str, arguments: dict[str, Any]) -> Any:
    """The call's result, or the MCPError it was refused with (caught inside the session,
    whose task groups would otherwise wrap it)."""

    async def main() -> Any:
        async with mcp_session(stack.url, task) as session:
            try:
                return await session.call_tool(name, arguments)
            except MCPError as err:
                return err

    return anyio.run(main)


def call(stack: Stack, task: Task, name: str, arguments: dict[str, Any]) -> Any:
    result = attempt(stack, task, name, arguments)
    assert not isinstance(result, MCPError), result
    return result


def refused(stack: Stack, task: Task, name: str, arguments: dict[str, Any]) -> MCPError:
    result = attempt(stack, task, name, arguments)
    assert isinstance(result, MCPError), result
    return result


def test_without_a_token_401_points_at_the_protected_resource_metadata(stack: Stack) -> None:
    reply = httpx2.post(stack.url, json=INITIALIZE, headers=MCP_HEADERS)
    assert reply.status_code == 401
    challenges = reply.headers.get_list("www-authenticate")
    assert challenges[0].startswith("Bearer resource_metadata=")
    assert challenges[1].startswith('DPoP algs="ES256 EdDSA"')
    url = extract_resource_metadata_from_www_auth(reply)
    assert url == f"{stack.config.public_url}/.well-known/oauth-protected-resource/mcp"
    assert url is not None
    for where in (url, f"{stack.config.public_url}/.well-known/oauth-protected-resource"):
        metadata = httpx2.get(where).json()
        assert metadata["resource"] == stack.config.audience == stack.url
        assert metadata["authorization_servers"] == [stack.cp_url]
        assert metadata["bearer_methods_supported"] == ["header"]
        assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]
        assert metadata["dpop_bound_access_tokens_required"] is True


def test_tools_list_shows_only_what_the_task_may_call(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        assert listed(stack, task) == ["post_message", "read_report", "web_read_report"]
        assert stack.calls_used(task) == 0  # listing decides read-only: nothing spent
        with stack.task(agent, actions=["mcp:tools/read_report"]) as narrow:
            assert listed(stack, narrow) == ["read_report"]


def test_an_allowed_call_reaches_the_upstream_with_no_agent_credentials(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        result = call(stack, task, "web_read_report", {"name": "q3"})
        assert not result.is_error
        assert "Q3 revenue grew" in text_of(result)
        assert stack.calls_used(task) == 1
        made = calls(stack.web_log, "read_report")[-1]
        assert made["meta"][TASK_META] == task.task_id
        decision_id = made["meta"][DECISION_META]
        requests = [e for e in read_log(stack.web_log) if e["event"] == "http"]
        assert requests
        for seen in requests:
            assert "authorization" not in seen["headers"]
            assert "dpop" not in seen["headers"]
            assert all(task.token not in value for value in seen["headers"].values())
    decision = next(
        e for e in stack.events("decision") if e["details"]["decision_id"] == decision_id
    )
    assert decision["outcome"] == "success"
    assert decision["details"]["action"] == "mcp:web/read_report"
    assert decision["details"]["resource"] == "mcp/web/read_report"
    assert decision["details"]["destination"] == "web.example.org"
    assert decision["details"]["sensitivity"] == "public"


def test_a_call_outside_the_task_is_refused_and_never_reaches_upstream(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        error = refused(stack, task, "delete_report", {"name": "q3"})
        assert error.code == FORBIDDEN
        assert error.data["reasons"] == ["scope.action"]
        assert "scope.action" in error.message
        assert stack.calls_used(task) == 0
        # its legitimate twin on the same server goes through
        assert "Q3 revenue" in text_of(call(stack, task, "read_report", {"name": "q3"}))
    assert calls(stack.stdio_log, "delete_report") == []
    # one event per call, the decision's: it holds the call too, allowed or denied
    decisions = [e for e in stack.events("decision") if e["subject"] == task.task_id]
    assert [e["details"]["tool"] for e in decisions] == ["delete_report", "read_report"]
    denied, allowed = decisions
    assert denied["outcome"] == "denied"
    assert denied["actor"] == {"type": "workload", "id": AGENT}
    assert denied["details"]["decision_id"] == error.data["decision_id"]
    assert denied["details"]["reasons"] == ["scope.action"]
    assert denied["details"]["action"] == "mcp:tools/delete_report"
    assert denied["details"]["arguments"] == {"name": "q3"}
    assert denied["details"]["destructive"] is True
    assert denied["details"]["read_only"] is False
    assert denied["details"]["server"] == "tools"
    assert denied["details"]["upstream_tool"] == "delete_report"
    assert allowed["outcome"] == "success"
    assert allowed["details"]["arguments"] == {"name": "q3"}
    assert allowed["details"]["read_only"] is True
    assert not [e for e in stack.events("mcp.tool_call") if e["subject"] == task.task_id]


def raw_post(stack: Stack, task: Task, body: object, **headers: str) -> httpx2.Response:
    sent = {**MCP_HEADERS, **task.headers("POST", stack.url), **headers}
    return httpx2.post(stack.url, json=body, headers=sent)


def test_annotations_raise_sensitivity_past_the_task_ceiling(stack: Stack) -> None:
    actions = ["mcp:tools/read_report", "mcp:tools/delete_report"]
    with stack.agent() as agent, stack.task(agent, actions=actions) as task:
        assert listed(stack, task) == ["delete_report", "read_report"]
    with (
        stack.agent() as agent,
        stack.task(agent, actions=actions, datatypes=["public", "internal"]) as task,
    ):
        # delete_report is destructive: at least confidential, above this task's ceiling
        assert listed(stack, task) == ["read_report"]
        error = refused(stack, task, "delete_report", {"name": "q3-raw"})
        assert error.data["reasons"] == ["scope.sensitivity"]
        assert "Q3 revenue" in text_of(call(stack, task, "read_report", {"name": "q3"}))
    assert calls(stack.stdio_log, "delete_report") == []


def test_an_unknown_tool_is_refused_as_unmapped(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        error = refused(stack, task, "drop_database", {})
        assert error.code == FORBIDDEN
        assert error.data["reasons"] == ["request.unmapped"]


def test_a_replayed_request_is_refused(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        headers = {**MCP_HEADERS, **task.headers("POST", stack.url)}
        first = httpx2.post(stack.url, json=INITIALIZE, headers=headers)
        again = httpx2.post(stack.url, json=INITIALIZE, headers=headers)
        assert first.status_code == 200
        assert again.status_code == 401
        assert again.json()["reason"] == "dpop.replayed"
        assert 'error="invalid_dpop_proof"' in again.headers["www-authenticate"]


def test_credentials_are_checked_on_every_request(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        wrong_url = task.headers("POST", "http://127.0.0.1:1/mcp")
        reply = httpx2.post(stack.url, json=INITIALIZE, headers={**MCP_HEADERS, **wrong_url})
        assert (reply.status_code, reply.json()["reason"]) == (401, "dpop.htu")
        bearer = {"Authorization": f"Bearer {task.token}"}
        reply = httpx2.post(stack.url, json=INITIALIZE, headers={**MCP_HEADERS, **bearer})
        assert (reply.status_code, reply.json()["reason"]) == (401, "auth.scheme")
        assert raw_post(stack, task, INITIALIZE).status_code == 200


def test_a_token_for_another_audience_is_refused(stack: Stack) -> None:
    with (
        stack.agent() as agent,
        stack.task(agent, audience="https://elsewhere.example.org/mcp") as task,
    ):
        reply = raw_post(stack, task, INITIALIZE)
        assert reply.status_code == 401
        assert reply.json()["reason"].startswith("token.")
        assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def test_a_completed_task_gets_nothing_more(stack: Stack) -> None:
    with stack.agent() as agent:
        task = stack.task(agent)
        assert raw_post(stack, task, INITIALIZE).status_code == 200
        task.complete()
        reply = raw_post(stack, task, INITIALIZE)
        assert (reply.status_code, reply.json()["reason"]) == (403, "task.completed")
        assert stack.events("mcp.refused")[-1]["reason"] == "task.completed"


def test_a_batch_is_refused_before_the_sdk(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        reply = raw_post(stack, task, [INITIALIZE, {**INITIALIZE, "id": 2}])
        assert reply.status_code == 400
        assert "batches" in reply.json()["error"]["message"]


def test_an_mcp_session_belongs_to_the_task_that_opened_it(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as owner, stack.task(agent) as other:
        opened = raw_post(stack, owner, INITIALIZE)
        session = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        version = {"mcp-protocol-version": "2025-06-18", "mcp-session-id": session}
        assert raw_post(stack, owner, ping, **version).status_code == 200
        assert raw_post(stack, other, ping, **version).status_code == 404


def test_a_client_asking_for_the_modern_protocol_is_served_the_handshake_one(
    stack: Stack,
) -> None:
    """``mcp.Client`` first asks for the 2026-07-28 protocol (per request, no session);
    the gateway relays sessions (2025-11-25), so the client falls back to the handshake
    and is enforced the same way."""

    async def main(task: Task) -> tuple[str | None, list[str], str, MCPError]:
        async with (
            httpx2.AsyncClient(auth=task.mcp_auth(), timeout=30) as http,
            Client(streamable_http_client(stack.url, http_client=http)) as client,
        ):
            version = client.session.protocol_version
            names = sorted(tool.name for tool in (await client.list_tools()).tools)
            text = text_of(await client.call_tool("read_report", {"name": "q3"}))
            try:
                await client.call_tool("delete_report", {"name": "q3"})
            except MCPError as err:
                return version, names, text, err
            raise AssertionError("delete_report was allowed")

    with stack.agent() as agent, stack.task(agent) as task:
        version, names, text, error = anyio.run(main, task)
        assert version in HANDSHAKE_PROTOCOL_VERSIONS
        assert names == ["post_message", "read_report", "web_read_report"]
        assert "Q3 revenue" in text
        assert error.data["reasons"] == ["scope.action"]
        assert stack.calls_used(task) == 1


def test_a_tools_call_with_a_bad_proof_is_a_401(stack: Stack) -> None:
    call_body = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "read_report", "arguments": {"name": "q3"}},
    }
    with stack.agent() as agent, stack.task(agent) as task:
        elsewhere = task.headers("POST", "http://127.0.0.1:1/mcp")
        reply = httpx2.post(stack.url, json=call_body, headers={**MCP_HEADERS, **elsewhere})
        assert (reply.status_code, reply.json()["reason"]) == (401, "dpop.htu")
        assert 'error="invalid_dpop_proof"' in reply.headers["www-authenticate"]
        assert stack.calls_used(task) == 0


def test_oversized_bodies_and_duplicate_proofs_are_refused(stack: Stack) -> None:
    with stack.agent() as agent, stack.task(agent) as task:
        huge = {**INITIALIZE, "params": {"padding": "x" * stack.config.max_body_bytes}}
        assert raw_post(stack, task, huge).status_code == 413
        first, second = task.headers("POST", stack.url), task.headers("POST", stack.url)
        headers = [
            *MCP_HEADERS.items(),
            ("Authorization", first["Authorization"]),
            ("DPoP", first["DPoP"]),
            ("DPoP", second["DPoP"]),
        ]
        reply = httpx2.post(stack.url, json=INITIALIZE, headers=headers)
        assert (reply.status_code, reply.json()["reason"]) == (400, "dpop.multiple")
        assert 'error="invalid_request"' in reply.headers["www-authenticate"]
        twice = [
            *MCP_HEADERS.items(),
            ("Authorization", first["Authorization"]),
            ("Authorization", "DPoP another-token"),
            ("DPoP", second["DPoP"]),
        ]
        reply = httpx2.post(stack.url, json=INITIALIZE, headers=twice)
        assert (reply.status_code, reply.json()["reason"]) == (400, "auth.multiple")
        # a header the transport reads (Origin, Accept, ...) sent twice: 400, not a 500
        origins = [
            *MCP_HEADERS.items(),
            *task.headers("POST", stack.url).items(),
            ("Origin", stack.config.public_url),
            ("Origin", "http://evil.example"),
        ]
        reply = httpx2.post(stack.url, json=INITIALIZE, headers=origins)
        assert (reply.status_code, reply.json()["reason"]) == (400, "request.header_repeated")
        once = [*MCP_HEADERS.items(), *task.headers("POST", stack.url).items()]
        assert httpx2.post(stack.url, json=INITIALIZE, headers=once).status_code == 200
