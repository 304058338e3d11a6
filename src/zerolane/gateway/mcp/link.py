"""A link: one MCP client session with one upstream server, relaying raw JSON-RPC.

The gateway opens one link per agent session (:func:`connect`), declaring the agent's
own client capabilities, so what the server sends back (progress, log messages,
sampling, elicitation and roots requests, resource updates) can be relayed to that
agent and the agent's answers relayed back. Messages are plain dicts: fields the
gateway does not know pass as they are.

- :meth:`Link.request` sends one request under the link's own id and returns the raw
  answer (``result`` or ``error``; the caller puts the agent's id back). The other
  messages the server sends for it (HTTP: on its response stream; stdio: the progress
  notifications naming its progress token) go to its ``on_message`` first, in order.
- Everything else the server sends goes to ``on_unsolicited`` (HTTP: the session's GET
  stream; stdio: every message that is not an answer), in order; a failure of
  ``on_unsolicited`` is logged, never ends the session.
- The link answers the server's ``ping`` itself.

Failures: :class:`~zerolane.gateway.mcp.streamable.NotDelivered` when the request
provably never reached the server (the session was already gone: then
:attr:`Link.closed` is true, and a new link is needed); ``MCPError(CONNECTION_CLOSED)``
when it was sent but its answer can no longer come; any other exception is a transport
failure after sending. A request whose caller is cancelled is cancelled upstream
(``notifications/cancelled`` with the link's id for it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import aiohttp
import anyio

from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.handshake import OnMessage
from zerolane.gateway.mcp.stdio_link import connect_stdio
from zerolane.gateway.mcp.streamable import CANCEL_SECONDS, HttpSession, http_session
from zerolane.gateway.mcp.upstream import CLIENT_INFO, CONNECT_SECONDS, NotServing, describe

__all__ = ["Link", "OnMessage", "connect", "upstream_pool"]

log = logging.getLogger(__name__)

#: connections to one HTTP upstream at most, over all its links: each link holds one
#: for its GET stream and one per request in flight (a pool too small would hang them)
MAX_CONNECTIONS = 1024


class Link(Protocol):
    """One MCP client session with one upstream server."""

    @property
    def name(self) -> str:
        """The upstream server's configured name."""
        ...

    @property
    def result(self) -> dict[str, Any]:
        """The upstream's raw ``InitializeResult``."""
        ...

    @property
    def closed(self) -> bool:
        """The session is gone (ended, or the server lost it): open a new link."""
        ...

    async def request(
        self, method: str, params: dict[str, Any] | None, on_message: OnMessage
    ) -> dict[str, Any]: ...

    async def notify(self, method: str, params: dict[str, Any] | None) -> None: ...

    async def respond(self, message: dict[str, Any]) -> None: ...


def upstream_pool() -> aiohttp.ClientSession:
    """The connection pool one HTTP upstream's links share (the gateway owns it)."""
    return http_session(limit=MAX_CONNECTIONS)


@asynccontextmanager
async def connect(
    config: UpstreamConfig,
    *,
    pool: aiohttp.ClientSession | None,
    capabilities: Mapping[str, Any],
    on_unsolicited: OnMessage,
    connect_seconds: float = CONNECT_SECONDS,
    headers: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Link]:
    """A new initialized session with ``config``'s server, ended on leaving (HTTP: the
    session is deleted; stdio: the process is stopped), within bounded time.

    HTTP links use ``pool`` (None: a pool of their own) and send ``headers`` (the
    upstream's credential) on every request, read at each one; a stdio link starts its
    own process, ``env`` merged over the configured environment. Raises
    :class:`NotServing` with the cause when there is no session to be had (the server
    does not start, answer or initialize within ``connect_seconds``).
    """
    if config.url is None:
        async with connect_stdio(
            config,
            capabilities=capabilities,
            on_unsolicited=on_unsolicited,
            connect_seconds=connect_seconds,
            env=env,
        ) as link:
            yield link
        return
    async with AsyncExitStack() as stack:
        try:
            if pool is None:
                pool = await stack.enter_async_context(upstream_pool())
            tasks = await stack.enter_async_context(anyio.create_task_group())
            session = HttpSession(
                config.url,
                pool,
                tasks,
                CLIENT_INFO,
                name=config.name,
                capabilities=capabilities,
                headers=headers,
            )
            listener = anyio.CancelScope()
            stack.push_async_callback(_end, session, listener)
            with anyio.fail_after(connect_seconds):
                await session.open()
        except Exception as err:
            await stack.aclose()
            raise NotServing(config.name, describe(err)) from err
        tasks.start_soon(_listen, session, listener, _relaying(config.name, on_unsolicited))
        yield session


async def _listen(session: HttpSession, scope: anyio.CancelScope, on_message: OnMessage) -> None:
    """Read the GET stream until the link ends; its failure ends only the stream."""
    with scope:
        try:
            await session.listen(on_message)
        except Exception:
            log.exception("MCP upstream %s: its GET stream failed", session.name)


async def _end(session: HttpSession, listener: anyio.CancelScope) -> None:
    """Stop reading the GET stream and delete the session (bounded, even when the
    caller is being cancelled)."""
    listener.cancel()
    with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_SECONDS + 1):
        await session.close()


def _relaying(name: str, on_message: OnMessage) -> OnMessage:
    """``on_message``, its failures logged instead of ending the session."""

    async def relay(message: dict[str, Any]) -> None:
        try:
            await on_message(message)
        except Exception:
            log.exception("MCP upstream %s: a server message was not relayed", name)

    return relay
