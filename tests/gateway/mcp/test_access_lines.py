"""The MCP gateway's access lines: one per HTTP request; a ``tools/call`` says its
decision, task and reason; never a token or proof."""

from __future__ import annotations

import httpx2

from tests.gateway.access_lines import access_lines
from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.test_gateway_e2e import INITIALIZE, MCP_HEADERS, call, refused, text_of


def test_tools_call_allow_and_deny_lines(stack: Stack) -> None:
    with access_lines() as lines, stack.agent() as agent, stack.task(agent) as task:
        denied = refused(stack, task, "delete_report", {"name": "q3"})
        assert denied.data["reasons"] == ["scope.action"]
        deny = lines.wait(lambda f: f["decision"] == "deny" and f["task"] == task.task_id)
        # the twin: a call the task may make
        assert "Q3 revenue" in text_of(call(stack, task, "read_report", {"name": "q3"}))
        allow = lines.wait(lambda f: f["decision"] == "allow" and f["task"] == task.task_id)
        token = task.token
    path = stack.config.path
    assert {k: deny[k] for k in ("listener", "method", "path", "status", "reason")} == {
        "listener": "mcp-gateway",
        "method": "POST",
        "path": path,
        "status": 200,  # a JSON-RPC error: the HTTP exchange itself succeeded
        "reason": "scope.action",
    }
    assert (allow["path"], allow["status"], allow["reason"]) == (path, 200, None)
    # the session's other requests (initialize, notifications, DELETE) name the task too
    others = [f for f in lines.fields() if f["task"] == task.task_id and f["decision"] == "none"]
    assert others
    assert all(f["reason"] is None for f in others)
    for line in lines.rendered():
        assert token not in line


def test_an_unauthenticated_request_is_a_deny_line(stack: Stack) -> None:
    with access_lines() as lines:
        reply = httpx2.post(stack.url, json=INITIALIZE, headers=MCP_HEADERS)
        assert reply.status_code == 401
        line = lines.wait(lambda f: f["status"] == 401)
    assert (line["listener"], line["decision"], line["reason"], line["task"]) == (
        "mcp-gateway",
        "deny",
        "auth.missing",
        None,
    )
