"""The tools of every upstream, under the names the gateway exposes them by.

A name two servers would both expose is routed to neither (fail closed, logged): a
call must never reach a server other than the one its decision was made for. Tools
whose names cannot map onto one resource segment are left out the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import mcp_types as types

from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.mapping import ToolRoute, route_for
from zerolane.gateway.mcp.upstream import Upstream

log = logging.getLogger(__name__)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Exposed(Protocol):
    @property
    def exposed(self) -> str: ...


T = TypeVar("T", bound=_Named)
R = TypeVar("R", bound=_Exposed)


def by_exposed_name(
    listings: Sequence[tuple[UpstreamConfig, Sequence[T]]],
    route: Callable[[UpstreamConfig, T], R | None],
    kind: str,
) -> dict[str, R]:
    """Routes of listed items (tools, prompts) by the name the gateway exposes them
    under; an item whose name cannot map, and a name two servers would both expose, are
    left out (fail closed, logged)."""
    routes: dict[str, R] = {}
    clashes: set[str] = set()
    for server, items in listings:
        for item in items:
            found = route(server, item)
            if found is None:
                log.warning(
                    "MCP %s: %s name %r cannot be mapped: hidden", server.name, kind, item.name
                )
                continue
            if found.exposed in routes or found.exposed in clashes:
                clashes.add(found.exposed)
                routes.pop(found.exposed, None)
                log.warning("MCP %s name %r is exposed by two servers: hidden", kind, found.exposed)
                continue
            routes[found.exposed] = found
    return routes


def build_routes(
    listings: Sequence[tuple[UpstreamConfig, Sequence[types.Tool]]],
) -> dict[str, ToolRoute]:
    """Tool routes by exposed name; unmappable and colliding names are dropped."""
    return by_exposed_name(listings, route_for, "tool")


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
