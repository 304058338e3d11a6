"""Tools, resources and prompts onto decisions: names, sensitivity from config and
annotations, collisions, URIs that cannot map safely."""

from __future__ import annotations

import pytest
from mcp_types import Prompt, PromptArgument, Tool, ToolAnnotations

from zerolane.gateway.mcp.catalog import build_routes
from zerolane.gateway.mcp.config import ResourceRule, ToolConfig, UpstreamConfig
from zerolane.gateway.mcp.mapping import (
    prompt_route,
    resource_name,
    resource_route,
    route_for,
    tool_sensitivity,
)
from zerolane.policy.context import McpFacts
from zerolane.policy.patterns import matches_any, parse_value
from zerolane.types import Sensitivity

SERVER = UpstreamConfig(name="reports", destination="reports.internal", command="python")
READ_ONLY = ToolAnnotations(readOnlyHint=True)
ADDITIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=False)
DESTRUCTIVE = ToolAnnotations(destructiveHint=True)


def tool(name: str, annotations: ToolAnnotations | None = None) -> Tool:
    return Tool(name=name, input_schema={"type": "object"}, annotations=annotations)


def test_a_route_names_action_resource_and_destination() -> None:
    route = route_for(SERVER, tool("read_report", READ_ONLY))
    assert route is not None
    assert route.action == "mcp:reports/read_report"
    assert route.resource == "mcp/reports/read_report"
    assert route.destination == "reports.internal"
    assert (route.read_only, route.destructive) == (True, False)
    assert route.listed().name == "read_report"
    prefixed = route_for(
        UpstreamConfig(name="web", destination="w", url="http://w/mcp", prefix="web_"),
        tool("read_report", READ_ONLY),
    )
    assert prefixed is not None
    assert (prefixed.exposed, prefixed.listed().name) == ("web_read_report", "web_read_report")
    assert prefixed.action == "mcp:web/read_report"


@pytest.mark.parametrize("name", ["a/b", "", "with space", "x" * 129, "*", "ümlaut"])
def test_names_that_cannot_be_one_resource_segment_are_not_routed(name: str) -> None:
    assert route_for(SERVER, tool(name)) is None


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (READ_ONLY, Sensitivity.INTERNAL),
        (ADDITIVE, Sensitivity.INTERNAL),
        (DESTRUCTIVE, Sensitivity.CONFIDENTIAL),
        (ToolAnnotations(), Sensitivity.CONFIDENTIAL),  # MCP defaults: may be destructive
        (None, Sensitivity.CONFIDENTIAL),
        (ToolAnnotations(readOnlyHint=True, destructiveHint=True), Sensitivity.INTERNAL),
    ],
)
def test_annotations_inform_the_default(
    annotations: ToolAnnotations | None, expected: Sensitivity
) -> None:
    assert tool_sensitivity(SERVER, tool("t", annotations)) is expected


def test_annotations_never_lower_below_the_server_default() -> None:
    server = UpstreamConfig(
        name="hr",
        destination="hr",
        command="x",
        default_sensitivity=Sensitivity.RESTRICTED,
        destructive_sensitivity=Sensitivity.RESTRICTED,
    )
    assert tool_sensitivity(server, tool("t", READ_ONLY)) is Sensitivity.RESTRICTED


def test_a_configured_sensitivity_wins() -> None:
    server = UpstreamConfig(
        name="s",
        destination="d",
        command="x",
        tools={
            "wipe": ToolConfig(Sensitivity.PUBLIC),
            "read": ToolConfig(Sensitivity.RESTRICTED),
            "other": ToolConfig(None),
        },
    )
    assert tool_sensitivity(server, tool("wipe", DESTRUCTIVE)) is Sensitivity.PUBLIC
    assert tool_sensitivity(server, tool("read", READ_ONLY)) is Sensitivity.RESTRICTED
    assert tool_sensitivity(server, tool("other", READ_ONLY)) is Sensitivity.INTERNAL


def test_a_name_two_servers_expose_is_routed_to_neither() -> None:
    other = UpstreamConfig(name="copy", destination="copy", command="x", prefix="r")
    clashing = UpstreamConfig(name="third", destination="t", command="x")
    routes = build_routes(
        [
            (SERVER, [tool("read_report"), tool("rtool"), tool("bad/name")]),
            (other, [tool("tool"), tool("list")]),
            (clashing, [tool("read_report")]),
        ]
    )
    assert sorted(routes) == ["rlist"]


