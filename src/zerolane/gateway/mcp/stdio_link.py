"""One MCP client session with a stdio server: a process of its own, raw JSON-RPC relayed.

The process is started with the MCP SDK's ``stdio_client`` (its environment, working
directory and shutdown: stdin closed, then the process tree stopped), its stderr
relayed as :class:`~zerolane.gateway.mcp.stderr.StderrRelay` does. One task reads the
server's messages and routes each: an answer to the request waiting for it, a
``notifications/progress`` to the request whose ``_meta.progressToken`` it names, a
``ping`` answered here, and everything else to the link's ``on_unsolicited`` (called in
order, from a task of its own, so a slow consumer never holds up the answers).

A request written to a session whose process had already exited raises
:class:`NotDelivered`; one written before the process exited without answering raises
``MCPError(CONNECTION_CLOSED)``: it may have run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import MCPError, StdioServerParameters, stdio_client
from mcp.shared.message import SessionMessage

from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.handshake import (
    CANCELLED,
    PROGRESS,
    OnMessage,
    accepted,
    cancelled,
    initialize_params,
    is_answer,
    is_ping,
    pong,
    progress_token,
    token_of,
)
from zerolane.gateway.mcp.stderr import StderrRelay
from zerolane.gateway.mcp.streamable import CANCEL_SECONDS, NotDelivered
from zerolane.gateway.mcp.upstream import (
    CLIENT_INFO,
    STDERR_WAIT,
    NotServing,
    stdio_failure,
)

log = logging.getLogger(__name__)

#: the server's messages held for one consumer (a request, or the unsolicited ones)
#: before the reader waits for it
MAX_QUEUED = 256

Message = dict[str, Any]


class Writer(Protocol):
    """The stdio transport's write stream."""

    async def send(self, item: SessionMessage, /) -> None: ...


class StdioLink:
    """An initialized MCP session with one stdio server process."""

    def __init__(self, name: str, write: Writer, tasks: TaskGroup):
        self._name = name
        self._write_stream = write
        self._tasks = tasks
        self._next_id = 0
        self._closed = False
        self._result: Message = {}
        #: the requests waiting for their answer, by id
        self._pending: dict[int, MemoryObjectSendStream[Message]] = {}
        #: the request each progress token in use belongs to
        self._tokens: dict[str | int, int] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def result(self) -> Message:
        return self._result

    @property
    def closed(self) -> bool:
        return self._closed

    def end(self) -> None:
        """The session is over (its process is being stopped)."""
        self._closed = True

    async def open(self, capabilities: Mapping[str, Any]) -> Message:
        """Initialize the session (then ``notifications/initialized``): the raw result."""
        params = initialize_params(CLIENT_INFO, capabilities)
        self._result = accepted(await self.request("initialize", params, _drop))
        await self.notify("notifications/initialized", None)
        return self._result

    async def request(
        self, method: str, params: Mapping[str, Any] | None, on_message: OnMessage
    ) -> Message:
        """Send one request (the link's own id) and return the raw answer; the progress
        notifications for its progress token go to ``on_message`` first, in order."""
        if self._closed:
            raise NotDelivered("closed", "the stdio session has ended")
        self._next_id += 1
        request_id = self._next_id
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        send, receive = anyio.create_memory_object_stream[Message](MAX_QUEUED)
        self._pending[request_id] = send
        token = progress_token(params)
        if token is not None:
            self._tokens.setdefault(token, request_id)
        try:
            with receive:
                await self._write(message)
                return await self._answer(receive, request_id, on_message)
        except NotDelivered:
            raise
        except BaseException:
            if method != "initialize":
                await self._cancel(request_id)
            raise
        finally:
            del self._pending[request_id]
            send.close()
            if token is not None and self._tokens.get(token) == request_id:
                del self._tokens[token]

    async def notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        """Send a client notification."""
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._write(message)

    async def respond(self, message: Mapping[str, Any]) -> None:
        """Send the client's answer to a request of the server's (the server's id)."""
        await self._write(message)

    async def _answer(
        self, receive: MemoryObjectReceiveStream[Message], request_id: int, on_message: OnMessage
    ) -> Message:
        async for found in receive:
            if is_answer(found) and found.get("id") == request_id:
                return found
            await on_message(found)
        raise MCPError(types.CONNECTION_CLOSED, "the stdio server exited before answering")

    async def _write(self, message: Mapping[str, Any]) -> None:
        if self._closed:
            raise NotDelivered("closed", "the stdio session has ended")
        item = SessionMessage(types.jsonrpc_message_adapter.validate_python(message))
        try:
            await self._write_stream.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as err:
            self._closed = True
            raise NotDelivered("closed", "the stdio session has ended") from err

    async def _cancel(self, request_id: int) -> None:
        """Tell the server a request was abandoned (the caller was cancelled or failed)."""
        shield = anyio.CancelScope(shield=True)
        with shield, anyio.move_on_after(CANCEL_SECONDS), contextlib.suppress(NotDelivered):
            await self.notify(CANCELLED, cancelled(request_id))

    async def _pong(self, message: Message) -> None:
        with anyio.move_on_after(CANCEL_SECONDS), contextlib.suppress(NotDelivered):
            await self._write(pong(message))

    async def read(
        self,
        read: AsyncIterator[SessionMessage | Exception],
        unsolicited: MemoryObjectSendStream[Message],
    ) -> None:
        """Route every message the server writes, until its stdout ends."""
        try:
            async with unsolicited:
                async for item in read:
                    if isinstance(item, Exception):
                        log.warning("MCP upstream %s sent an unreadable line: %s", self._name, item)
                        continue
                    found = item.message.model_dump(by_alias=True, mode="json", exclude_unset=True)
                    await self._route(found, unsolicited)
        finally:
            self._closed = True
            for waiting in self._pending.values():
                waiting.close()  # their requests end: no answer can come

    async def _route(self, message: Message, unsolicited: MemoryObjectSendStream[Message]) -> None:
        target: MemoryObjectSendStream[Message] | None = None
        if is_answer(message):
            request_id = message.get("id")
            target = self._pending.get(request_id) if type(request_id) is int else None
            if target is None:
                log.debug("MCP upstream %s: an answer to no request (%r)", self._name, request_id)
                return
        elif is_ping(message):
            self._tasks.start_soon(self._pong, message)
            return
        elif message.get("method") == PROGRESS and "id" not in message:
            token = token_of(message.get("params"), "progressToken")
            request_id = self._tokens.get(token) if token is not None else None
            target = self._pending.get(request_id) if request_id is not None else None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await (target or unsolicited).send(message)  # else its consumer is gone


