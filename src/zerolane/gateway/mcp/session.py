"""One agent's MCP session through the gateway and the upstream sessions it owns.

Each agent session has its own session with each upstream server (a link), opened
when the agent initializes with the capabilities the agent declared (so an upstream
asks for sampling, elicitation or roots only of an agent that can answer), reopened
when lost, and ended with the agent's session: one agent's subscriptions, log level
or server-side state never reach another. HTTP links share each upstream's
connection pool.

What an upstream sends the agent is relayed to this session only. During a request,
the upstream's notifications and requests in that request's stream go to the agent
on the POST's stream (:class:`Outbox`); anything else goes on the agent's GET stream.
A server request is relayed under an id of the gateway's (``zl-<n>``) and its answer
relayed back under the upstream's; one the agent did not declare it can take, or that
has no stream to go on, is answered with an error at once, never left to time out.
Notifications are relayed only when the gateway knows what they carry:
``notifications/resources/updated`` only for a URI the task may read.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from zerolane.errors import Unavailable
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.credentials import Injection, UpstreamCredentials
from zerolane.gateway.mcp.events import StreamLogs
from zerolane.gateway.mcp.link import Link, connect
from zerolane.gateway.mcp.mapping import ToolRoute
from zerolane.gateway.mcp.upstream import NotServing
from zerolane.gateway.mcp.view import View
from zerolane.tokens.rfc9068 import TaskTokenClaims

log = logging.getLogger(__name__)

#: server requests and the client capability an agent must declare to be sent one
SERVER_REQUESTS = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
#: the upstream notifications relayed to the agent (others are dropped)
RELAYED = frozenset(
    {
        "notifications/progress",
        "notifications/message",
        "notifications/cancelled",
        "notifications/resources/updated",
        "notifications/resources/list_changed",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/elicitation/complete",
    }
)
#: server requests waiting for the agent's answer, per session, at most
MAX_PENDING = 256
#: how long an agent's initialize waits for its upstream sessions to open (the others
#: go on opening; a request to one waits for it)
OPEN_SECONDS = 5.0
#: messages waiting for the agent on one stream; a stream full for this long drops
MAX_QUEUED = 256
PUT_SECONDS = 5.0
METHOD_NOT_FOUND = -32601

OnMessage = Callable[[dict[str, Any]], Awaitable[None]]
#: whether the task may read a URI of a server (filters resources/updated)
MayRead = Callable[["AgentSession", str, str], Awaitable[bool]]


def client_capabilities(offered: object) -> dict[str, Any]:
    """What upstreams are told of the agent's capabilities: ``sampling``,
    ``elicitation`` and ``roots`` with only the flags the 2025-11-25 schema defines
    (the gateway relays those requests; an agent's other keys are not a channel)."""
    if not isinstance(offered, dict):
        return {}
    kept: dict[str, Any] = {}
    for name, flags in (("sampling", ("context", "tools")), ("elicitation", ("form", "url"))):
        value = offered.get(name)
        if isinstance(value, dict):
            kept[name] = {flag: {} for flag in flags if isinstance(value.get(flag), dict)}
    roots = offered.get("roots")
    if isinstance(roots, dict):
        kept["roots"] = {"listChanged": True} if roots.get("listChanged") is True else {}
    return kept


def _progress_token(message: dict[str, Any], *, key: str = "meta") -> str | None:
    """The progress token of a request (``params._meta.progressToken``) or of a
    progress notification (``params.progressToken``), as a dictionary key."""
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    holder = params.get("_meta") if key == "meta" else params
    token = holder.get("progressToken") if isinstance(holder, dict) else None
    return (
        json.dumps(token) if isinstance(token, str | int) and not isinstance(token, bool) else None
    )


def id_key(value: object) -> str:
    """A request id as a dictionary key (1 and "1" differ)."""
    return json.dumps(value)


class Outbox:
    """The messages for the agent on one SSE stream (a POST's answer, or the GET stream)."""

    def __init__(self) -> None:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](MAX_QUEUED)
        self._send: MemoryObjectSendStream[dict[str, Any]] = send
        self.receive: MemoryObjectReceiveStream[dict[str, Any]] = receive

    async def put(self, message: dict[str, Any]) -> bool:
        """Queue ``message``; False when the stream is closed or stayed full."""
        with anyio.move_on_after(PUT_SECONDS):
            try:
                await self._send.send(message)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return False
            return True
        log.warning("MCP agent stream full: a message was dropped")
        return False

    def close(self) -> None:
        """No more messages: the reader sees the stream end once it has read them."""
        self._send.close()

    def discard(self) -> None:
        """Close both ends (a stream nobody reads)."""
        self._send.close()
        self.receive.close()


