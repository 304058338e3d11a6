"""One agent session's view of its upstreams: names routed to one server or to none."""

from __future__ import annotations

from collections.abc import Mapping

import mcp_types as types
import pytest

from zerolane.gateway.mcp import parse_gateway_config
from zerolane.gateway.mcp.catalog import build_routes
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.mapping import ToolRoute
from zerolane.gateway.mcp.view import (
    MAX_TEMPLATE_CHARS,
    View,
    build_prompts,
    template_of,
    uris_of,
)

#: two servers: ``files`` unprefixed, ``web`` exposing its names as ``web_<name>``
SERVERS: tuple[UpstreamConfig, ...] = parse_gateway_config(
    {
        "public_url": "https://mcp.example",
        "authorization_servers": ["https://zerolane.example"],
        "servers": [
            {
                "name": "files",
                "command": "python",
                "args": ["files.py"],
                "destination": "files.int",
                "resources": [{"uri": "secret://*", "sensitivity": "confidential"}],
                "prompts": {"summarize": {"sensitivity": "public"}},
            },
            {
                "name": "web",
                "url": "http://127.0.0.1:9/mcp",
                "destination": "web.int",
                "prefix": "web_",
            },
        ],
    }
).servers
FILES, WEB = SERVERS


def tool(name: str) -> types.Tool:
    return types.Tool(name=name, input_schema={"type": "object"})


def prompt(name: str) -> types.Prompt:
    return types.Prompt(name=name)


def view(catalog: Mapping[str, ToolRoute] | None = None) -> View:
    return View(SERVERS, (lambda: catalog) if catalog is not None else dict)


# --- tools and prompts ------------------------------------------------------------------


def test_tools_are_routed_by_their_exposed_names() -> None:
    seen = view()
    routes = seen.set_tools({"files": [tool("read")], "web": [tool("read")]})
    assert routes == dict(seen.tools)
    assert {name: (r.server, r.tool.name) for name, r in seen.tools.items()} == {
        "read": ("files", "read"),
        "web_read": ("web", "read"),
    }


def test_a_tool_name_two_servers_expose_is_routed_to_neither() -> None:
    """``web_x`` of files and ``x`` of web (prefixed ``web_``) are both ``web_x``."""
    seen = view()
    seen.set_tools({"files": [tool("web_x"), tool("keep")], "web": [tool("x"), tool("y")]})
    assert set(seen.tools) == {"keep", "web_y"}
    # a third claimant does not bring the name back
    three = build_routes([(FILES, [tool("web_x")]), (WEB, [tool("x")]), (FILES, [tool("web_x")])])
    assert "web_x" not in three


def test_a_tool_name_that_cannot_be_a_resource_segment_is_hidden() -> None:
    seen = view()
    seen.set_tools({"files": [tool("a/b"), tool("ok")]})
    assert set(seen.tools) == {"ok"}


def test_the_catalog_stands_in_until_the_session_lists_tools() -> None:
    catalog = build_routes([(FILES, [tool("from_catalog")])])
    seen = view(catalog)
    assert set(seen.tools) == {"from_catalog"}
    seen.set_tools({"files": [tool("own")]})
    assert set(seen.tools) == {"own"}
    seen.set_tools({})  # the session's own listing, even empty, wins from then on
    assert dict(seen.tools) == {}


def test_prompts_are_routed_by_exposed_name_and_collisions_hidden() -> None:
    seen = view()
    routes = seen.set_prompts(
        {
            "files": [prompt("summarize"), prompt("web_brief"), prompt("bad/name")],
            "web": [prompt("summarize"), prompt("brief")],
        }
    )
    assert routes is seen.prompts
    assert {name: (r.server, r.prompt.name) for name, r in seen.prompts.items()} == {
        "summarize": ("files", "summarize"),
        "web_summarize": ("web", "summarize"),
    }
    assert seen.prompts["summarize"].sensitivity.label == "public"  # its per-prompt setting
    clash = build_prompts(
        [(FILES, [prompt("web_a")]), (WEB, [prompt("a")]), (FILES, [prompt("web_a")])]
    )
    assert clash == {}


# --- resource URIs ----------------------------------------------------------------------


def test_a_listed_uri_goes_to_the_server_that_listed_it() -> None:
    seen = view()
    seen.set_resources({"files": ["file:///a", "shared://x"], "web": ["https://w/b", "shared://x"]})
    assert seen.server_of("file:///a") == "files"
    assert seen.server_of("https://w/b") == "web"
    assert seen.lists("file:///a", "files")
    assert not seen.lists("file:///a", "web")


def test_a_uri_two_servers_list_goes_to_neither() -> None:
    seen = view()
    seen.set_resources({"files": ["shared://x"], "web": ["shared://x"]})
    seen.resource_servers = ("files",)  # not even to the only server said to offer resources
    assert seen.server_of("shared://x") is None
    assert not seen.lists("shared://x", "files")
    assert not seen.lists("shared://x", "web")


