"""One upstream MCP server: one long-lived client session the gateway owns and shares.

The session is opened with the gateway's own transport (a streamable HTTP session of
:mod:`~zerolane.gateway.mcp.streamable` over a keep-alive connection pool, or a stdio
subprocess through the MCP SDK's client) and carries none of the agent's credentials
(no token pass-through). It lives in one task, :meth:`Upstream.run`, so its cancel
scopes are entered and left in the same task. Every call reuses it, concurrent calls
share it. A call that finds the session dead marks it lost; the run loop then
reconnects (at once, then with backoff) while callers wait, bounded, for the new
session. :meth:`Upstream.stop` ends the session cleanly (the HTTP session is deleted
upstream, a stdio server is stopped).

A call is sent a second time, on a new session, only when it provably never reached
the upstream: the stdio session was already closed when its message was written, the
HTTP connection for it could not be made, or the HTTP server answered 404 for the
session (MCP: it no longer knows it, and processed nothing). Any other failure fails
closed: the call may have run upstream, so it is never sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol, TypeVar, cast

import anyio
import mcp_types as types
from anyio.abc import TaskStatus
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.shared.message import SessionMessage

from zerolane.errors import Unavailable
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.credentials import Injection
from zerolane.gateway.mcp.stderr import StderrRelay
from zerolane.gateway.mcp.streamable import HttpSession, NotDelivered, http_session

log = logging.getLogger(__name__)

CLIENT_INFO = types.Implementation(name="zerolane-mcp-gateway", version="1")
MAX_PAGES = 50  # tools/list pages read from one upstream
MAX_BACKOFF = 30.0
STOP_SECONDS = 5.0
#: the longest an upstream may take to start and answer ``initialize``
CONNECT_SECONDS = 30.0
#: how often a serving upstream's session is pinged, and how long it has to answer
PING_SECONDS = 5.0
PING_TIMEOUT = 10.0
#: how long a process that failed to start is given to finish writing its stderr
STDERR_WAIT = 2.0

T = TypeVar("T")
#: what the gateway's own session with an upstream is opened with (its credential)
Credential = Callable[[], Awaitable[Injection]]


class NotServing(Exception):
    """An upstream could not be started or did not initialize; the message says why."""

    def __init__(self, name: str, cause: str) -> None:
        super().__init__(f"MCP upstream {name} is not serving: {cause}")
        self.name, self.cause = name, cause


class Session(Protocol):
    """What the gateway asks of an upstream session."""

    async def ping(self) -> None: ...

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult: ...

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, meta: Mapping[str, Any] | None
    ) -> types.CallToolResult: ...


class _Written:
    """Whether the message of one stdio request was handed to the transport."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


#: the stdio request the current task is making
_WRITTEN: ContextVar[_Written | None] = ContextVar("zerolane_mcp_written", default=None)


