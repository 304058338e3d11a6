"""The tools of every upstream, under the names the gateway exposes them by.

A name two servers would both expose is routed to neither (fail closed, logged): a
call must never reach a server other than the one its decision was made for. Tools
whose names cannot map onto one resource segment are left out the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import mcp_types as types

from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.mapping import ToolRoute, route_for
from zerolane.gateway.mcp.upstream import Upstream

log = logging.getLogger(__name__)


def build_routes(
    listings: Sequence[tuple[UpstreamConfig, Sequence[types.Tool]]],
) -> dict[str, ToolRoute]:
    """Routes by exposed name; unmappable and colliding names are dropped."""
    routes: dict[str, ToolRoute] = {}
    clashes: set[str] = set()
    for server, tools in listings:
        for tool in tools:
            route = route_for(server, tool)
            if route is None:
                log.warning("MCP %s: tool name %r cannot be mapped: hidden", server.name, tool.name)
                continue
            if route.exposed in routes or route.exposed in clashes:
                clashes.add(route.exposed)
                routes.pop(route.exposed, None)
                log.warning("MCP tool name %r is exposed by two servers: hidden", route.exposed)
                continue
            routes[route.exposed] = route
    return routes


class Catalog:
    """The upstreams and the routes of their tools as the gateway's own sessions with
    them last listed them (the fallback of an agent session that has not listed yet,
    and the last known tools of an upstream that is down)."""

    def __init__(self, upstreams: Sequence[Upstream]) -> None:
        self.upstreams = {upstream.name: upstream for upstream in upstreams}
        self._routes: dict[str, ToolRoute] = {}
        self._built_from: tuple[tuple[types.Tool, ...], ...] | None = None

    def _rebuild(self) -> dict[str, ToolRoute]:
        listings = tuple(upstream.tools for upstream in self.upstreams.values())
        if self._built_from is None or any(
            new is not old for new, old in zip(listings, self._built_from, strict=True)
        ):
            configs = [upstream.config for upstream in self.upstreams.values()]
            self._routes = build_routes(list(zip(configs, listings, strict=True)))
            self._built_from = listings
        return self._routes

    def routes(self) -> dict[str, ToolRoute]:
        """Routes from the upstreams' last listings (no I/O)."""
        return self._rebuild()
