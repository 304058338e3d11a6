"""Policy test cases with an ``mcp:`` block: parsed, flattened as the gateway does, checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy.test_mcp_context import NO_FINANCE_FILES, NO_PAYROLL, NOT_WHOLE
from zerolane.errors import InvalidInput
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import McpFacts
from zerolane.policy.testing import load_case_file, run_path

CASES = """
principal: spiffe://example.org/agents/reporter
cases:
  - name: the payroll report is refused
    task: &task
      actions: ["mcp:reports/read_report"]
      resources: ["mcp/reports/*"]
      destinations: [reports.example.org]
    request: &call
      action: mcp:reports/read_report
      resource: mcp/reports/read_report
      destination: reports.example.org
      mcp:
        read_only: true
        arguments: {report: payroll, options: {format: pdf}}
    expect: deny
    reasons: [mcp.no_payroll]
  - name: its twin, the Q3 report, is allowed
    task: *task
    request: {<<: *call, mcp: {read_only: true, arguments: {report: q3}}}
    expect: allow
    reasons: [task.request]
  - name: a request that is not an MCP call decides as before
    task: *task
    request: {action: "mcp:reports/read_report", resource: mcp/reports/read_report,
              destination: reports.example.org}
    expect: allow
  - name: an argument set that was truncated is refused
    task: *task
    request: {<<: *call, mcp: {server: reports, tool: read_report, arguments_truncated: true}}
    expect: deny
    reasons: [mcp.arguments_truncated]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mcp_cases.yaml"
    path.write_text(text)
    return path


def mcp_of(tmp_path: Path, request: str) -> McpFacts | None:
    text = f"""
cases:
  - name: one
    request: {request}
    expect: allow
"""
    (case,) = load_case_file(_write(tmp_path, text))
    record = case.request.context["request"]
    assert isinstance(record, dict)
    mcp = record.get("mcp")
    if mcp is None:
        return None
    return McpFacts(
        mcp["server"],
        mcp["tool"],
        mcp["read_only"],
        mcp["destructive"],
        tuple(mcp["arguments"]),
        mcp["arguments_truncated"],
        mcp["method"],
        mcp["uri"],
    )


def test_cases_with_mcp_blocks_run(policy_dir: Path, tmp_path: Path) -> None:
    (policy_dir / "mcp.cedar").write_text(NO_PAYROLL + NOT_WHOLE)
    results = run_path(CedarEngine(policy_dir), _write(tmp_path, CASES))
    assert [r.detail for r in results] == ["", "", "", ""]


def test_server_and_tool_default_to_the_mcp_action(tmp_path: Path) -> None:
    request = (
        "{action: 'mcp:reports/read_report', resource: r, destination: d,"
        " mcp: {arguments: {report: q3, pages: [1, 2]}}}"
    )
    assert mcp_of(tmp_path, request) == McpFacts(
        "reports", "read_report", False, True, ("pages=1", "pages=2", "report=q3"), False
    )
    named = "{action: read, resource: r, destination: d, mcp: {server: s, tool: t, read_only: on}}"
    assert mcp_of(tmp_path, named) == McpFacts("s", "t", True, False, (), False)
    assert mcp_of(tmp_path, "{action: read, resource: r, destination: d}") is None


@pytest.mark.parametrize(
    ("mcp", "message"),
    [
        ("{tool: t}", "request.mcp.server: required"),
        ("{server: s}", "request.mcp.tool: required"),
        ("{server: s, tool: t, args: {}}", "request.mcp: unknown key(s) args"),
        ("{server: s, tool: t, arguments: [a]}", "request.mcp.arguments: must be a mapping"),
        ("{server: s, tool: t, arguments: {1: a}}", "request.mcp.arguments: must be a mapping"),
        ("{server: s, tool: t, read_only: yes please}", "request.mcp.read_only: must be true"),
        ("[server]", "request.mcp: must be a mapping"),
        ("{server: s, tool: t, method: tools/cal}", "request.mcp.method: must be one of"),
        ("{server: s, tool: t, uri: 3}", "request.mcp.uri: must be"),
    ],
)
def test_malformed_mcp_blocks_are_refused(tmp_path: Path, mcp: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        mcp_of(tmp_path, f"{{action: read, resource: r, destination: d, mcp: {mcp}}}")
    assert message in refused.value.message


def test_a_resource_read_action_gives_its_defaults(tmp_path: Path) -> None:
    request = (
        "{action: 'mcp:docs/resources/read', resource: mcp/docs/resources/file/-/a,"
        " destination: d, mcp: {uri: 'file:///a'}}"
    )
    assert mcp_of(tmp_path, request) == McpFacts(
        "docs", "", True, False, (), False, "resources/read", "file:///a"
    )
    subscribe = request.replace("mcp: {", "mcp: {method: resources/subscribe, ")
    facts = mcp_of(tmp_path, subscribe)
    assert facts is not None
    assert (facts.method, facts.uri, facts.tool) == ("resources/subscribe", "file:///a", "")
    with pytest.raises(InvalidInput) as refused:  # a read always names its URI
        mcp_of(tmp_path, request.replace("{uri: 'file:///a'}", "{}"))
    assert "request.mcp.uri: required" in refused.value.message


def test_a_prompt_get_action_gives_its_defaults(tmp_path: Path) -> None:
    request = (
        "{action: 'mcp:docs/prompts/get', resource: mcp/docs/prompts/summarize,"
        " destination: d, mcp: {arguments: {topic: q3}}}"
    )
    assert mcp_of(tmp_path, request) == McpFacts(
        "docs", "summarize", True, False, ("topic=q3",), False, "prompts/get", ""
    )
    completing = request.replace("mcp: {", "mcp: {method: completion/complete, ")
    facts = mcp_of(tmp_path, completing)
    assert facts is not None
    assert (facts.method, facts.tool) == ("completion/complete", "summarize")
    for resource in (
        "mcp/docs/prompts/*",
        "mcp/other/prompts/summarize",
        "r",
        "mcp/docs/prompts/a/b",
    ):
        not_simple = request.replace("mcp/docs/prompts/summarize", resource)
        with pytest.raises(InvalidInput) as refused:  # no prompt name to take: give tool
            mcp_of(tmp_path, not_simple)
        assert "request.mcp.tool: required" in refused.value.message
        named = not_simple.replace("mcp: {", "mcp: {tool: summarize, ")
        facts = mcp_of(tmp_path, named)
        assert facts is not None
        assert facts.tool == "summarize"


RESOURCE_CASES = """
cases:
  - name: a finance file is refused
    task: &task
      actions: ["mcp:docs/resources/read"]
      resources: ["mcp/docs/resources/file/-/**"]
      destinations: [docs.example.org]
    request: &read
      action: mcp:docs/resources/read
      resource: mcp/docs/resources/file/-/finance/q3.pdf
      destination: docs.example.org
      mcp: {uri: "file:///finance/q3.pdf"}
    expect: deny
    reasons: [mcp.no_finance_files]
  - name: a public file is allowed
    task: *task
    request:
      <<: *read
      resource: mcp/docs/resources/file/-/public/prices.csv
      mcp: {uri: "file:///public/prices.csv"}
    expect: allow
    reasons: [task.request]
"""


def test_cases_on_resource_reads_run(policy_dir: Path, tmp_path: Path) -> None:
    (policy_dir / "mcp.cedar").write_text(NO_FINANCE_FILES)
    results = run_path(CedarEngine(policy_dir), _write(tmp_path, RESOURCE_CASES))
    assert [r.detail for r in results] == ["", ""]
