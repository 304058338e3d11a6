"""The gateway as one ASGI app: metadata, the enforced MCP endpoint, a health check.

Its lifespan connects the upstreams' catalog sessions (one long-lived session each,
in its own task, reconnected when lost, closed on shutdown: the last known tools,
health and the serving line come from them), opens each HTTP upstream's connection
pool and holds the agent sessions (:mod:`zerolane.gateway.mcp.sessions`), each with
its own upstream sessions, all ended on shutdown. Once every upstream has had its
first attempt, it says which serve (:func:`serving_line`: only those that initialized
count); one that failed is retried with backoff, its cause logged once; ``/readyz``
answers 503 naming each upstream not serving. Every HTTP request gets one
access line (:class:`~zerolane.gateway.access_log.AccessLog`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zerolane.errors import InvalidInput
from zerolane.gateway.access_log import AccessLog
from zerolane.gateway.mcp.auth import Gate
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.config import GatewayConfig, UpstreamConfig
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.credentials import UpstreamCredentials, person_in
from zerolane.gateway.mcp.link import upstream_pool
from zerolane.gateway.mcp.metadata import metadata_routes
from zerolane.gateway.mcp.relay import Relay
from zerolane.gateway.mcp.sessions import Sessions
from zerolane.gateway.mcp.transport import Endpoint
from zerolane.gateway.mcp.upstream import CONNECT_SECONDS, STOP_SECONDS, Upstream

log = logging.getLogger(__name__)


def serving_line(upstreams: Sequence[Upstream]) -> str:
    """``2 of 3 upstream server(s) serving (a, b); not serving: c``: only the upstreams
    with a session now count."""
    up = [u.name for u in upstreams if u.serving]
    down = [u.name for u in upstreams if not u.serving]
    line = f"{len(up)} of {len(upstreams)} upstream server(s) serving"
    line += f" ({', '.join(up)})" if up else ""
    return line + (f"; not serving: {', '.join(down)}" if down else "")


def _upstream(server: UpstreamConfig, credentials: UpstreamCredentials | None) -> Upstream:
    """The gateway's own session with ``server`` (its catalog), with its credential."""
    if credentials is None or server.credential is None:
        return Upstream(server)
    return Upstream(server, credential=functools.partial(credentials.for_gateway, server))


def _per_person(upstream: Upstream) -> bool:
    credential = upstream.config.credential
    return credential is not None and credential.grant_exchanges


def _bearer_clients(enforcement: Enforcement) -> bool:
    """Whether the deployment accepts unbound tokens of standard clients."""
    authenticator = getattr(enforcement, "authenticator", None)  # None: a lifespan test
    return bool(getattr(authenticator, "bearer_clients", False))


def create_gateway_app(
    config: GatewayConfig,
    enforcement: Enforcement,
    upstreams: list[Upstream] | None = None,
    *,
    listener: str = "mcp-gateway",
    connect_seconds: float = CONNECT_SECONDS,
) -> Starlette:
    """The MCP gateway app for ``config``, deciding with ``enforcement``; its access
    lines name ``listener``; ``app.state.upstreams`` holds its upstreams."""
    credentials = None
    exchanged = [s.name for s in config.servers if s.credential and s.credential.grant_exchanges]
    if exchanged and enforcement.sign is None:
        raise InvalidInput(
            "config.credential",
            f"upstream {exchanged[0]}: token_exchange needs the deployment's signing key",
        )
    if any(server.credential is not None for server in config.servers):
        credentials = UpstreamCredentials(
            config.servers, person=person_in(enforcement.tasks), sign=enforcement.sign
        )
    if upstreams is None:
        upstreams = [_upstream(server, credentials) for server in config.servers]
    catalog = Catalog(upstreams)
    relay = Relay(enforcement, catalog)
    sessions = Sessions(
        enforcement,
        config.servers,
        may_read=relay.may_read,
        connect_seconds=connect_seconds,
        catalog=catalog.routes,
        credentials=credentials,
    )
    endpoint = Endpoint(
        config=config,
        gate=Gate(config=config, enforcement=enforcement),
        relay=relay,
        sessions=sessions,
        listener=listener,
        refusals=getattr(enforcement, "refusals", None),  # None: a lifespan test's
    )

    async def healthz(_: Request) -> Response:
        connected = sorted(u.name for u in upstreams if u.tools)
        return JSONResponse({"status": "ok", "upstreams_with_tools": connected})

    async def readyz(_: Request) -> Response:
        """200 when every upstream serves; 503 naming each that does not (the causes are
        logged, never shown to whoever asks)."""
        personal = sorted(u.name for u in upstreams if _per_person(u))
        down = sorted(u.name for u in upstreams if not u.serving and not _per_person(u))
        body = {
            "status": "not_ready" if down else "ready",
            "serving": sorted(u.name for u in upstreams if u.serving),
            "not_serving": down,
            # reached only with a task's person's token: the gateway has no session of
            # its own with them, and they do not make it unready
            "per_person": personal,
        }
        return JSONResponse(body, status_code=503 if down else 200)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            for upstream in upstreams:
                await group.start(upstream.run)
            if upstreams:
                down = any(not u.serving for u in upstreams)
                log.log(logging.WARNING if down else logging.INFO, "%s", serving_line(upstreams))
            async with AsyncExitStack() as pools:
                for server in config.servers:
                    if server.url is not None:
                        pool = await pools.enter_async_context(upstream_pool())
                        sessions.pools[server.name] = pool
                await group.start(sessions.run)
                yield
                sessions.stop()
                with anyio.move_on_after(STOP_SECONDS):
                    await sessions.stopped.wait()
            for upstream in upstreams:  # close each session cleanly, within a bound
                upstream.stop()
            group.cancel_scope.deadline = anyio.current_time() + STOP_SECONDS

    routes = [
        *metadata_routes(config, bearer_clients=_bearer_clients(enforcement)),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route(config.path, endpoint=endpoint, methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(AccessLog, listener=listener)],
    )
    app.state.upstreams = upstreams
    app.state.sessions = sessions
    app.state.credentials = credentials
    return app
