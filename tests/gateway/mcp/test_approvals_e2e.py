"""Human approval through the real MCP gateway: a tools/call a policy asks approval for
is refused with a JSON-RPC error whose data names ``approval.required`` and the
approval's id; approved over the API, the identical call (same arguments) goes through
once; other arguments need their own approval. The tool stays listed throughout."""

from __future__ import annotations

import httpx

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.harness import calls
from tests.gateway.mcp.test_gateway_e2e import attempt, listed, refused
from tests.gateway.mcp.test_mcp_context_e2e import extra_policy
from zerolane.audit.events import Actor
from zerolane.gateway.edge.jsonrpc import FORBIDDEN
from zerolane.tasks.approval_preview import shown_preview
from zerolane.tasks.approvals import arguments_digest

ASK_POSTS = """
@id("approval.post_message")
@approval("required")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request.action == "mcp:tools/post_message" };
"""
HELLO = {"channel": "general", "text": "Q3 summary is on the wiki"}


def test_a_tool_call_is_approved_then_made_once(stack: Stack) -> None:
    with extra_policy(stack, ASK_POSTS), stack.agent() as agent, stack.task(agent) as task:
        assert "post_message" in listed(stack, task)  # listed: its call asks
        error = refused(stack, task, "post_message", HELLO)
        assert error.code == FORBIDDEN
        assert error.data["reason"] == "approval.required"
        approval_id = error.data["approval_id"]
        assert error.data["approval_url"] == f"/v1/approvals/{approval_id}"
        approval = stack.deployment.approvals.get(approval_id)
        assert approval.action == "mcp:tools/post_message"
        assert approval.digest == arguments_digest({"name": "post_message", "arguments": HELLO})
        shown = shown_preview(approval.preview)  # what the approver is shown
        assert shown is not None
        assert (shown["tool"], shown["mcp_method"]) == ("post_message", "tools/call")
        assert '"text":"Q3 summary is on the wiki"' in shown["arguments"]
        before = len(calls(stack.stdio_log, "post_message"))
        assert task.approval(approval_id)["status"] == "pending"

        stack.deployment.approvals.approve(
            approval_id, approver="carol", actor=Actor("admin", "t"), reason="fine"
        )
        assert task.wait_for_approval(approval_id, timeout=10, interval=0.05) == "approved"
        made = attempt(stack, task, "post_message", dict(reversed(list(HELLO.items()))))
        assert not getattr(made, "is_error", True), made  # same arguments, other key order
        assert len(calls(stack.stdio_log, "post_message")) == before + 1
        again = refused(stack, task, "post_message", HELLO)  # once only
        assert again.data["approval_id"] != approval_id
        other = refused(stack, task, "post_message", {**HELLO, "text": "all the payroll"})
        assert other.data["approval_id"] not in (approval_id, again.data["approval_id"])
        assert len(calls(stack.stdio_log, "post_message")) == before + 1
        denied = httpx.get(f"{stack.cp_url}/v1/approvals/{approval_id}", timeout=10)
        assert denied.status_code == 401  # a holder's own view: its task's credentials