def test_the_same_server_listing_a_uri_twice_keeps_it() -> None:
    seen = view()
    seen.set_resources({"files": ["file:///a", "file:///a"]})
    assert seen.server_of("file:///a") == "files"


def test_a_uri_matching_one_servers_template_goes_to_it() -> None:
    seen = view()
    seen.set_templates({"files": ["file:///{dir}/{name}"], "web": ["https://w/{+rest}"]})
    assert seen.server_of("file:///docs/a.txt") == "files"
    assert seen.server_of("https://w/x/y") == "web"
    assert seen.server_of("file:///") is None  # an expression matches something
    assert seen.server_of("ftp://elsewhere") is None


def test_a_uri_matching_two_servers_templates_goes_to_neither() -> None:
    seen = view()
    seen.set_templates({"files": ["any://{x}"], "web": ["any://{y}"]})
    seen.resource_servers = ("files",)
    assert seen.server_of("any://thing") is None


def test_a_listed_uri_is_routed_before_templates() -> None:
    seen = view()
    seen.set_resources({"web": ["file:///pinned"]})
    seen.set_templates({"files": ["file:///{path}"]})
    assert seen.server_of("file:///pinned") == "web"
    assert seen.server_of("file:///other") == "files"


def test_an_unknown_uri_goes_to_the_only_server_offering_resources() -> None:
    seen = view()
    assert seen.server_of("file:///x") is None  # no server said it offers resources
    seen.resource_servers = ("files",)
    assert seen.server_of("file:///x") == "files"
    seen.resource_servers = ("files", "web")
    assert seen.server_of("file:///x") is None


def test_listing_again_replaces_what_was_listed() -> None:
    seen = view()
    seen.set_resources({"files": ["file:///a"]})
    seen.set_resources({"web": ["file:///a"]})
    assert seen.server_of("file:///a") == "web"
    seen.set_templates({"files": ["t://{x}"]})
    seen.set_templates({})
    assert seen.server_of("t://y") is None


@pytest.mark.parametrize(
    ("template", "uri", "matches"),
    [
        ("file:///{path}", "file:///a", True),
        ("file:///{path}", "file:///a/b/c", False),  # a simple expression is one segment
        ("file:///{+path}", "file:///a/b/c", True),  # a reserved one may span segments
        ("file:///{/path}", "file:///a/b", True),
        ("file:///{path}", "file:///", False),
        ("db://{table}/rows/{id}.json", "db://users/rows/7.json", True),
        ("db://{table}/rows/{id}.json", "db://users/rows/7.xml", False),
        ("x://{a}{b}", "x://ab", True),  # adjacent expressions match as one
        ("db://{table}/rows/{id}", "db://users/rows/7", True),
        ("db://{table}/rows/{id}", "db://users/cols/7", False),
        ("a.b://{x}", "aXb://y", False),  # literal text is literal, dots included
        ("x://{?query*}", "x://?a=1", True),  # any operator is one expression
        ("x://plain", "x://plain", True),
        ("x://plain", "x://plainer", False),  # the whole URI must match
        ("x://{a}", "x://line\nbreak", True),
    ],
)
def test_a_template_matches_what_it_expands_to(template: str, uri: str, matches: bool) -> None:
    matcher = template_of(template)
    assert matcher is not None
    assert matcher.fullmatch(uri) is matches


@pytest.mark.parametrize(
    "template",
    [
        "x://{+a}/{b}",  # a segment-spanning expression must be the only one
        "x://{+a}{+b}",
        "x://{a}q{b}q{c}",  # three expressions in one segment
        "x://a}b{c}",  # a stray brace
    ],
)
def test_templates_that_could_match_slowly_route_nothing(template: str) -> None:
    assert template_of(template) is None


def test_an_agents_uri_is_matched_in_bounded_time() -> None:
    """The templates an agent can have listed (its own upstream's) never make matching
    its URI slow: no backtracking across segments, at most two expressions in one."""
    worst = template_of("x://{a}q{b}/{c}q{d}/{e}q{f}/end")
    assert worst is not None
    uri = "x://" + "/".join(["q" * 300] * 3) + "/nope"
    assert worst.fullmatch(uri) is False  # about 1 ms here; one regex over it took 10 s
    assert worst.fullmatch("x://" + "q" * 2000) is False  # over the URI bound


def test_a_template_too_long_is_not_used() -> None:
    long = "x://" + "a" * MAX_TEMPLATE_CHARS + "{b}"
    assert template_of(long) is None
    seen = view()
    seen.set_templates({"files": [long]})
    assert seen.server_of("x://" + "a" * MAX_TEMPLATE_CHARS + "c") is None


def test_uris_of_a_listing_skip_what_is_not_one() -> None:
    result = {"resources": [{"uri": "a://1"}, {"uri": 3}, "a://2", {"name": "n"}, {"uri": "b://"}]}
    assert uris_of(result, "resources", "uri") == ["a://1", "b://"]
    assert uris_of({"resources": "no"}, "resources", "uri") == []
    assert uris_of({}, "resources", "uri") == []
