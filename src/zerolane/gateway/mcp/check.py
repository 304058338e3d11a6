"""``zerolane mcp-gateway check``: does every upstream start, initialize and list tools?

Each configured upstream is started as the gateway would start it (the stdio command
run, the HTTP server asked), initialized, asked for its tools and stopped, all of them
at once. An upstream that cannot start (a missing executable, a Python module that
fails to import, a server that does not answer ``initialize``) fails the check with
:class:`~zerolane.errors.Unavailable` (``mcp.upstream``) naming every such upstream
and its cause. An upstream with a credential is asked with the gateway's own (a static
secret, a client-credentials token); one whose tokens are exchanged for a task's person
cannot be asked without a task, and says so.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import anyio

from zerolane.errors import Unavailable
from zerolane.gateway.mcp.config import GatewayConfig
from zerolane.gateway.mcp.credentials import UpstreamCredentials
from zerolane.gateway.mcp.upstream import CONNECT_SECONDS, NotServing, Upstream


@dataclass(frozen=True, slots=True)
class UpstreamCheck:
    """One upstream's result: its tools' names, or why it does not serve."""

    name: str
    tools: tuple[str, ...] = ()
    failure: str | None = None


async def probe_upstreams(
    config: GatewayConfig, connect_seconds: float = CONNECT_SECONDS
) -> list[UpstreamCheck]:
    """Start, initialize, list and stop every upstream of ``config`` (concurrently)."""
    results: dict[str, UpstreamCheck] = {}
    credentials = UpstreamCredentials(config.servers)

    async def probe(upstream: Upstream) -> None:
        try:
            tools = await upstream.probe()
        except NotServing as err:
            results[upstream.name] = UpstreamCheck(upstream.name, failure=err.cause)
        except Exception as err:  # closing it failed: it is not fit to serve either
            failure = f"{type(err).__name__}: {err}"
            results[upstream.name] = UpstreamCheck(upstream.name, failure=failure)
        else:
            results[upstream.name] = UpstreamCheck(upstream.name, tuple(t.name for t in tools))

    async with anyio.create_task_group() as group:
        for server in config.servers:
            credential = functools.partial(credentials.for_gateway, server)
            upstream = Upstream(server, connect_seconds=connect_seconds, credential=credential)
            group.start_soon(probe, upstream)
    return [results[server.name] for server in config.servers]


def check_upstreams(
    config: GatewayConfig, connect_seconds: float = CONNECT_SECONDS
) -> list[UpstreamCheck]:
    """:func:`probe_upstreams` from synchronous code; :class:`Unavailable` if any fails."""
    checks = anyio.run(probe_upstreams, config, connect_seconds)
    failed = [c for c in checks if c.failure is not None]
    if failed:
        causes = "; ".join(f"upstream {c.name!r}: {c.failure}" for c in failed)
        raise Unavailable(
            "mcp.upstream",
            f"{len(failed)} of {len(checks)} MCP upstream server(s) cannot start: {causes}",
        )
    return checks
