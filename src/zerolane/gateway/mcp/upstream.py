"""One upstream MCP server: a client session the gateway owns, reconnected when lost.

The session is opened with the gateway's own transport (a stdio subprocess, or a
streamable HTTP client with no credentials of the agent's: no token pass-through) and
lives in one task, :meth:`Upstream.run`, so its cancel scopes are entered and left in
the same task. A call that finds the connection gone marks it lost; the run loop then
reconnects with backoff while callers wait (bounded) for the new session.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskStatus
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from zerolane.errors import Unavailable
from zerolane.gateway.mcp.config import UpstreamConfig

log = logging.getLogger(__name__)

CLIENT_INFO = types.Implementation(name="zerolane-mcp-gateway", version="1")
MAX_PAGES = 50  # tools/list pages read from one upstream
MAX_BACKOFF = 30.0


class Upstream:
    """The gateway's client connection to one configured MCP server."""

    def __init__(self, config: UpstreamConfig, *, wait_seconds: float = 10.0) -> None:
        self.config = config
        self.tools: tuple[types.Tool, ...] = ()
        self._wait = wait_seconds
        self._session: ClientSession | None = None
        self._ready = anyio.Event()
        self._lost = anyio.Event()

    @property
    def name(self) -> str:
        return self.config.name

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[ClientSession]:
        async with AsyncExitStack() as stack:
            if self.config.url is not None:
                streams = streamable_http_client(self.config.url)
            else:
                assert self.config.command is not None
                params = StdioServerParameters(
                    command=self.config.command,
                    args=list(self.config.args),
                    env=dict(self.config.env) or None,
                    cwd=self.config.cwd,
                )
                streams = stdio_client(params, errlog=sys.stderr)
            read, write = await stack.enter_async_context(streams)
            session = await stack.enter_async_context(
                ClientSession(read, write, client_info=CLIENT_INFO)
            )
            await session.initialize()
            yield session

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep a session open until cancelled; ``started`` after the first attempt."""
        started = False
        delay = 0.5
        while True:
            try:
                async with self._open() as session:
                    self.tools = await _list_all(session)
                    self._session = session
                    self._ready.set()
                    delay = 0.5
                    if not started:
                        started = True
                        task_status.started()
                    await self._lost.wait()
            except Exception as err:  # an upstream that fails is retried, never fatal
                log.warning("MCP upstream %s: %s", self.name, _describe(err))
            finally:  # no await in here: a set _ready always means a live _session
                self._session = None
                if self._ready.is_set():
                    self._ready = anyio.Event()
                self._lost = anyio.Event()
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def session(self) -> ClientSession:
        """The live session, waiting (bounded) for a reconnect in progress."""
        with anyio.move_on_after(self._wait):
            while self._session is None:
                await self._ready.wait()
        if self._session is None:
            raise Unavailable("upstream.unavailable", f"MCP server {self.name} is not connected")
        return self._session

    def _mark_lost(self, session: ClientSession) -> None:
        if self._session is session:
            self._session = None
            self._ready = anyio.Event()
            self._lost.set()

    async def refresh(self) -> tuple[types.Tool, ...]:
        """List the upstream's tools again (all pages)."""
        session = await self.session()
        try:
            self.tools = await _list_all(session)
        except MCPError as err:
            if err.code == types.CONNECTION_CLOSED:
                self._mark_lost(session)
            raise Unavailable("upstream.error", f"{self.name}: {err.message}") from err
        except Exception as err:
            self._mark_lost(session)
            raise Unavailable("upstream.unavailable", f"{self.name}: {_describe(err)}") from err
        return self.tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None, meta: types.RequestParamsMeta
    ) -> types.CallToolResult:
        """Call ``name`` upstream; transport failures mark the session lost."""
        session = await self.session()
        try:
            return await session.call_tool(name, arguments, meta=meta)
        except MCPError as err:
            if err.code == types.CONNECTION_CLOSED:
                self._mark_lost(session)
            raise
        except Exception as err:
            self._mark_lost(session)
            raise Unavailable("upstream.unavailable", f"{self.name}: {_describe(err)}") from err


async def _list_all(session: ClientSession) -> tuple[types.Tool, ...]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(tools)


def _describe(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup) and err.exceptions:
        return _describe(err.exceptions[0])
    return f"{type(err).__name__}: {err}"
