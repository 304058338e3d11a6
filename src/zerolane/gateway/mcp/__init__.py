"""The MCP gateway: an MCP server in front of upstream MCP servers, deciding every call.

It is an OAuth protected resource per the MCP authorization spec (RFC 9728 metadata,
RFC 8707 audience, DPoP-bound task tokens, no token pass-through upstream). Each
``tools/call`` is one request-time decision (action ``mcp:<server>/<tool>``, resource
``mcp/<server>/<tool>``); ``tools/list`` shows only what the task may call.

    config = load_gateway_config(Path("mcp-gateway.toml"))
    app = create_gateway_app(config, enforcement)  # an ASGI app: serve it with uvicorn
"""

from zerolane.gateway.mcp.app import create_gateway_app
from zerolane.gateway.mcp.config import (
    GatewayConfig,
    ToolConfig,
    UpstreamConfig,
    load_gateway_config,
    parse_gateway_config,
)
from zerolane.gateway.mcp.core import Enforcement

__all__ = [
    "Enforcement",
    "GatewayConfig",
    "ToolConfig",
    "UpstreamConfig",
    "create_gateway_app",
    "load_gateway_config",
    "parse_gateway_config",
]
