"""What each decided request is decided as, and what goes upstream once allowed."""

from __future__ import annotations

import dataclasses
from typing import Any

import mcp_types as types
import pytest

from tests.gateway.mcp.test_view import SERVERS
from zerolane.decision import arguments_digest
from zerolane.errors import InvalidInput
from zerolane.gateway.mcp.config import ToolConfig
from zerolane.gateway.mcp.messages import Message
from zerolane.gateway.mcp.targets import (
    DECIDED,
    MAX_ARGUMENT_BYTES,
    Target,
    approval_digest,
    audited_arguments,
    target_of,
)
from zerolane.gateway.mcp.view import View
from zerolane.policy.context import McpFacts
from zerolane.types import Sensitivity


def request(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> Message:
    raw: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        raw["params"] = params
    return Message("request", raw)


def listed() -> View:
    """``files`` (unprefixed) and ``web`` (``web_``) with tools, prompts and resources."""
    view = View(SERVERS)
    read = types.Tool(
        name="read",
        input_schema={"type": "object"},
        annotations=types.ToolAnnotations(read_only_hint=True),
    )
    drop = types.Tool(name="drop", input_schema={"type": "object"})
    view.set_tools({"files": [read, drop], "web": [read]})
    view.set_prompts(
        {"files": [types.Prompt(name="summarize")], "web": [types.Prompt(name="brief")]}
    )
    view.set_resources({"files": ["file:///a.txt", "secret://key"], "web": ["https://w/page"]})
    view.set_templates({"web": ["https://w/items/{id}"]})
    return view


def target(method: str, params: dict[str, Any]) -> Target:
    return target_of(request(method, params), listed())


def test_every_decided_method_is_one() -> None:
    assert {
        "tools/call",
        "resources/read",
        "resources/subscribe",
        "prompts/get",
        "completion/complete",
    } == DECIDED


# --- tools/call -------------------------------------------------------------------------


def test_a_tool_call_is_decided_as_its_tool_and_goes_upstream_under_its_own_name() -> None:
    params = {"name": "web_read", "arguments": {"q": "x"}, "_meta": {"progressToken": 5}}
    found = target("tools/call", params)
    assert (found.method, found.server) == ("tools/call", "web")
    assert (found.action, found.resource) == ("mcp:web/read", "mcp/web/read")
    assert (found.destination, found.sensitivity) == ("web.int", Sensitivity.INTERNAL)
    # the upstream's own name; everything else as the agent sent it
    assert found.params == {"name": "read", "arguments": {"q": "x"}, "_meta": {"progressToken": 5}}
    assert found.details == {
        "mcp_method": "tools/call",
        "tool": "web_read",
        "arguments": {"q": "x"},
        "server": "web",
        "upstream_tool": "read",
        "read_only": True,
        "destructive": False,
    }
    assert found.mcp == McpFacts.of_call(
        "web", "read", read_only=True, destructive=False, arguments={"q": "x"}
    )


def test_an_approval_binds_the_call_not_its_progress_token() -> None:
    """A client sends a new progress token with each call: the approved call is the
    same call; other arguments or another tool are not."""
    call = {"name": "web_read", "arguments": {"q": "x"}}
    digest = approval_digest(target("tools/call", call))
    assert digest == arguments_digest({"name": "read", "arguments": {"q": "x"}})
    for token in (5, "other"):
        with_progress = {**call, "_meta": {"progressToken": token}}
        assert approval_digest(target("tools/call", with_progress)) == digest
    assert approval_digest(target("tools/call", {**call, "arguments": {"q": "y"}})) != digest
    assert approval_digest(target("tools/call", {**call, "name": "drop"})) != digest
    # the server is bound by the approval's action and resource, not by this digest
    other_server = target("tools/call", {**call, "name": "read"})
    assert (other_server.action, approval_digest(other_server)) == ("mcp:files/read", digest)


def test_a_destructive_tool_is_decided_at_its_sensitivity() -> None:
    found = target("tools/call", {"name": "drop"})
    assert (found.server, found.params) == ("files", {"name": "drop"})
    assert found.sensitivity == Sensitivity.CONFIDENTIAL
    assert found.details["destructive"] is True
    assert found.mcp is not None
    assert found.mcp.destructive


def test_a_tool_no_server_exposes_is_decided_unmapped_and_goes_nowhere() -> None:
    found = target("tools/call", {"name": "read_web", "arguments": {"a": 1}})
    assert found.server is None
    assert (found.action, found.resource, found.destination) == ("mcp:?/read_web", "", "")
    assert (found.sensitivity, found.mcp, found.params) == (None, None, {})
    assert found.details == {"mcp_method": "tools/call", "tool": "read_web", "arguments": {"a": 1}}
    long = target("tools/call", {"name": "x" * 1000})
    assert long.action == "mcp:?/" + "x" * 128
    assert long.details["tool"] == "x" * 256


# --- resources --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["resources/read", "resources/subscribe"])
def test_a_resource_is_decided_as_a_read_of_its_uri(method: str) -> None:
    found = target(method, {"uri": "file:///a.txt"})
    assert (found.method, found.server) == (method, "files")
    assert found.action == "mcp:files/resources/read"
    assert found.resource == "mcp/files/resources/file/-/a.txt"
    assert (found.destination, found.sensitivity) == ("files.int", Sensitivity.INTERNAL)
    assert found.params == {"uri": "file:///a.txt"}
    assert found.details == {"mcp_method": method, "uri": "file:///a.txt", "server": "files"}
    assert found.mcp == McpFacts.of_call(
        "files", "", read_only=True, destructive=False, method=method, uri="file:///a.txt"
    )


def test_a_resource_is_decided_at_its_rules_sensitivity() -> None:
    assert target("resources/read", {"uri": "secret://key"}).sensitivity == (
        Sensitivity.CONFIDENTIAL
    )


def test_a_resource_matched_by_a_template_goes_to_its_server() -> None:
    found = target("resources/read", {"uri": "https://w/items/7"})
    assert found.server == "web"
    assert found.resource == "mcp/web/resources/https/w/items/7"


@pytest.mark.parametrize(
    "uri",
    [
        "nobody://serves/this",  # no server lists it, no template, two offer resources
        "file:///../etc/passwd",  # routed, but not a safe resource name
        "file:///a%2Fb",
    ],
)
def test_a_uri_that_routes_nowhere_is_decided_unmapped(uri: str) -> None:
    view = listed()
    view.resource_servers = ("files", "web")
    view.set_templates({"files": ["file:///{path}"]})
    found = target_of(request("resources/read", {"uri": uri}), view)
    assert found.server is None
    assert (found.action, found.resource) == (f"mcp:?/{uri[:128]}", "")
    assert found.details == {"mcp_method": "resources/read", "uri": uri}


# --- prompts ----------------------------------------------------------------------------


def test_a_prompt_is_decided_as_its_prompt_and_goes_upstream_under_its_own_name() -> None:
    found = target("prompts/get", {"name": "web_brief", "arguments": {"topic": "q3"}})
    assert (found.server, found.action, found.resource) == (
        "web",
        "mcp:web/prompts/get",
        "mcp/web/prompts/brief",
    )
    assert found.params == {"name": "brief", "arguments": {"topic": "q3"}}
    assert found.details == {
        "mcp_method": "prompts/get",
        "prompt": "web_brief",
        "arguments": {"topic": "q3"},
        "server": "web",
        "upstream_prompt": "brief",
    }
    assert found.mcp is not None
    assert (found.mcp.method, found.mcp.tool, found.mcp.arguments) == (
        "prompts/get",
        "brief",
        ("topic=q3",),
    )


def test_an_unknown_prompt_is_decided_unmapped() -> None:
    found = target("prompts/get", {"name": "brief"})  # web's is web_brief
    assert (found.server, found.action, found.resource) == (None, "mcp:?/brief", "")


# --- completion -------------------------------------------------------------------------


def test_a_prompt_completion_is_decided_as_getting_the_prompt() -> None:
    params = {
        "ref": {"type": "ref/prompt", "name": "web_brief"},
        "argument": {"name": "topic", "value": "q"},
    }
    found = target("completion/complete", params)
    assert (found.method, found.server, found.action, found.resource) == (
        "completion/complete",
        "web",
        "mcp:web/prompts/get",
        "mcp/web/prompts/brief",
    )
    assert found.params == {**params, "ref": {"type": "ref/prompt", "name": "brief"}}
    assert found.details == {
        "mcp_method": "completion/complete",
        "ref": "ref/prompt",
        "argument": "topic",
        "prompt": "web_brief",
        "server": "web",
        "upstream_prompt": "brief",
    }
    assert found.mcp is not None
    assert (found.mcp.method, found.mcp.tool) == ("completion/complete", "brief")


def test_a_resource_completion_is_decided_as_reading_the_resource() -> None:
    params = {
        "ref": {"type": "ref/resource", "uri": "https://w/items/{id}"},
        "argument": {"name": "id", "value": "1"},
    }
    found = target("completion/complete", params)
    assert (found.method, found.server, found.action) == (
        "completion/complete",
        "web",
        "mcp:web/resources/read",
    )
    assert found.resource == "mcp/web/resources/https/w/items/{id}"
    assert found.params == params  # a URI has no exposed name: sent as it came
    assert found.details == {
        "mcp_method": "completion/complete",
        "uri": "https://w/items/{id}",
        "server": "web",
        "ref": "ref/resource",
        "argument": "id",
    }
    assert found.mcp is not None
    assert (found.mcp.method, found.mcp.uri) == ("completion/complete", "https://w/items/{id}")


def test_a_completion_of_nothing_known_is_decided_unmapped() -> None:
    prompt = target("completion/complete", {"ref": {"type": "ref/prompt", "name": "nope"}})
    assert (prompt.server, prompt.action, prompt.resource) == (None, "mcp:?/nope", "")
    assert prompt.details == {
        "mcp_method": "completion/complete",
        "ref": "ref/prompt",
        "prompt": "nope",
    }
    resource = target("completion/complete", {"ref": {"type": "ref/resource", "uri": "z://q"}})
    assert (resource.server, resource.resource) == (None, "")


# --- malformed params -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {}),
        ("tools/call", {"name": 1}),
        ("tools/call", {"name": "read", "arguments": [1]}),
        ("resources/read", {}),
        ("resources/read", {"uri": 7}),
        ("resources/subscribe", {"uri": None}),
        ("prompts/get", {}),
        ("prompts/get", {"name": ["summarize"]}),
        ("prompts/get", {"name": "summarize", "arguments": "a=1"}),
        ("completion/complete", {}),
        ("completion/complete", {"ref": "ref/prompt"}),
        ("completion/complete", {"ref": {"type": "ref/tool", "name": "read"}}),
        ("completion/complete", {"ref": {"type": "ref/prompt"}}),
        ("completion/complete", {"ref": {"type": "ref/prompt", "name": 3}}),
        ("completion/complete", {"ref": {"type": "ref/resource"}}),
        ("completion/complete", {"ref": {"type": "ref/prompt", "name": "x"}, "argument": []}),
    ],
)
def test_malformed_params_are_refused(method: str, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        target(method, params)
    assert caught.value.reason == "jsonrpc.params"


# --- audited arguments ------------------------------------------------------------------


def test_arguments_are_audited_whole_or_by_size() -> None:
    small = {"a": 1}
    assert audited_arguments(small) == small
    at_limit = {"a": "x" * (MAX_ARGUMENT_BYTES - len('{"a": ""}'))}
    assert audited_arguments(at_limit) == at_limit
    over = {"a": "x" * (MAX_ARGUMENT_BYTES - len('{"a": ""}') + 1)}
    assert audited_arguments(over) == {"truncated": True, "bytes": MAX_ARGUMENT_BYTES + 1}
    # counted as the JSON text is written (non-ASCII escaped, six bytes a character)
    assert audited_arguments({"a": "é" * 5000}) == {"truncated": True, "bytes": 30_009}


def test_a_target_in_shadow_mode_names_its_route_to_the_decision() -> None:
    """A server's mode covers its tools, prompts and resources (completions too); a
    tool's own mode wins; an unmapped request is always enforced."""
    files = dataclasses.replace(
        SERVERS[0], mode="shadow", tools={"read": ToolConfig(mode="enforce")}
    )
    view = View((files, SERVERS[1]))
    read = types.Tool(name="read", input_schema={"type": "object"})
    drop = types.Tool(name="drop", input_schema={"type": "object"})
    view.set_tools({"files": [read, drop], "web": [read]})
    view.set_resources({"files": ["file:///a.txt"], "web": ["https://w/page"]})

    def shadow(method: str, params: dict[str, Any]) -> str | None:
        return target_of(request(method, params), view).shadow

    assert shadow("tools/call", {"name": "drop"}) == "tool:files/drop"
    assert shadow("tools/call", {"name": "read"}) is None  # its own mode: enforce
    assert shadow("tools/call", {"name": "web_read"}) is None  # another server's
    assert shadow("tools/call", {"name": "nothing"}) is None  # unmapped
    assert shadow("resources/read", {"uri": "file:///a.txt"}) == "resources:files"
    assert shadow("resources/read", {"uri": "https://w/page"}) is None
    assert shadow("prompts/get", {"name": "summarize"}) == "prompt:files/summarize"
    assert shadow("prompts/get", {"name": "web_brief"}) is None
    completion = {"ref": {"type": "ref/prompt", "name": "summarize"}, "argument": {}}
    assert shadow("completion/complete", completion) == "prompt:files/summarize"
    of_resource = {"ref": {"type": "ref/resource", "uri": "file:///a.txt"}, "argument": {}}
    assert shadow("completion/complete", of_resource) == "resources:files"
