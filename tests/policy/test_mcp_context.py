"""The optional ``request.mcp`` record: flattened arguments, the schema, policies on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy import factories as f
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import (
    CUT,
    MAX_ARGUMENT_CHARS,
    MAX_ARGUMENT_DEPTH,
    MAX_ARGUMENT_ENTRIES,
    McpFacts,
    flatten_arguments,
    request_context,
    request_policy_request,
)
from zerolane.policy.engine import PolicyLoadError, PolicyResult

NO_PAYROLL = """
@id("mcp.no_payroll")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request has mcp && context.request.mcp.arguments.contains("report=payroll") };
"""
NOT_WHOLE = """
@id("mcp.arguments_truncated")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request has mcp && context.request.mcp.arguments_truncated };
"""
NO_FINANCE_FILES = """
@id("mcp.no_finance_files")
forbid (principal, action == Zerolane::Action::"request", resource)
when {
  context.request has mcp &&
  ["resources/read", "resources/subscribe"].contains(context.request.mcp.method) &&
  context.request.mcp.uri like "file:///finance/*"
};
"""
NO_COMPLETION = """
@id("mcp.no_completion")
forbid (principal, action == Zerolane::Action::"request", resource)
when { context.request has mcp && context.request.mcp.method == "completion/complete" };
"""
NO_DESTRUCTIVE = """
@id("mcp.read_only_server")
forbid (principal, action == Zerolane::Action::"request", resource)
when {
  context.request has mcp &&
  context.request.mcp.server == "reports" &&
  !context.request.mcp.read_only
};
"""


def entries(arguments: dict[str, Any]) -> set[str]:
    flat, truncated = flatten_arguments(arguments)
    assert not truncated
    return set(flat)


def call(arguments: dict[str, Any] | None = None, **changes: Any) -> McpFacts:
    facts: dict[str, Any] = {"read_only": True, "destructive": False, **changes}
    return McpFacts.of_call("reports", "read_report", arguments=arguments, **facts)


def decide(engine: CedarEngine, mcp: McpFacts | None) -> PolicyResult:
    request = f.request(action="read", mcp=mcp)
    return engine.decide(request_policy_request(f.AGENT, f.task(), request, f.NOW))


# ---- flattening -------------------------------------------------------------------


def test_paths_join_keys_and_lists_give_each_item() -> None:
    arguments = {"report": "q3", "options": {"format": "pdf", "pages": [1, 2], "x": {"y": "z"}}}
    assert entries(arguments) == {
        "report=q3",
        "options.format=pdf",
        "options.pages=1",
        "options.pages=2",
        "options.x.y=z",
    }


def test_scalars_read_as_json_writes_them_and_strings_as_they_are() -> None:
    arguments = {"n": 3, "f": 2.5, "t": True, "no": False, "null": None, "s": "a=b.c"}
    assert entries(arguments) == {"n=3", "f=2.5", "t=true", "no=false", "null=null", "s=a=b.c"}
    assert entries({"n": "3"}) == entries({"n": 3}) == {"n=3"}


def test_a_key_can_never_pose_as_a_path_or_a_value() -> None:
    assert entries({"a.b": 1}) == {"a%2Eb=1"}
    assert entries({"a": {"b": 1}}) == {"a.b=1"}
    assert entries({"report=payroll": ""}) == {"report%3Dpayroll="}
    assert entries({"100%": "x"}) == {"100%25=x"}
    for entry in entries({"k.=%": {"": ["v=w"]}}):
        path, _, value = entry.partition("=")
        assert (path, value) == ("k%2E%3D%25.", "v=w")


def test_lists_have_no_index_so_reordering_cannot_dodge_a_rule() -> None:
    one = entries({"to": ["ceo@example.org", "team@example.org"]})
    assert one == entries({"to": ["team@example.org", "ceo@example.org", "ceo@example.org"]})
    assert one == {"to=ceo@example.org", "to=team@example.org"}
    assert entries({"items": [{"id": 1}, {"id": 2}]}) == {"items.id=1", "items.id=2"}


def test_empty_containers_give_nothing() -> None:
    assert flatten_arguments({}) == ((), False)
    assert flatten_arguments({"a": [], "b": {}, "c": [[], {}]}) == ((), False)


def test_an_entry_longer_than_the_bound_is_cut_and_marked() -> None:
    flat, truncated = flatten_arguments({"text": "x" * 1000, "short": "ok"})
    assert not truncated  # nothing was left out: the long value is still there, cut
    long = next(e for e in flat if e.startswith("text="))
    assert len(long) == MAX_ARGUMENT_CHARS
    assert long.endswith(CUT)
    assert "short=ok" in flat


def test_values_nested_too_deep_are_left_out_and_the_rest_kept() -> None:
    deep: Any = "bottom"
    for _ in range(MAX_ARGUMENT_DEPTH):
        deep = {"d": deep}
    flat, truncated = flatten_arguments({"a": deep, "report": "payroll"})
    assert truncated
    assert flat == ("report=payroll",)
    just_fits: Any = "bottom"
    for _ in range(MAX_ARGUMENT_DEPTH - 1):
        just_fits = {"d": just_fits}
    flat, truncated = flatten_arguments({"a": just_fits})
    assert not truncated
    assert flat == ("a" + ".d" * (MAX_ARGUMENT_DEPTH - 1) + "=bottom",)


def test_entries_past_the_bound_are_left_out_and_say_so() -> None:
    fits = {f"k{i:04}": i for i in range(MAX_ARGUMENT_ENTRIES)}
    flat, truncated = flatten_arguments(fits)
    assert (len(flat), truncated) == (MAX_ARGUMENT_ENTRIES, False)
    padded = {**fits, "report": "payroll"}  # "report" sorts after the padding
    flat, truncated = flatten_arguments(padded)
    assert len(flat) == MAX_ARGUMENT_ENTRIES
    assert truncated
    assert "report=payroll" not in flat  # a rule must not trust a truncated set: see below
    repeated, truncated = flatten_arguments({"tags": ["same"] * 10_000})
    assert (repeated, truncated) == (("tags=same",), False)  # duplicates count once


def test_the_order_of_keys_does_not_matter() -> None:
    keys = [f"k{i}" for i in range(MAX_ARGUMENT_ENTRIES + 10)]
    forward = flatten_arguments({k: k for k in keys})
    backward = flatten_arguments({k: k for k in reversed(keys)})
    assert forward == backward


def test_a_number_too_large_to_write_out_is_cut() -> None:
    assert entries({"n": 10**5000}) == {f"n={CUT}"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.builds(str.__mul__, st.sampled_from("a=.%"), st.integers(240, 300)),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_any_arguments_flatten_within_the_bounds(arguments: dict[str, Any]) -> None:
    flat, truncated = flatten_arguments(arguments)
    assert len(flat) <= MAX_ARGUMENT_ENTRIES
    assert len(set(flat)) == len(flat)
    for entry in flat:
        assert 0 < len(entry) <= MAX_ARGUMENT_CHARS
        path, equals, _ = entry.partition("=")
        assert equals or entry.endswith(CUT)  # only a cut path can lose its "="
        assert "%" not in path.replace("%25", "").replace("%2E", "").replace("%3D", "")
    assert flatten_arguments(json.loads(json.dumps(arguments))) == (flat, truncated)


# ---- the context and the schema --------------------------------------------------


def test_a_request_without_mcp_facts_has_no_mcp_record() -> None:
    context = request_context(f.task(), f.request(), f.NOW)
    assert "mcp" not in context["request"]  # type: ignore[operator]


def test_the_mcp_record() -> None:
    facts = call({"report": "q3", "options": {"format": "pdf"}})
    context = request_context(f.task(), f.request(mcp=facts), f.NOW)
    record = context["request"]["mcp"]  # type: ignore[index]
    assert record == {
        "server": "reports",
        "method": "tools/call",
        "tool": "read_report",
        "uri": "",
        "read_only": True,
        "destructive": False,
        "arguments": ["options.format=pdf", "report=q3"],
        "arguments_truncated": False,
    }


def test_the_mcp_record_of_a_resource_read() -> None:
    facts = McpFacts.of_call(
        "docs",
        "",
        read_only=True,
        destructive=False,
        method="resources/read",
        uri="file:///finance/q3.pdf",
    )
    context = request_context(f.task(), f.request(mcp=facts), f.NOW)
    assert context["request"]["mcp"] == {  # type: ignore[index]
        "server": "docs",
        "method": "resources/read",
        "tool": "",
        "uri": "file:///finance/q3.pdf",
        "read_only": True,
        "destructive": False,
        "arguments": [],
        "arguments_truncated": False,
    }


def test_earlier_callers_get_a_tools_call() -> None:
    """``method`` and ``uri`` have defaults: facts built as before are a tools/call."""
    assert (call().method, call().uri) == ("tools/call", "")
    positional = McpFacts("reports", "read_report", True, False)
    assert (positional.method, positional.uri) == ("tools/call", "")


@pytest.mark.parametrize("mcp", [None, call(), call({"report": "q3"}, read_only=False)])
def test_the_default_rules_decide_with_or_without_mcp(
    default_engine: CedarEngine, mcp: McpFacts | None
) -> None:
    """The record is optional in the schema and no default rule reads it."""
    assert decide(default_engine, mcp) == PolicyResult(True, ("task.request",), ())
    denied = f.request(action="delete", mcp=mcp)
    result = default_engine.decide(request_policy_request(f.AGENT, f.task(), denied, f.NOW))
    assert result == PolicyResult(False, ("scope.action",), ())


def test_a_policy_on_the_arguments(policy_dir: Path) -> None:
    (policy_dir / "mcp.cedar").write_text(NO_PAYROLL)
    engine = CedarEngine(policy_dir)  # strict validation passes
    payroll = decide(engine, call({"report": "payroll"}))
    assert payroll == PolicyResult(False, ("mcp.no_payroll",), ())
    assert decide(engine, call({"report": "q3"})).allowed
    assert decide(engine, call({"report": ["q3", "payroll"]})).policy_ids == ("mcp.no_payroll",)
    assert decide(engine, None) == PolicyResult(True, ("task.request",), ())  # not MCP: as before


def test_a_truncated_argument_set_can_be_refused(policy_dir: Path) -> None:
    (policy_dir / "mcp.cedar").write_text(NO_PAYROLL + NOT_WHOLE)
    engine = CedarEngine(policy_dir)
    padded = {**{f"k{i:04}": i for i in range(MAX_ARGUMENT_ENTRIES)}, "report": "payroll"}
    assert decide(engine, call(padded)).policy_ids == ("mcp.arguments_truncated",)
    assert decide(engine, call({"report": "q3", "note": "x" * 5000})).allowed


def test_a_policy_on_the_annotations(policy_dir: Path) -> None:
    (policy_dir / "mcp.cedar").write_text(NO_DESTRUCTIVE)
    engine = CedarEngine(policy_dir)
    assert decide(engine, call(read_only=True)).allowed
    refused = decide(engine, call(read_only=False, destructive=True))
    assert refused.policy_ids == ("mcp.read_only_server",)
    assert decide(engine, None).allowed


def test_reading_mcp_without_has_is_refused_at_load(policy_dir: Path) -> None:
    unguarded = NO_PAYROLL.replace("context.request has mcp && ", "")
    (policy_dir / "mcp.cedar").write_text(unguarded)
    with pytest.raises(PolicyLoadError) as refused:
        CedarEngine(policy_dir)
    assert refused.value.reason == "policy.invalid"
    assert "optional attribute" in refused.value.message


def read(uri: str, method: str = "resources/read") -> McpFacts:
    return McpFacts.of_call("docs", "", read_only=True, destructive=False, method=method, uri=uri)


def test_a_policy_on_the_method_and_uri(policy_dir: Path) -> None:
    (policy_dir / "mcp.cedar").write_text(NO_FINANCE_FILES + NO_COMPLETION)
    engine = CedarEngine(policy_dir)  # strict validation: the schema declares both
    refused = decide(engine, read("file:///finance/q3.pdf"))
    assert refused == PolicyResult(False, ("mcp.no_finance_files",), ())
    subscribed = decide(engine, read("file:///finance/q3.pdf", "resources/subscribe"))
    assert subscribed.policy_ids == ("mcp.no_finance_files",)
    assert decide(engine, read("file:///public/prices.csv")).allowed
    assert decide(engine, read("file://finance/q3.pdf")).allowed  # a host, not the folder
    completing = decide(engine, read("file:///public/{name}", "completion/complete"))
    assert completing.policy_ids == ("mcp.no_completion",)
    prompt = McpFacts.of_call(
        "docs", "summarize", read_only=True, destructive=False, method="prompts/get"
    )
    assert decide(engine, prompt).allowed
    assert decide(engine, call({"report": "q3"})).allowed  # a tools/call: uri ""
    assert decide(engine, None).allowed


def test_reading_method_without_has_is_refused_at_load(policy_dir: Path) -> None:
    unguarded = NO_COMPLETION.replace("context.request has mcp && ", "")
    (policy_dir / "mcp.cedar").write_text(unguarded)
    with pytest.raises(PolicyLoadError) as refused:
        CedarEngine(policy_dir)
    assert refused.value.reason == "policy.invalid"
