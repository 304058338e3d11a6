"""What a decided MCP request is about: the upstream it goes to and the decision's input.

Five requests are each one decision (the others an agent may send are authenticated
only, or answered by the gateway itself):

- ``tools/call``: action ``mcp:<server>/<tool>``, resource ``mcp/<server>/<tool>``;
- ``resources/read``: action ``mcp:<server>/resources/read``, resource
  ``mcp/<server>/resources/<the URI mapped>`` (:func:`~zerolane.gateway.mcp.mapping.resource_name`);
- ``resources/subscribe``: decided as a read of its URI;
- ``prompts/get``: action ``mcp:<server>/prompts/get``, resource
  ``mcp/<server>/prompts/<name>``;
- ``completion/complete``: decided as the read of the prompt or resource it completes.

A request whose name or URI routes to no upstream is still decided, with an empty
resource: the decider denies it ``request.unmapped`` and audits it like any deny. A
request to a route in shadow mode names it (:attr:`Target.shadow`) to its decision.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from zerolane.decision import arguments_digest
from zerolane.errors import InvalidInput
from zerolane.gateway.mcp.mapping import ResourceRoute, resource_route
from zerolane.gateway.mcp.messages import Message, tool_call_of
from zerolane.gateway.mcp.view import View
from zerolane.policy.context import McpFacts
from zerolane.types import Sensitivity

DECIDED = frozenset(
    {"tools/call", "resources/read", "resources/subscribe", "prompts/get", "completion/complete"}
)
MAX_ARGUMENT_BYTES = 8 * 1024  # arguments kept in the audit event; larger ones by size
MAX_NAME_CHARS = 256


@dataclass(frozen=True, slots=True)
class Target:
    """One decided request: where it goes (``server`` None: nowhere), what the decision
    is asked, and the params sent upstream (names back to the upstream's own)."""

    method: str
    server: str | None
    action: str
    resource: str
    destination: str
    sensitivity: Sensitivity | None
    mcp: McpFacts | None
    details: dict[str, object]
    params: dict[str, Any] = field(default_factory=dict)
    #: its route runs in shadow mode, named so (``tool:<server>/<tool>``...); None:
    #: enforced (an unmapped request always is)
    shadow: str | None = None


def audited_arguments(arguments: dict[str, Any]) -> object:
    """The arguments as the audit event keeps them (masked by the log, bounded here)."""
    text = json.dumps(arguments, sort_keys=True, default=str)
    if len(text.encode()) <= MAX_ARGUMENT_BYTES:
        return arguments
    return {"truncated": True, "bytes": len(text.encode())}


def _text(params: dict[str, Any], key: str, method: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise InvalidInput("jsonrpc.params", f"a {method} needs params.{key} (a string)")
    return value


def _object(params: dict[str, Any], key: str, method: str) -> dict[str, Any]:
    value = params.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("jsonrpc.params", f"{method} {key} must be an object")
    return value


#: the params each decided request carries upstream (anything else the agent added is
#: not relayed: a decided request is not a channel for data the decision did not see)
RELAYED_PARAMS = {
    "tools/call": ("name", "arguments"),
    "resources/read": ("uri",),
    "resources/subscribe": ("uri",),
    "prompts/get": ("name", "arguments"),
    "completion/complete": ("ref", "argument", "context"),
}


def relayed(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The params of a decided request as relayed: its method's own, and of ``_meta``
    only the progress token."""
    kept = {key: params[key] for key in RELAYED_PARAMS[method] if key in params}
    meta = params.get("_meta")
    if isinstance(meta, dict) and "progressToken" in meta:
        kept["_meta"] = {"progressToken": meta["progressToken"]}
    return kept


def approval_digest(target: Target) -> str:
    """What a human approval binds a decided request by: the params sent upstream (a
    ``tools/call``'s name and arguments) as canonical JSON, less ``_meta`` (a progress
    token is new on every call and changes nothing the call does)."""
    return arguments_digest({k: v for k, v in target.params.items() if k != "_meta"})


def _unmapped(method: str, name: str, details: dict[str, object]) -> Target:
    return Target(method, None, f"mcp:?/{name[:128]}", "", "", None, None, details)


class _Route(Protocol):
    """What a tool, resource or prompt route gives a decision."""

    @property
    def server(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def sensitivity(self) -> Sensitivity | None: ...
    @property
    def shadow(self) -> str | None: ...


def _routed(
    method: str,
    route: _Route,
    facts: McpFacts | None,
    details: dict[str, object],
    params: dict[str, Any],
) -> Target:
    return Target(
        method,
        route.server,
        route.action,
        route.resource,
        route.destination,
        route.sensitivity,
        facts,
        details,
        params,
        route.shadow,
    )


def target_of(message: Message, view: View) -> Target:
    """The target of a decided request; :class:`InvalidInput` for malformed params."""
    method = message.method
    if method == "tools/call":
        return _tool(message, view)
    if method in ("resources/read", "resources/subscribe"):
        return _resource(method, _text(message.params, "uri", method), message.params, view)
    if method == "prompts/get":
        return _prompt(message, view)
    if method == "completion/complete":
        return _completion(message, view)
    raise InvalidInput("jsonrpc.method", f"{method} is not a decided request")  # pragma: no cover


def _tool(message: Message, view: View) -> Target:
    call = tool_call_of(message)
    details: dict[str, object] = {
        "mcp_method": "tools/call",
        "tool": call.name[:MAX_NAME_CHARS],
        "arguments": audited_arguments(call.arguments),
    }
    route = view.tools.get(call.name)
    if route is None:
        return _unmapped("tools/call", call.name, details)
    details.update(
        server=route.server,
        upstream_tool=route.tool.name,
        read_only=route.read_only,
        destructive=route.destructive,
    )
    params = {**relayed("tools/call", message.params), "name": route.tool.name}
    return _routed("tools/call", route, route.mcp_facts(call.arguments), details, params)


def _resource_route(uri: str, view: View) -> ResourceRoute | None:
    server = view.server_of(uri)
    config = view.servers.get(server) if server is not None else None
    return resource_route(config, uri) if config is not None else None


def _resource(method: str, uri: str, params: dict[str, Any], view: View) -> Target:
    details: dict[str, object] = {"mcp_method": method, "uri": uri[:1024]}
    route = _resource_route(uri, view)
    if route is None:
        return _unmapped(method, uri, details)
    details.update(server=route.server)
    facts = McpFacts.of_call(
        route.server, "", read_only=True, destructive=False, method=method, uri=uri
    )
    return _routed(method, route, facts, details, relayed(method, params))


def _prompt(message: Message, view: View) -> Target:
    name = _text(message.params, "name", "prompts/get")
    arguments = _object(message.params, "arguments", "prompts/get")
    details: dict[str, object] = {
        "mcp_method": "prompts/get",
        "prompt": name[:MAX_NAME_CHARS],
        "arguments": audited_arguments(arguments),
    }
    route = view.prompt(name)
    if route is None:
        return _unmapped("prompts/get", name, details)
    details.update(server=route.server, upstream_prompt=route.prompt.name)
    params = {**relayed("prompts/get", message.params), "name": route.prompt.name}
    return _routed("prompts/get", route, route.mcp_facts(arguments), details, params)


def _completion(message: Message, view: View) -> Target:
    method = "completion/complete"
    ref = _object(message.params, "ref", method)
    argument = _object(message.params, "argument", method)
    kind = ref.get("type")
    details: dict[str, object] = {
        "mcp_method": method,
        "ref": kind if isinstance(kind, str) else "",
    }
    if isinstance(argument.get("name"), str):
        details["argument"] = argument["name"][:MAX_NAME_CHARS]
    if kind == "ref/prompt":
        name = _text(ref, "name", method)
        route = view.prompt(name)
        details["prompt"] = name[:MAX_NAME_CHARS]
        if route is None:
            return _unmapped(method, name, details)
        details.update(server=route.server, upstream_prompt=route.prompt.name)
        facts = McpFacts.of_call(
            route.server, route.prompt.name, read_only=True, destructive=False, method=method
        )
        params = {**relayed(method, message.params), "ref": {**ref, "name": route.prompt.name}}
        return _routed(method, route, facts, details, params)
    if kind == "ref/resource":
        target = _resource(method, _text(ref, "uri", method), message.params, view)
        return dataclasses.replace(target, details={**target.details, **details})
    raise InvalidInput(
        "jsonrpc.params", "completion/complete ref.type is ref/prompt or ref/resource"
    )