# ---- resources --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("file:///a/b", "file/-/a/b"),
        ("file://a/b", "file/a/b"),  # host "a": not the local file /a/b
        ("file:///a", "file/-/a"),
        ("file://a", "file/a"),
        ("test://static-text", "test/static-text"),
        ("test://static/resource/1", "test/static/resource/1"),
        (
            "https://docs.example.org:8443/guide/intro.md",
            "https/docs.example.org:8443/guide/intro.md",
        ),
        ("https://Docs.Example.ORG/a", "https/docs.example.org/a"),  # hosts are case-insensitive
        ("file://localhost/a/b", "file/-/a/b"),  # RFC 8089: the same file as file:///a/b
        ("FILE://LOCALHOST/a", "file/-/a"),
        ("urn:x:y", "urn:/x:y"),
        ("mailto:team@example.org", "mailto:/team@example.org"),
        ("note:a/b", "note:/a/b"),
        ("FILE:///Finance/Q3", "file/-/Finance/Q3"),  # the path keeps its case
        ("git+ssh://host/repo.git", "git+ssh/host/repo.git"),
        ("file:///{path}", "file/-/{path}"),  # a template: braces are literal
        ("test://static/resource/{id}", "test/static/resource/{id}"),
        ("file:///a/.hidden/..x", "file/-/a/.hidden/..x"),  # only whole '.'/'..' segments
    ],
)
def test_uris_map_onto_resource_segments(uri: str, name: str) -> None:
    assert resource_name(uri) == name
    parse_value(f"mcp/s/resources/{name}")  # a well-formed concrete resource


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "no-scheme",
        "/a/b",
        "1file:///a",  # a scheme starts with a letter
        "file:///a%2Fb",  # percent-encoding: the upstream may decode it to a '/'
        "file:///%2e%2e/etc/passwd",
        "file:///a/../etc/passwd",
        "file:///a/./b",
        "file:///..",
        "file://../a",
        "urn:..",
        "urn:a/../b",
        "file:///a/*",
        "file:///*",
        "file:///a b",
        "file:///a\tb",
        "file:///a\nb",
        "file:///report\u00e9",
        "file:///r\u0435port",  # a Cyrillic 'e'
        "file:///a\x7f",
        "file:///a\\..\\b",  # a backslash the upstream may take for a separator
        "file:///a?x=1",
        "https://user@docs.example.org/a",  # user info: another spelling of the host
        "https://u:p@h/a",
        "file:///a#top",
        "https://h/p?",
        "file:///a/",  # a trailing '/': an empty segment
        "file:///a//b",
        "file:///",
        "file://",
        "file:/a",  # no authority, an absolute path: an empty segment
        "urn:/a",
        "urn:a/",
        "file://-/a",  # would read as the empty authority of file:///a
        "file:///" + "a" * 1020,
        "file:///{?query}",  # a template with a query
    ],
)
def test_uris_that_cannot_map_safely_are_refused(uri: str) -> None:
    assert resource_name(uri) is None
    assert resource_route(SERVER, uri) is None


def test_distinct_uris_never_share_a_name() -> None:
    uris = ["file:///a/b", "file://a/b", "file:/a/b", "file:a/b", "file://-/a/b", "file:///a/b/"]
    names = [name for name in map(resource_name, uris) if name is not None]
    assert len(names) == len(set(names)) == 3  # file/-/a/b, file/a/b, file:/a/b


def test_a_local_file_and_a_host_of_that_name_are_told_apart_by_patterns() -> None:
    local = resource_route(SERVER, "file:///a/b")
    remote = resource_route(SERVER, "file://a/b")
    assert local is not None
    assert remote is not None
    assert matches_any(("mcp/reports/resources/file/-/**",), local.resource)
    assert not matches_any(("mcp/reports/resources/file/-/**",), remote.resource)
    assert matches_any(("mcp/reports/resources/file/a/*",), remote.resource)
    assert not matches_any(("mcp/reports/resources/file/a/*",), local.resource)


def test_a_resource_route() -> None:
    route = resource_route(SERVER, "file:///finance/q3.pdf")
    assert route is not None
    assert route.action == "mcp:reports/resources/read"
    assert route.resource == "mcp/reports/resources/file/-/finance/q3.pdf"
    assert (route.server, route.uri, route.name) == (
        "reports",
        "file:///finance/q3.pdf",
        "file/-/finance/q3.pdf",
    )
    assert route.destination == "reports.internal"
    assert route.sensitivity is Sensitivity.INTERNAL
    assert route.mcp_facts() == McpFacts(
        "reports", "", True, False, (), False, "resources/read", "file:///finance/q3.pdf"
    )
    subscribe = route.mcp_facts(method="resources/subscribe")
    assert (subscribe.method, subscribe.uri) == ("resources/subscribe", route.uri)


