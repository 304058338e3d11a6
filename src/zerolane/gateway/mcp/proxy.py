"""The MCP server agents talk to: it lists and calls the upstreams' tools, as decided.

Handlers read what the enforcement middleware attached to the HTTP request. A
``tools/call`` runs only with an allow made for that very request (same JSON-RPC id,
same tool name); anything else is refused with the reasons and the decision id, and
never reaches an upstream. Upstream calls carry the gateway's own connection, the
task and decision ids in ``_meta``, and nothing of the agent's credentials.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from starlette.requests import Request

from zerolane import __version__
from zerolane.errors import Unavailable
from zerolane.gateway.access_log import record_error
from zerolane.gateway.edge.jsonrpc import FORBIDDEN as FORBIDDEN
from zerolane.gateway.edge.jsonrpc import UPSTREAM_UNAVAILABLE as UPSTREAM_UNAVAILABLE
from zerolane.gateway.edge.jsonrpc import denied, refused, upstream_unavailable
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.listing import callable_routes
from zerolane.gateway.mcp.state import RequestState, state_of

TASK_META = "dev.zerolane/task"
DECISION_META = "dev.zerolane/decision"


def _noted(ctx: ServerRequestContext[Any], reason: str) -> None:
    """The access line of the HTTP request carrying this call says why it failed."""
    if isinstance(ctx.request, Request):
        record_error(ctx.request.scope, reason)


def _state(ctx: ServerRequestContext[Any]) -> RequestState:
    state = state_of(ctx.request)
    if state is None:  # not through the enforcement middleware: refuse
        raise refused("auth.missing", "unauthenticated request")
    return state


class GatewayHandlers:
    """``tools/list`` and ``tools/call`` over the catalog, with the core's decisions."""

    def __init__(self, enforcement: Enforcement, catalog: Catalog) -> None:
        self._core = enforcement
        self._catalog = catalog

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        state = _state(ctx)
        if state.claims is None:
            raise refused("auth.missing", "no verified task")
        routes = list((await self._catalog.refresh()).values())
        allowed = await anyio.to_thread.run_sync(callable_routes, self._core, state.claims, routes)
        tools = [route.listed() for route in allowed]
        return types.ListToolsResult(tools=tools, cache_scope="private", ttl_ms=0)

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        call = _state(ctx).call
        if call is None or call.name != params.name or call.request_id != ctx.request_id:
            message = f"no decision was made for this call of {params.name}"
            raise refused("decision.missing", message)
        decision = call.decision
        if not decision.allowed or call.route is None:
            raise denied(decision, params.name)
        meta = {TASK_META: decision.task_id, DECISION_META: decision.decision_id}
        upstream = self._catalog.upstream(call.route)
        try:
            return await upstream.call_tool(call.route.tool.name, params.arguments, meta)
        except Unavailable as err:
            _noted(ctx, err.reason)
            raise upstream_unavailable(decision, err.reason, err.message) from err
        except MCPError as err:
            if err.code == types.CONNECTION_CLOSED:
                _noted(ctx, "upstream.closed")
                closed = upstream_unavailable(decision, "upstream.closed", "the upstream closed")
                raise closed from err
            raise


def build_server(enforcement: Enforcement, catalog: Catalog) -> Server[Any]:
    """The low-level MCP server of the gateway (tools only)."""
    handlers = GatewayHandlers(enforcement, catalog)
    return Server(
        "zerolane-mcp-gateway",
        version=__version__,
        title="zerolane MCP gateway",
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        get_tool_input_schema=catalog.input_schema,
    )