async def _drop(message: Message) -> None:
    """What a server sends while initializing is not relayed."""


async def _deliver(receive: MemoryObjectReceiveStream[Message], on_message: OnMessage) -> None:
    """Hand each unsolicited message to ``on_message``, in order; its failures are
    logged (a consumer's bug must not end the session)."""
    async with receive:
        async for message in receive:
            try:
                await on_message(message)
            except Exception:
                log.exception("MCP upstream: a server message was not relayed")


@asynccontextmanager
async def connect_stdio(
    config: UpstreamConfig,
    *,
    capabilities: Mapping[str, Any],
    on_unsolicited: OnMessage,
    connect_seconds: float,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[StdioLink]:
    """A new process of ``config``'s command (``env`` merged over its configured
    environment), initialized; stopped on leaving.
    :class:`NotServing` (with the last line of its stderr) when it does not start."""
    assert config.command is not None
    relay = StderrRelay(config.name)
    async with AsyncExitStack() as stack:
        stack.callback(relay.release)
        try:
            params = StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env={**config.env, **(env or {})} or None,
                cwd=config.cwd,
            )
            try:
                read, write = await stack.enter_async_context(
                    stdio_client(params, errlog=relay.file)
                )
            finally:
                relay.release()  # the process holds its own copy: EOF once it has exited
            tasks = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tasks.cancel_scope.cancel)  # the reader ends with the session
            link = StdioLink(config.name, write, tasks)
            stack.callback(link.end)
            queued, receive = anyio.create_memory_object_stream[Message](MAX_QUEUED)
            tasks.start_soon(link.read, read, queued)
            tasks.start_soon(_deliver, receive, on_unsolicited)
            with anyio.fail_after(connect_seconds):
                await link.open(capabilities)
        except Exception as err:
            await stack.aclose()  # the process is stopped: its stderr ends
            said = await anyio.to_thread.run_sync(relay.last_line, STDERR_WAIT)
            raise NotServing(config.name, stdio_failure(err, said)) from err
        relay.serving()
        yield link
