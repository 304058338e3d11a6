"""What one agent session sees of its upstreams: tools, prompts and resources by name.

Each agent session lists through its own upstream sessions, so its view is built from
its own listings: tools and prompts under the names the gateway exposes them by (the
server's prefix and the upstream name), resources by URI with the server that listed
them, and the servers' URI templates. A name two servers would both expose is routed
to neither, and a URI two servers claim is routed to neither (fail closed): a request
must never reach a server other than the one its decision was made for. Until the
session lists tools, the gateway's catalog (the last listing of each server) stands in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import mcp_types as types

from zerolane.gateway.mcp.catalog import build_routes
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.mapping import PromptRoute, ToolRoute, prompt_route

log = logging.getLogger(__name__)

#: an RFC 6570 expression in a URI template (any operator): matched as one or more chars
_EXPRESSION = re.compile(r"\{[^{}]*\}")
MAX_TEMPLATE_CHARS = 1024


def template_pattern(template: str) -> re.Pattern[str] | None:
    """A regular expression matching the URIs ``template`` expands to (an expression
    matches any non-empty text); None for a template too long to use."""
    if len(template) > MAX_TEMPLATE_CHARS:
        return None
    parts = _EXPRESSION.split(template)
    return re.compile(".+".join(re.escape(part) for part in parts), re.DOTALL)


def build_prompts(
    listings: Sequence[tuple[UpstreamConfig, Sequence[types.Prompt]]],
) -> dict[str, PromptRoute]:
    """Prompt routes by exposed name; unmappable and colliding names are dropped."""
    routes: dict[str, PromptRoute] = {}
    clashes: set[str] = set()
    for server, prompts in listings:
        for prompt in prompts:
            route = prompt_route(server, prompt)
            if route is None:
                log.warning(
                    "MCP %s: prompt name %r cannot be mapped: hidden", server.name, prompt.name
                )
                continue
            if route.exposed in routes or route.exposed in clashes:
                clashes.add(route.exposed)
                routes.pop(route.exposed, None)
                log.warning("MCP prompt name %r is exposed by two servers: hidden", route.exposed)
                continue
            routes[route.exposed] = route
    return routes


class View:
    """One agent session's routes, rebuilt from each of its listings."""

    def __init__(
        self,
        servers: Iterable[UpstreamConfig],
        catalog: Callable[[], Mapping[str, ToolRoute]] = dict,
    ) -> None:
        self.servers = {server.name: server for server in servers}
        self._tools: dict[str, ToolRoute] | None = None  # None: not listed yet
        self._catalog = catalog
        self.prompts: dict[str, PromptRoute] = {}
        self.prompts_listed = False
        self.resources_listed = False
        self._uris: dict[str, str | None] = {}  # uri -> server (None: claimed by two)
        self._templates: dict[str, tuple[re.Pattern[str], ...]] = {}
        #: the servers that offer resources (from their initialize results)
        self.resource_servers: tuple[str, ...] = ()

    @property
    def tools(self) -> Mapping[str, ToolRoute]:
        """The session's tool routes, or the catalog's until the session lists tools."""
        return self._tools if self._tools is not None else self._catalog()

    def set_tools(self, listings: Mapping[str, Sequence[types.Tool]]) -> dict[str, ToolRoute]:
        pairs = [(self.servers[name], tools) for name, tools in listings.items()]
        self._tools = build_routes(pairs)
        return self._tools

    def set_prompts(self, listings: Mapping[str, Sequence[types.Prompt]]) -> dict[str, PromptRoute]:
        pairs = [(self.servers[name], prompts) for name, prompts in listings.items()]
        self.prompts = build_prompts(pairs)
        self.prompts_listed = True
        return self.prompts

    def set_resources(self, listings: Mapping[str, Sequence[str]]) -> None:
        """The URIs each server listed."""
        uris: dict[str, str | None] = {}
        for server, listed in listings.items():
            for uri in listed:
                uris[uri] = server if uris.get(uri, server) == server else None
        self._uris = uris
        self.resources_listed = True

    def set_templates(self, listings: Mapping[str, Sequence[str]]) -> None:
        compiled: dict[str, tuple[re.Pattern[str], ...]] = {}
        for server, templates in listings.items():
            patterns = (template_pattern(template) for template in templates)
            compiled[server] = tuple(p for p in patterns if p is not None)
        self._templates = compiled

    def lists(self, uri: str, server: str) -> bool:
        """Whether a URI ``server`` listed routes to it (not also claimed by another)."""
        return self._uris.get(uri, server) == server

    def server_of(self, uri: str) -> str | None:
        """The one server a resource URI goes to: the one that listed it, else the one
        whose templates match it, else the only server offering resources; None when
        none or several could (the read is refused as unmapped)."""
        if uri in self._uris:
            return self._uris[uri]
        matching = [
            server
            for server, patterns in self._templates.items()
            if any(pattern.fullmatch(uri) for pattern in patterns)
        ]
        if len(matching) == 1:
            return matching[0]
        if not matching and len(self.resource_servers) == 1:
            return self.resource_servers[0]
        return None


def uris_of(result: Mapping[str, Any], key: str, field: str) -> list[str]:
    """The string ``field`` of each item of a listing's ``key`` list (bad items skipped)."""
    items = result.get(key)
    if not isinstance(items, list):
        return []
    return [
        item[field] for item in items if isinstance(item, dict) and isinstance(item.get(field), str)
    ]