class _Outbound:
    """A stdio session's write stream: notes whether a request's message was written.

    Only the first message written for a request is the request itself (the SDK may
    send others in the same task, e.g. a ``tools/list`` to validate a result).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        written = _WRITTEN.get()
        mine = written if written is not None and not written.sent else None
        if mine is not None:
            mine.sent = True  # a cancelled send may still have handed the item over
        try:
            await self._inner.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            if mine is not None:
                mine.sent = False  # the transport is gone: nothing was handed over
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _Outbound:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _StdioSession:
    """The MCP SDK's client session over stdio, raising :class:`NotDelivered` for a
    request the closed session never wrote."""

    def __init__(self, session: ClientSession) -> None:
        self._session = session

    async def _send(self, request: Callable[[], Awaitable[T]]) -> T:
        written = _Written()
        token = _WRITTEN.set(written)
        try:
            return await request()
        except MCPError as err:
            if err.code == types.CONNECTION_CLOSED and not written.sent:
                raise NotDelivered("closed", "the stdio session had ended") from err
            raise
        finally:
            _WRITTEN.reset(token)

    async def ping(self) -> None:
        await self._send(self._session.send_ping)

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        return await self._send(lambda: self._session.list_tools(params=params))

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, meta: Mapping[str, Any] | None
    ) -> types.CallToolResult:
        args = dict(arguments) if arguments is not None else None
        # an open map (extra keys are allowed at run time); typed as the SDK declares it
        request_meta = cast(types.RequestParamsMeta, dict(meta)) if meta else None
        return await self._send(lambda: self._session.call_tool(name, args, meta=request_meta))


class Upstream:
    """The gateway's client connection to one configured MCP server."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        wait_seconds: float = 10.0,
        connect_seconds: float = CONNECT_SECONDS,
        credential: Credential | None = None,
    ) -> None:
        self.config = config
        self._credential = credential
        self._injection = Injection()
        self.tools: tuple[types.Tool, ...] = ()
        #: why the last attempt to open a session failed (``None``: it did not)
        self.failure: str | None = None
        self._logged: str | None = None
        self._wait = wait_seconds
        self._connect = connect_seconds
        self._session: Session | None = None
        self._ready = anyio.Event()
        self._lost = anyio.Event()
        self._stopping = False
        self._stopped = anyio.Event()
        #: sessions opened so far
        self.sessions_opened = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def serving(self) -> bool:
        """Whether a session is open now."""
        return self._session is not None

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Session]:
        """A new initialized session; :class:`NotServing` when there is none to be had."""
        if self._credential is not None:
            try:
                self._injection = await self._credential()
            except Unavailable as err:
                raise NotServing(self.name, err.message) from err
        async with AsyncExitStack() as stack:
            if self.config.url is not None:
                try:
                    http = await stack.enter_async_context(http_session())
                    tasks = await stack.enter_async_context(anyio.create_task_group())
                    headers = self._injection.headers
                    session = HttpSession(
                        self.config.url, http, tasks, CLIENT_INFO, headers=headers
                    )
                    stack.push_async_callback(session.close)
                    with anyio.fail_after(self._connect):
                        await session.initialize()
                except Exception as err:
                    await stack.aclose()
                    raise NotServing(self.name, describe(err)) from err
                yield session
                return
            relay = StderrRelay(self.name)
            stack.callback(relay.release)
            try:
                client = await self._stdio(stack, relay)
            except Exception as err:
                await stack.aclose()  # the process is stopped: its stderr ends
                said = await anyio.to_thread.run_sync(relay.last_line, STDERR_WAIT)
                raise NotServing(self.name, stdio_failure(err, said)) from err
            relay.serving()
            yield _StdioSession(client)

    async def _stdio(self, stack: AsyncExitStack, relay: StderrRelay) -> ClientSession:
        """Start the stdio server (its stderr into ``relay``) and initialize its session."""
        assert self.config.command is not None
        params = StdioServerParameters(
            command=self.config.command,
            args=list(self.config.args),
            env={**self.config.env, **self._injection.env} or None,
            cwd=self.config.cwd,
        )
        try:
            read, write = await stack.enter_async_context(stdio_client(params, errlog=relay.file))
        finally:
            relay.release()  # the process holds its own copy: EOF once it has exited
        client = await stack.enter_async_context(
            ClientSession(read, _Outbound(write), client_info=CLIENT_INFO)
        )
        with anyio.fail_after(self._connect):
            await client.initialize()
        return client

    async def probe(self) -> tuple[types.Tool, ...]:
        """Open a session, list the tools, close it: what ``mcp-gateway check`` asks of
        each upstream. Raises :class:`NotServing` naming the upstream and the cause."""
        async with self._open() as session:
            try:
                with anyio.fail_after(self._connect):
                    return await _list_all(session)
            except Exception as err:
                raise NotServing(self.name, f"tools/list failed: {describe(err)}") from err

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep a session open until stopped; ``started`` after the first attempt.

        A failure is logged once (a warning with its cause) and retried with backoff
        (0.5 s doubling to :data:`MAX_BACKOFF`); the same failure again is logged at
        debug only, a different one or the recovery at warning/info."""
        started = False
        delay = 0.0
        while not self._stopping:
            try:
                async with self._open() as session:
                    self.tools = await _list_all(session)
                    self._session = session
                    self.sessions_opened += 1
                    self._ready.set()
                    self._served()
                    delay = 0.0  # a session that worked is reopened at once when lost
                    if not started:
                        started = True
                        task_status.started()
                    await self._watch(session)
            except Exception as err:  # an upstream that fails is retried, never fatal
                delay = min(max(delay * 2, 0.5), MAX_BACKOFF)
                self._failed(err, delay)
            finally:  # no await in here: a set _ready always means a live _session
                self._session = None
                if self._ready.is_set():
                    self._ready = anyio.Event()
                self._lost = anyio.Event()
            if not started:
                started = True
                task_status.started()
            if delay and not self._stopping:
                with anyio.move_on_after(delay):
                    await self._stopped.wait()

    async def _watch(self, session: Session) -> None:
        """Until the session is lost or stopped: ping it every :data:`PING_SECONDS`; one
        that does not answer within :data:`PING_TIMEOUT` is lost (reconnected, and not
        serving meanwhile), so ``/readyz`` tells a server that went away."""
        while not self._lost.is_set():
            with anyio.move_on_after(PING_SECONDS):
                await self._lost.wait()
            if self._lost.is_set():
                return
            try:
                with anyio.fail_after(PING_TIMEOUT):
                    await session.ping()
            except Exception as err:
                raise NotServing(self.name, f"ping failed: {describe(err)}") from err

    def _failed(self, err: Exception, delay: float) -> None:
        cause = err.cause if isinstance(err, NotServing) else describe(err)
        self.failure = cause
        if cause == self._logged:
            log.debug("MCP upstream %s still not serving: %s", self.name, cause)
            return
        self._logged = cause
        log.warning(
            "MCP upstream %s is not serving: %s (retrying in %g s, backing off to %g s)",
            self.name,
            cause,
            delay,
            MAX_BACKOFF,
        )

    def _served(self) -> None:
        if self._logged is not None:
            log.warning("MCP upstream %s is serving again (%d tools)", self.name, len(self.tools))
        else:
            log.info("MCP upstream %s is serving (%d tools)", self.name, len(self.tools))
        self.failure = self._logged = None

    def stop(self) -> None:
        """End the session (cleanly, in :meth:`run`) and refuse further calls."""
        self._stopping = True
        self._stopped.set()
        self._lost.set()
        self._ready.set()  # wake waiting callers: they find no session and give up

    async def session(self) -> Session:
        """The live session, waiting (bounded) for a reconnect in progress."""
        with anyio.move_on_after(self._wait):
            while self._session is None and not self._stopping:
                await self._ready.wait()
        if self._session is None:
            raise Unavailable("upstream.unavailable", f"MCP server {self.name} is not connected")
        held = self._injection
        if held.due() and held.headers and self._credential is not None:
            fresh = await self._credential()  # renewed in place: the next request sends it
            held.headers.update(fresh.headers)
            self._injection = replace(fresh, headers=held.headers)
        return self._session

    def _mark_lost(self, session: Session) -> None:
        if self._session is session:
            self._session = None
            self._ready = anyio.Event()
            self._lost.set()

    async def _request(self, send: Callable[[Session], Awaitable[T]]) -> T:
        """``send`` on the live session; once more, on a new session, if it never got
        there. A transport failure, or an answer that can no longer come (the connection
        closed, a response stream that could not be resumed), marks the session lost and
        raises :class:`Unavailable`; an error the upstream answered is raised as it is (an
        :class:`MCPError`)."""
        for retry in (False, True):
            session = await self.session()
            try:
                return await send(session)
            except NotDelivered as err:
                self._mark_lost(session)
                if retry:
                    raise Unavailable("upstream.unavailable", f"{self.name}: {err}") from err
                log.info("MCP upstream %s: request not delivered (%s), again", self.name, err)
            except MCPError as err:
                if err.code != types.CONNECTION_CLOSED:
                    raise
                self._mark_lost(session)  # the request got there: it is not sent again
                log.warning("MCP upstream %s: %s", self.name, err.error.message)
                raise Unavailable("upstream.closed", f"{self.name}: {err.error.message}") from err
            except Exception as err:  # a transport failure after sending: may have run
                self._mark_lost(session)
                raise Unavailable("upstream.unavailable", f"{self.name}: {describe(err)}") from err
        raise AssertionError("unreachable")  # pragma: no cover

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, meta: Mapping[str, Any] | None
    ) -> types.CallToolResult:
        """Call ``name`` upstream (see :meth:`_request` for what a failure raises), within
        the server's ``call_timeout``: past it the call is cut off, the session is
        renewed (the call may still run there) and :class:`Unavailable` is raised."""
        session: Session | None = None

        async def call(live: Session) -> types.CallToolResult:
            nonlocal session
            session = live
            return await live.call_tool(name, arguments, meta)

        with anyio.move_on_after(self.config.call_timeout):
            return await self._request(call)
        if session is not None:
            self._mark_lost(session)
        raise Unavailable(
            "upstream.timeout",
            f"{self.name}: no answer to {name} within {self.config.call_timeout:g} s",
        )


async def _list_all(session: Session) -> tuple[types.Tool, ...]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await session.list_tools(cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(tools)


def stdio_failure(err: BaseException, stderr: str | None) -> str:
    """Why a stdio server did not start: the error, and the last line it wrote."""
    if isinstance(err, MCPError) and err.code == types.CONNECTION_CLOSED:
        cause = "the process exited before initializing"
    elif isinstance(err, TimeoutError):
        cause = "no answer to initialize in time"
    else:
        cause = describe(err)
    return f"{cause} (stderr: {stderr})" if stderr else cause


def describe(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup) and err.exceptions:
        return describe(err.exceptions[0])
    return f"{type(err).__name__}: {err}"
