"""How an upstream tool maps onto a decision: action, resource, destination, sensitivity.

A tool ``read_report`` of server ``reports`` is action ``mcp:reports/read_report`` on
resource ``mcp/reports/read_report``, sent to the server's destination label. Its
sensitivity is the configured per-tool value, else the server's default raised by the
tool's annotations: a tool that is not declared read-only and is (or by the MCP
defaults may be) destructive is at least the server's ``destructive_sensitivity``.
Annotations come from the upstream, so they can only raise a sensitivity, never lower
it below the server's default. The policies also see the call itself, as the optional
``context.request.mcp`` record (:meth:`ToolRoute.mcp_facts`): server, tool, annotations
and the flattened arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mcp_types import Tool, ToolAnnotations

from zerolane.gateway.mcp.config import TOOL_NAME, UpstreamConfig
from zerolane.policy.context import McpFacts
from zerolane.types import Sensitivity


@dataclass(frozen=True, slots=True)
class ToolRoute:
    """One upstream tool as the gateway exposes and decides it."""

    server: str
    tool: Tool  # as the upstream listed it
    exposed: str  # the name agents see (the server's prefix + the tool's name)
    destination: str
    sensitivity: Sensitivity

    @property
    def action(self) -> str:
        return f"mcp:{self.server}/{self.tool.name}"

    @property
    def resource(self) -> str:
        return f"mcp/{self.server}/{self.tool.name}"

    @property
    def read_only(self) -> bool:
        annotations = self.tool.annotations
        return bool(annotations and annotations.read_only_hint)

    @property
    def destructive(self) -> bool:
        return _destructive(self.tool.annotations)

    def mcp_facts(self, arguments: Mapping[str, object] | None = None) -> McpFacts:
        """``context.request.mcp`` for a call of this tool with ``arguments``."""
        return McpFacts.of_call(
            self.server,
            self.tool.name,
            read_only=self.read_only,
            destructive=self.destructive,
            arguments=arguments,
        )

    def listed(self) -> Tool:
        """The tool as the gateway lists it: renamed, everything else as upstream."""
        return self.tool.model_copy(update={"name": self.exposed})


def _destructive(annotations: ToolAnnotations | None) -> bool:
    """MCP defaults: not read-only unless said so; destructive unless said otherwise."""
    if annotations is None:
        return True
    if annotations.read_only_hint:
        return False
    return annotations.destructive_hint is not False


def tool_sensitivity(server: UpstreamConfig, tool: Tool) -> Sensitivity:
    """Per-tool override, else the annotation-informed default, else the server default."""
    override = server.tools.get(tool.name)
    if override is not None and override.sensitivity is not None:
        return override.sensitivity
    if _destructive(tool.annotations):
        return max(server.default_sensitivity, server.destructive_sensitivity)
    return server.default_sensitivity


def route_for(server: UpstreamConfig, tool: Tool) -> ToolRoute | None:
    """The route of ``tool``, or None for a name that cannot map onto one resource."""
    if not TOOL_NAME.fullmatch(tool.name):
        return None
    return ToolRoute(
        server=server.name,
        tool=tool,
        exposed=server.prefix + tool.name,
        destination=server.destination,
        sensitivity=tool_sensitivity(server, tool),
    )