def test_the_first_matching_rule_sets_a_resource_sensitivity() -> None:
    server = UpstreamConfig(
        name="docs",
        destination="docs",
        command="x",
        default_sensitivity=Sensitivity.PUBLIC,
        resources=(
            ResourceRule("file:///finance/public/*", Sensitivity.INTERNAL),
            ResourceRule("file:///finance/*", Sensitivity.CONFIDENTIAL),
            ResourceRule("file:///*", Sensitivity.RESTRICTED),
        ),
    )

    def level(uri: str) -> Sensitivity:
        route = resource_route(server, uri)
        assert route is not None
        return route.sensitivity

    assert level("file:///finance/public/prices.csv") is Sensitivity.INTERNAL
    assert level("file:///finance/q3/raw.csv") is Sensitivity.CONFIDENTIAL  # '*' crosses '/'
    assert level("file:///home/notes") is Sensitivity.RESTRICTED
    assert level("test://static") is Sensitivity.PUBLIC  # no rule: the server's default
    assert level("file://finance/q3") is Sensitivity.PUBLIC  # a host, not a local path
    # the scheme is case-insensitive: an upper-case one cannot dodge a rule
    assert level("FILE:///finance/q3") is Sensitivity.CONFIDENTIAL
    # the rest is compared as it is (matching is case-sensitive)
    assert level("file:///Finance/q3") is Sensitivity.RESTRICTED
    # another spelling of the same file cannot dodge a rule either
    assert level("file://localhost/finance/q3") is Sensitivity.CONFIDENTIAL
    assert level("FILE://LOCALHOST/finance/q3") is Sensitivity.CONFIDENTIAL


# ---- prompts ----------------------------------------------------------------------


def prompt(name: str) -> Prompt:
    return Prompt(name=name, arguments=[PromptArgument(name="topic", required=True)])


def test_a_prompt_route() -> None:
    server = UpstreamConfig(
        name="web",
        destination="w",
        url="http://w/mcp",
        prefix="web_",
        default_sensitivity=Sensitivity.PUBLIC,
        prompts={"summarize": ToolConfig(Sensitivity.CONFIDENTIAL), "plain": ToolConfig(None)},
    )
    route = prompt_route(server, prompt("summarize"))
    assert route is not None
    assert route.action == "mcp:web/prompts/get"
    assert route.resource == "mcp/web/prompts/summarize"
    assert (route.exposed, route.destination) == ("web_summarize", "w")
    assert route.sensitivity is Sensitivity.CONFIDENTIAL
    listed = route.listed()
    assert listed.name == "web_summarize"
    assert listed.arguments == route.prompt.arguments
    assert route.prompt.name == "summarize"  # the upstream's prompt is left as it was
    assert route.mcp_facts({"topic": "q3"}) == McpFacts(
        "web", "summarize", True, False, ("topic=q3",), False, "prompts/get", ""
    )
    assert route.mcp_facts(method="completion/complete").method == "completion/complete"
    for name in ("plain", "other"):
        other = prompt_route(server, prompt(name))
        assert other is not None
        assert other.sensitivity is Sensitivity.PUBLIC


@pytest.mark.parametrize("name", ["a/b", "", "with space", "x" * 129, "*", "ümlaut"])
def test_prompt_names_that_cannot_be_one_resource_segment_are_not_routed(name: str) -> None:
    assert prompt_route(SERVER, prompt(name)) is None


def shadows(server: UpstreamConfig) -> tuple[str | None, str | None, str | None, str | None]:
    """The shadow names of tools ``read_report`` and ``delete_report``, prompt
    ``summary`` and resource ``file:///a/b`` of ``server``."""
    read, delete = route_for(server, tool("read_report")), route_for(server, tool("delete_report"))
    summary, resource = (
        prompt_route(server, Prompt(name="summary")),
        resource_route(server, "file:///a/b"),
    )
    assert read is not None
    assert delete is not None
    assert summary is not None
    assert resource is not None
    return read.shadow, delete.shadow, summary.shadow, resource.shadow


def test_shadow_mode_names_the_route_by_the_tool_prompt_or_server_resources() -> None:
    assert shadows(SERVER) == (None, None, None, None)  # enforced by default
    whole = UpstreamConfig(
        name="reports",
        destination="reports.internal",
        command="python",
        mode="shadow",  # the server's mode: each of its routes, unless its own says otherwise
        tools={"read_report": ToolConfig(mode="enforce"), "delete_report": ToolConfig()},
        prompts={"summary": ToolConfig(sensitivity=Sensitivity.PUBLIC)},
    )
    assert shadows(whole) == (
        None,
        "tool:reports/delete_report",
        "prompt:reports/summary",
        "resources:reports",
    )
    one = UpstreamConfig(
        name="reports",
        destination="reports.internal",
        command="python",
        tools={"delete_report": ToolConfig(mode="shadow")},
        prompts={"summary": ToolConfig(mode="shadow")},
    )
    assert shadows(one) == (None, "tool:reports/delete_report", "prompt:reports/summary", None)
