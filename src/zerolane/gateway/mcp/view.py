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

from zerolane.gateway.mcp.catalog import build_routes, by_exposed_name
from zerolane.gateway.mcp.config import MAX_URI, UpstreamConfig
from zerolane.gateway.mcp.mapping import PromptRoute, ToolRoute, prompt_route

log = logging.getLogger(__name__)

#: an RFC 6570 expression in a URI template (any operator): matched as one or more chars
_EXPRESSION = re.compile(r"\{([^{}]*)\}")
MAX_TEMPLATE_CHARS = 1024
#: expressions in one segment of a template at most (more: the template routes nothing)
MAX_SEGMENT_EXPRESSIONS = 2
#: the longest URI matched against templates (the mapping's own bound)
MAX_URI_CHARS = MAX_URI
#: RFC 6570 operators whose expansion may hold a '/' (reserved, fragment, path)
_MULTI_SEGMENT = ("+", "#", "/")


class Template:
    """The URIs an RFC 6570 template expands to, matched in time linear in the
    URI's length times a small constant (an agent's URI must not stall the loop).

    A template whose one expression may span segments (``file:///{+path}``) matches
    its literal prefix and suffix around one or more characters; any other template
    matches segment by segment (split on ``/``, the same count), each expression one
    or more characters other than ``/``, at most :data:`MAX_SEGMENT_EXPRESSIONS` per
    segment. :func:`template_of` refuses the rest (None): such a template routes
    nothing, and its URIs are routed only once listed.
    """

    def __init__(self, wide: tuple[str, str] | None, segments: tuple[re.Pattern[str], ...]):
        self._wide = wide
        self._segments = segments

    def fullmatch(self, uri: str) -> bool:
        if len(uri) > MAX_URI_CHARS:
            return False
        if self._wide is not None:
            prefix, suffix = self._wide
            middle = len(uri) - len(prefix) - len(suffix)
            return middle > 0 and uri.startswith(prefix) and uri.endswith(suffix)
        parts = uri.split("/")
        if len(parts) != len(self._segments):
            return False
        return all(p.fullmatch(part) for p, part in zip(self._segments, parts, strict=True))


def template_of(template: str) -> Template | None:
    """The matcher of ``template`` (see :class:`Template`), or None."""
    if len(template) > MAX_TEMPLATE_CHARS:
        return None
    parts = _EXPRESSION.split(template)  # literal, expression, literal, ...
    operators = parts[1::2]
    wide = [op for op in operators if op[:1] in _MULTI_SEGMENT]
    if wide:
        if len(operators) != 1 or any(b in parts[0] + parts[2] for b in "{}"):
            return None
        return Template((parts[0], parts[2]), ())
    segments: list[re.Pattern[str]] = []
    for segment in template.split("/"):
        pieces = _EXPRESSION.split(segment)
        literal = "".join(pieces[::2])
        if len(pieces) // 2 > MAX_SEGMENT_EXPRESSIONS or "{" in literal or "}" in literal:
            return None
        regex = re.escape(pieces[0])
        for index in range(1, len(pieces), 2):
            if not regex.endswith("[^/]+") or pieces[index - 1]:
                regex += "[^/]+"  # adjacent expressions match as one
            regex += re.escape(pieces[index + 1])
        segments.append(re.compile(regex, re.DOTALL))
    return Template(None, tuple(segments))


def build_prompts(
    listings: Sequence[tuple[UpstreamConfig, Sequence[types.Prompt]]],
) -> dict[str, PromptRoute]:
    """Prompt routes by exposed name; unmappable and colliding names are dropped."""
    return by_exposed_name(listings, prompt_route, "prompt")


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
        self._uris: dict[str, str | None] = {}  # uri -> server (None: claimed by two)
        self._templates: dict[str, tuple[Template, ...]] = {}
        #: the servers that offer resources (from their initialize results)
        self.resource_servers: tuple[str, ...] = ()

    @property
    def tools(self) -> Mapping[str, ToolRoute]:
        """The session's tool routes, or the catalog's (of this session's servers) until
        the session lists tools."""
        if self._tools is not None:
            return self._tools
        return {name: r for name, r in self._catalog().items() if r.server in self.servers}

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

    def set_templates(self, listings: Mapping[str, Sequence[str]]) -> None:
        compiled: dict[str, tuple[Template, ...]] = {}
        for server, templates in listings.items():
            matchers = (template_of(template) for template in templates)
            compiled[server] = tuple(m for m in matchers if m is not None)
        self._templates = compiled

    def prompt(self, name: str) -> PromptRoute | None:
        """The route of prompt ``name``: from the session's listing once it listed
        prompts, else by the servers' prefixes (the longest that ``name`` starts with;
        prefixes are unique), so a ``prompts/get`` needs no listing first and is still
        decided on the one server it goes to."""
        if self.prompts_listed:
            return self.prompts.get(name)
        owners = [s for s in self.servers.values() if name.startswith(s.prefix)]
        if not owners:
            return None
        server = max(owners, key=lambda s: len(s.prefix))
        return prompt_route(server, types.Prompt(name=name[len(server.prefix) :]))

    def lists(self, uri: str, server: str) -> bool:
        """Whether a URI ``server`` listed routes to it (not also claimed by another)."""
        return self._uris.get(uri, server) == server

    def server_of(self, uri: str) -> str | None:
        """The one server a resource URI goes to: the one that listed it, else the one
        whose templates match it, else the only server offering resources; None when
        none or several could (the read is refused as unmapped)."""
        if uri in self._uris:
            return self._uris[uri]
        if len(uri) > MAX_URI_CHARS:
            return None
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
