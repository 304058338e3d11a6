"""The gateway as one ASGI app: metadata, the enforced MCP endpoint, a health check.

Its lifespan connects the upstreams (one long-lived session each, in its own task,
reconnected when lost, closed on shutdown) and runs the SDK's streamable HTTP session
manager. Once every upstream has had its first attempt, it says which serve
(:func:`serving_line`: only those that initialized count); one that failed is retried
with backoff, its cause logged once. Every HTTP request gets one access line
(:class:`~zerolane.gateway.access_log.AccessLog`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zerolane.gateway.access_log import AccessLog
from zerolane.gateway.mcp.auth import Enforcer
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.config import GatewayConfig
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.metadata import metadata_routes
from zerolane.gateway.mcp.proxy import build_server
from zerolane.gateway.mcp.upstream import STOP_SECONDS, Upstream

log = logging.getLogger(__name__)


def serving_line(upstreams: Sequence[Upstream]) -> str:
    """``2 of 3 upstream server(s) serving (a, b); not serving: c``: only the upstreams
    with a session now count."""
    up = [u.name for u in upstreams if u.serving]
    down = [u.name for u in upstreams if not u.serving]
    line = f"{len(up)} of {len(upstreams)} upstream server(s) serving"
    line += f" ({', '.join(up)})" if up else ""
    return line + (f"; not serving: {', '.join(down)}" if down else "")


def _security(config: GatewayConfig) -> TransportSecuritySettings:
    """DNS-rebinding protection: only the public host and the listen address."""
    public = urlsplit(config.public_url)
    hosts = {public.netloc, f"{config.host}:{config.port}"}
    if public.port is None:
        hosts.add(f"{public.hostname}:{443 if public.scheme == 'https' else 80}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=sorted(hosts),
        allowed_origins=[f"{public.scheme}://{public.netloc}"],
    )


def create_gateway_app(
    config: GatewayConfig,
    enforcement: Enforcement,
    upstreams: list[Upstream] | None = None,
    *,
    listener: str = "mcp-gateway",
) -> Starlette:
    """The MCP gateway app for ``config``, deciding with ``enforcement``; its access
    lines name ``listener``; ``app.state.upstreams`` holds its upstreams."""
    upstreams = upstreams if upstreams is not None else [Upstream(s) for s in config.servers]
    catalog = Catalog(upstreams)
    manager = StreamableHTTPSessionManager(
        app=build_server(enforcement, catalog),
        security_settings=_security(config),
        max_request_body_size=config.max_body_bytes,
        json_response=True,
    )
    endpoint = Enforcer(
        StreamableHTTPASGIApp(manager),
        config=config,
        enforcement=enforcement,
        catalog=catalog,
    )

    async def healthz(_: Request) -> Response:
        connected = sorted(u.name for u in upstreams if u.tools)
        return JSONResponse({"status": "ok", "upstreams_with_tools": connected})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            for upstream in upstreams:
                await group.start(upstream.run)
            if upstreams:
                down = any(not u.serving for u in upstreams)
                log.log(logging.WARNING if down else logging.INFO, "%s", serving_line(upstreams))
            async with manager.run():
                yield
            for upstream in upstreams:  # close each session cleanly, within a bound
                upstream.stop()
            group.cancel_scope.deadline = anyio.current_time() + STOP_SECONDS

    routes = [
        *metadata_routes(config),
        Route("/healthz", healthz, methods=["GET"]),
        Route(config.path, endpoint=endpoint, methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(AccessLog, listener=listener)],
    )
    app.state.upstreams = upstreams
    return app
