"""Policies on ``context.request.mcp`` through the real gateway: arguments and annotations.

Each test adds one policy file to the stack's home, reloads, and takes it out again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.harness import calls
from tests.gateway.mcp.test_gateway_e2e import call, listed, refused, text_of
from zerolane.gateway.edge.jsonrpc import FORBIDDEN

NO_PAYROLL = """
@id("mcp.no_payroll")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request has mcp && context.request.mcp.arguments.contains("name=payroll") };

@id("mcp.no_pdf")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request has mcp && context.request.mcp.arguments.contains("options.format=pdf") };
"""
READ_ONLY_TOOLS = """
@id("mcp.read_only_tools")
forbid (principal, action == Zerolane::Action::"request", resource)
when {
  context.request has mcp &&
  context.request.mcp.server == "tools" &&
  !context.request.mcp.read_only
};
"""


@contextmanager
def extra_policy(stack: Stack, text: str) -> Iterator[None]:
    deployment = stack.deployment
    path = deployment.home / deployment.config.policy_dir / "zz_mcp_test.cedar"
    path.write_text(text)
    try:
        deployment.engine.reload()
        yield
    finally:
        path.unlink()
        deployment.engine.reload()


def test_a_rule_on_the_arguments_refuses_the_call_and_allows_its_twin(stack: Stack) -> None:
    with extra_policy(stack, NO_PAYROLL), stack.agent() as agent, stack.task(agent) as task:
        assert "read_report" in listed(stack, task)  # listing decides without arguments
        error = refused(stack, task, "read_report", {"name": "payroll"})
        assert error.code == FORBIDDEN
        assert error.data["reasons"] == ["mcp.no_payroll"]
        nested = refused(stack, task, "read_report", {"name": "q3", "options": {"format": "pdf"}})
        assert nested.data["reasons"] == ["mcp.no_pdf"]
        assert stack.calls_used(task) == 0
        assert "Q3 revenue" in text_of(call(stack, task, "read_report", {"name": "q3"}))
        assert stack.calls_used(task) == 1
    assert [c["arguments"] for c in calls(stack.stdio_log, "read_report")][-1] == {"name": "q3"}
    assert all(c["arguments"].get("name") != "payroll" for c in calls(stack.stdio_log))
    decision_id = error.data["decision_id"]
    decision = next(
        e for e in stack.events("decision") if e["details"]["decision_id"] == decision_id
    )
    assert (decision["outcome"], decision["details"]["policies"]) == ("denied", ["mcp.no_payroll"])


def test_a_rule_on_the_annotations_filters_the_list_and_refuses_the_call(stack: Stack) -> None:
    actions = ["mcp:tools/read_report", "mcp:tools/post_message", "mcp:web/read_report"]
    with (
        extra_policy(stack, READ_ONLY_TOOLS),
        stack.agent() as agent,
        stack.task(agent, actions=actions) as task,
    ):
        # post_message of server "tools" is not read-only; web's tools are another server
        assert listed(stack, task) == ["read_report", "web_read_report"]
        error = refused(stack, task, "post_message", {"channel": "general", "text": "hi"})
        assert error.data["reasons"] == ["mcp.read_only_tools"]
        assert "Q3 revenue" in text_of(call(stack, task, "read_report", {"name": "q3"}))
    with stack.agent() as agent, stack.task(agent, actions=actions) as task:
        assert "post_message" in listed(stack, task)  # the rule is gone: listed again