@dataclass(slots=True)
class InFlight:
    """An agent request being relayed: its upstream, its stream, how to cancel it."""

    server: str
    outbox: Outbox
    scope: anyio.CancelScope


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """What the agent said of itself in ``initialize``."""

    capabilities: dict[str, Any]
    protocol_version: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Held:
    link: Link
    stop: anyio.Event
    #: the upstream credential it was opened with (HTTP: renewed in place)
    injection: Injection = field(default_factory=Injection)


class AgentSession:
    """One agent session: bound to one task, owning one link per upstream server."""

    def __init__(
        self,
        session_id: str,
        claims: TaskTokenClaims,
        client: ClientFacts,
        *,
        servers: tuple[UpstreamConfig, ...],
        pools: dict[str, aiohttp.ClientSession],
        may_read: MayRead,
        connect_seconds: float,
        catalog: Callable[[], Mapping[str, ToolRoute]] = dict,
        credentials: UpstreamCredentials | None = None,
    ) -> None:
        self.id = session_id
        self.claims = claims
        self.client = client
        self.view = View(servers, catalog)
        self.last_used = time.monotonic()
        self._servers = {server.name: server for server in servers}
        self._pools = pools
        self._may_read = may_read
        self._connect_seconds = connect_seconds
        self._credentials = credentials
        self._held: dict[str, _Held] = {}
        self._locks = {name: anyio.Lock() for name in self._servers}
        self._failures: dict[str, str] = {}
        #: gateway id -> (server, its id, the upstream session that asked)
        self._pending: dict[str, tuple[str, object, Link | None]] = {}
        #: requests of this session running now (bounded by the transport)
        self.working = 0
        self._ids = itertools.count(1)
        #: progress tokens of pending server requests -> (server, gateway id)
        self._progress: dict[str, tuple[str, str]] = {}
        self.in_flight: dict[str, InFlight] = {}
        self._opening: set[anyio.CancelScope] = set()  # links being opened at initialize
        self.stream: Outbox | None = None  # the agent's GET stream, when open
        self.logs = StreamLogs()  # its answers' SSE streams, resumable
        #: the URIs this session subscribed to, and the server of each
        self.subscriptions: dict[str, str] = {}
        self._group: TaskGroup | None = None
        self._closed = anyio.Event()

    @property
    def task_id(self) -> str:
        return self.claims.task_id

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def touch(self, claims: TaskTokenClaims | None = None) -> None:
        self.last_used = time.monotonic()
        if claims is not None:
            self.claims = claims

    # --- lifetime ---------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold the session's links until :meth:`close`; each is ended cleanly."""
        async with anyio.create_task_group() as group:
            self._group = group
            task_status.started()
            await self._closed.wait()
            for held in self._held.values():
                held.stop.set()
        self._group = None

    def close(self) -> None:
        """End the session: its links end, pending server requests are refused upstream
        by the links' ending, the GET stream closes."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        for flight in self.in_flight.values():
            flight.scope.cancel()
        for scope in self._opening:
            scope.cancel()
        self.logs.end_all()

    def spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work`` in the session (it outlives the HTTP request that started it,
        not the session); :class:`Unavailable` once the session has ended."""
        if self._group is None or self.closed:
            raise Unavailable("mcp.session_ended", "the MCP session has ended")

        async def guarded() -> None:
            try:
                await work()
            except Exception:  # one request's failure never ends the others
                log.exception("MCP session %s: a task failed", self.id[:8])

        self._group.start_soon(guarded)

    async def open_links(self, wait_seconds: float = OPEN_SECONDS) -> None:
        """Open a link to every upstream at once, waiting at most ``wait_seconds`` for
        them (a slow one goes on opening in the session); one that fails is noted and
        opened again when used."""
        left = len(self._servers)
        opened = anyio.Event()

        async def attempt(name: str) -> None:
            nonlocal left
            with anyio.CancelScope() as scope:  # the session's end cancels it
                self._opening.add(scope)
                try:
                    await self._try_link(name)
                finally:
                    self._opening.discard(scope)
                    left -= 1
                    if not left:
                        opened.set()

        for name in self._servers:
            self.spawn(functools.partial(attempt, name))
        with anyio.move_on_after(wait_seconds):
            await opened.wait()
        self.view.resource_servers = tuple(
            name
            for name, link in self.links.items()
            if isinstance(link.result.get("capabilities"), dict)
            and "resources" in link.result["capabilities"]
        )

    async def _try_link(self, name: str) -> None:
        try:
            await self.link(name)
        except Unavailable as err:
            log.info("MCP session %s: upstream %s not opened: %s", self.id[:8], name, err.message)

    @property
    def links(self) -> dict[str, Link]:
        """The links open now (by server name)."""
        return {name: held.link for name, held in self._held.items() if not held.link.closed}

    def failure(self, name: str) -> str | None:
        return self._failures.get(name)

    async def link(self, name: str) -> Link:
        """The open link to server ``name``, opened (again) when there is none;
        :class:`Unavailable` when it cannot be."""
        held = self._held.get(name)
        if held is not None and not held.link.closed and not held.injection.due():
            return held.link
        async with self._locks[name]:
            held = self._held.get(name)
            if held is not None and not held.link.closed and await self._renewed(name, held):
                return held.link
            if held is not None:
                held.stop.set()
                del self._held[name]
            if self._group is None or self.closed:
                raise Unavailable("upstream.unavailable", "the MCP session has ended")
            try:
                link: Link = await self._group.start(self._hold, self._servers[name])
            except NotServing as err:
                self._failures[name] = err.cause
                raise Unavailable("upstream.unavailable", str(err)) from err
            self._failures.pop(name, None)
            return link

    async def _renewed(self, name: str, held: _Held) -> bool:
        """Whether ``held`` serves on: its credential is not due, or was renewed in place
        (HTTP headers). A stdio server's is fixed at its start: it is restarted, once no
        request of the session is in flight to it."""
        if not held.injection.due() or self._credentials is None:
            return True
        if not held.injection.headers:
            return any(flight.server == name for flight in self.in_flight.values())
        fresh = await self._credentials.for_link(self._servers[name], self.claims)
        held.injection.headers.update(fresh.headers)
        held.injection = replace(fresh, headers=held.injection.headers)
        return True

    async def _hold(
        self, server: UpstreamConfig, *, task_status: TaskStatus[Link] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        stop = anyio.Event()
        injection = Injection()
        if self._credentials is not None:  # Unavailable (upstream.credential): no link
            injection = await self._credentials.for_link(server, self.claims)

        async def unsolicited(message: dict[str, Any]) -> None:
            await self._from_upstream(server.name, message, None)

        started = False
        try:
            async with connect(
                server,
                pool=self._pools.get(server.name),
                capabilities=self.client.capabilities,
                on_unsolicited=unsolicited,
                connect_seconds=self._connect_seconds,
                headers=injection.headers,
                env=injection.env,
            ) as link:
                self._held[server.name] = _Held(link, stop, injection)
                task_status.started(link)
                started = True
                await stop.wait()
        except Exception as err:  # ending it failed: logged, never into the session
            if not started:
                raise
            log.warning("MCP upstream %s: its session ended with an error: %s", server.name, err)

    # --- relaying ---------------------------------------------------------------------

    def on_message(self, server: str, outbox: Outbox) -> OnMessage:
        """What relays the upstream's messages in a request's stream to ``outbox``."""

        async def relay(message: dict[str, Any]) -> None:
            await self._from_upstream(server, message, outbox)

        return relay

    async def _from_upstream(
        self, server: str, message: dict[str, Any], outbox: Outbox | None
    ) -> None:
        method = message.get("method")
        if not isinstance(method, str):
            return  # a stray answer: nothing to relay
        if "id" in message:
            await self._server_request(server, method, message, outbox)
            return
        if method not in RELAYED:
            log.debug("MCP upstream %s: notification %s not relayed", server, method[:64])
            return
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        if method == "notifications/resources/updated":
            uri = params.get("uri")
            if not isinstance(uri, str) or not await self._may_read(self, server, uri):
                return
        if method == "notifications/cancelled":  # the upstream withdrew its own request
            found = self._pending_of(server, params.get("requestId"))
            if found is None:
                return
            del self._pending[found]
            message = {**message, "params": {**params, "requestId": found}}
        target = outbox or self.stream
        if target is not None:
            await target.put(message)

    def _pending_of(self, server: str, upstream_id: object) -> str | None:
        for gateway_id, (owner, their_id, _) in self._pending.items():
            if owner == server and their_id == upstream_id:
                return gateway_id
        return None

    def _stream_for(self, server: str, outbox: Outbox | None) -> Outbox | None:
        """Where a server request goes: its request's stream, else the GET stream, else
        the stream of the one request in flight to that server."""
        if outbox is not None:
            return outbox
        if self.stream is not None:
            return self.stream
        flights = [flight for flight in self.in_flight.values() if flight.server == server]
        return flights[0].outbox if len(flights) == 1 else None

    async def _server_request(
        self, server: str, method: str, message: dict[str, Any], outbox: Outbox | None
    ) -> None:
        capability = SERVER_REQUESTS.get(method)
        stream = self._stream_for(server, outbox)
        if capability is None or capability not in self.client.capabilities:
            await self._answer_upstream(server, message["id"], f"the agent does not take {method}")
            return
        if stream is None:
            why = f"{method}: the agent has no open stream to receive it"
            await self._answer_upstream(server, message["id"], why)
            return
        if len(self._pending) >= MAX_PENDING:
            why = f"{method}: {MAX_PENDING} requests already wait for the agent"
            await self._answer_upstream(server, message["id"], why)
            return
        gateway_id = f"zl-{next(self._ids)}"
        held = self._held.get(server)
        self._pending[gateway_id] = (server, message["id"], held.link if held else None)
        token = _progress_token(message)
        if token is not None:  # the agent's progress on it goes back to that server
            self._progress[token] = (server, gateway_id)
        if not await stream.put({**message, "id": gateway_id}):
            del self._pending[gateway_id]
            await self._answer_upstream(
                server, message["id"], f"{method}: the agent's stream closed"
            )

    async def _answer_upstream(self, server: str, upstream_id: object, why: str) -> None:
        error = {"code": METHOD_NOT_FOUND, "message": f"zerolane: {why}"}
        await self._respond(server, {"jsonrpc": "2.0", "id": upstream_id, "error": error})

    async def _respond(
        self, server: str, message: dict[str, Any], link: Link | None = None
    ) -> None:
        """Answer a request of ``server``'s on ``link`` (the session that asked; by
        default the open one): never on a newer session, where its id means another."""
        if link is None:
            held = self._held.get(server)
            link = held.link if held is not None else None
        if link is None or link.closed:
            return
        try:
            await link.respond(message)
        except Exception as err:  # the upstream went away: its request is moot
            log.info("MCP upstream %s: an answer could not be relayed: %s", server, err)

    async def agent_answered(self, message: dict[str, Any]) -> bool:
        """Relay the agent's answer to a server request; False for an id not pending."""
        pending = self._pending.pop(str(message.get("id")), None)
        self._progress = {k: v for k, v in self._progress.items() if v[1] in self._pending}
        if pending is None or not isinstance(message.get("id"), str):
            return False
        server, upstream_id, link = pending
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": upstream_id}
        if isinstance(message.get("error"), dict):
            answer["error"] = message["error"]
        else:
            answer["result"] = message.get("result")
        await self._respond(server, answer, link)
        return True

    async def agent_progress(self, message: dict[str, Any]) -> bool:
        """Relay the agent's progress on a server request to the server that asked
        (matched by its progress token); False when no pending request has it."""
        token = _progress_token(message, key="params")
        found = self._progress.get(token) if token is not None else None
        if found is None or found[1] not in self._pending:
            return False
        held = self._held.get(found[0])
        if held is None or held.link.closed:
            return False
        params = message.get("params")
        fields = ("progressToken", "progress", "total", "message")
        kept = {k: params[k] for k in fields if isinstance(params, dict) and k in params}
        try:
            await held.link.notify("notifications/progress", kept)
        except Exception as err:
            log.info("MCP upstream %s: progress not relayed: %s", found[0], err)
            return False
        return True

    async def notify_all(self, method: str, params: dict[str, Any] | None) -> None:
        """Send a client notification to every open link (roots changed)."""
        for name, link in self.links.items():
            try:
                await link.notify(method, params)
            except Exception as err:
                log.info("MCP upstream %s: %s not relayed: %s", name, method, err)

    def cancel(self, request_id: object) -> bool:
        """Cancel the agent's request ``request_id`` (its link tells the upstream)."""
        flight = self.in_flight.get(id_key(request_id))
        if flight is None:
            return False
        flight.scope.cancel()
        return True
