"""Tools onto decisions: names, sensitivity from config and annotations, collisions."""

from __future__ import annotations

import pytest
from mcp_types import Tool, ToolAnnotations

from zerolane.gateway.mcp.catalog import build_routes
from zerolane.gateway.mcp.config import ToolConfig, UpstreamConfig
from zerolane.gateway.mcp.mapping import route_for, tool_sensitivity
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
