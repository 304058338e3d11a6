"""A lean MCP client session over streamable HTTP (aiohttp): the gateway's upstream hop.

One session (``initialize`` once, then the ``Mcp-Session-Id`` and
``MCP-Protocol-Version`` headers on every request) over a pool of keep-alive
connections, so concurrent requests share it and sequential ones reuse a connection.
It speaks the handshake protocol revisions (2024-11-05 to 2025-11-25) and relays raw
JSON-RPC messages (plain dicts: fields it does not know pass as they are). A request is
answered as JSON or as an SSE stream; the other messages of that stream (progress,
logging, the server's own requests) go to the request's caller in order, except the
server's ``ping``, answered here. The session's GET stream (:meth:`HttpSession.listen`)
carries what the server sends unrelated to a request. Redirects are not followed and
nothing is taken from the environment (no proxy, no netrc): the connection is the
gateway's own and carries none of the agent's credentials.

A server that can resume its streams (2025-11-25) opens them with a priming event (an
id, no data) and may close a request's stream before its answer: the stream is then
resumed with a GET carrying ``Last-Event-ID`` (after the server's ``retry``), never by
sending the request again, and within bounds (see :meth:`HttpSession._resume`).

A request that provably never reached the server raises :class:`NotDelivered` (the
connection could not be made, the server answered 404 for the session: it no longer
knows it and processed nothing, or the session had already ended); the caller may send
it again on a new session. Any other failure may come after the server got the request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import MCPError

from zerolane.gateway.mcp.handshake import (
    CANCELLED,
    OnMessage,
    accepted,
    cancelled,
    initialize_params,
    is_answer,
    is_ping,
    pong,
    result_of,
)
from zerolane.gateway.mcp.sse import EventStream

log = logging.getLogger(__name__)

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
LAST_EVENT_ID_HEADER = "Last-Event-ID"
#: the largest JSON body or SSE event read from an upstream
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: how long the rest of an SSE stream is read after its answer, to keep the connection
DRAIN_SECONDS = 1.0
#: idle connections are dropped before servers usually drop them (uvicorn: 5 s), so a
#: request is rarely sent on a connection the server is closing
KEEPALIVE_SECONDS = 2.0
CANCEL_SECONDS = 1.0
#: resuming a response stream the server closed before its answer: the wait when the
#: server gave no ``retry`` (as the MCP SDKs), the longest ``retry`` honoured, the
#: connections made at most, and how many in a row may bring no new event
DEFAULT_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
MAX_RESUMES = 1000
MAX_RESUME_FAILURES = 3
#: a GET stream open this long is no failed attempt when it ends without a message
QUIET_SECONDS = 30.0
#: the longest event id sent back as ``Last-Event-ID`` (visible ASCII and spaces only)
MAX_EVENT_ID_CHARS = 1024
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")
_VISIBLE = re.compile(r"[\x21-\x7e]+")


class NotDelivered(Exception):
    """The request never reached the upstream server (safe to send again)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def http_session(limit: int = 100) -> aiohttp.ClientSession:
    """The connection pool of one upstream (the MCP SDK's client timeouts), at most
    ``limit`` connections."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=KEEPALIVE_SECONDS),
        # connect: the wait for a pooled connection and the connect itself, bounded so a
        # pool that is full (every connection held) fails a request instead of hanging it
        timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=300),
        trust_env=False,
    )


class HttpSession:
    """One MCP session with a streamable HTTP server, shared by concurrent requests.

    :meth:`request` relays one raw JSON-RPC request and hands every other message of its
    stream to the caller; :meth:`listen` reads the session's GET stream (the server's
    unsolicited messages); :meth:`respond` and :meth:`notify` send the client's answers
    and notifications. :meth:`initialize`, :meth:`list_tools` and :meth:`call_tool` are
    what the gateway's own shared session asks (it declares no capabilities, so the
    server's requests on it are refused).
    """

    def __init__(
        self,
        url: str,
        http: aiohttp.ClientSession,
        tasks: TaskGroup,
        client_info: types.Implementation,
        *,
        name: str = "",
        capabilities: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._url = url
        #: sent on every request, read at each (the gateway's credential for the upstream)
        self._extra: Mapping[str, str] = headers if headers is not None else {}
        self._http = http
        self._tasks = tasks  # background reads of finished SSE streams
        self._client_info = client_info
        self._capabilities = dict(capabilities or {})
        self._next_id = 0
        self._closed = False
        #: the upstream's configured name
        self.name = name or url
        #: the upstream's raw ``InitializeResult`` (empty until initialized)
        self.result: dict[str, Any] = {}
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        #: set once the session's GET stream is open (the server can send unprompted)
        self.listening = anyio.Event()

    @property
    def closed(self) -> bool:
        """The session is gone (closed, or the server no longer knows it)."""
        return self._closed

    async def open(self) -> dict[str, Any]:
        """Initialize the session (then ``notifications/initialized``): the raw result."""
        params = initialize_params(self._client_info, self._capabilities)
        answer = await self.request("initialize", params, self._refuse, initializing=True)
        raw = accepted(answer)
        self.protocol_version = str(raw["protocolVersion"])
        self.result = raw
        await self.notify("notifications/initialized", None)
        return raw

    async def initialize(self) -> types.InitializeResult:
        return types.InitializeResult.model_validate(await self.open())

    async def ping(self) -> None:
        """Ask the server whether the session is alive (MCP ``ping``)."""
        await self._call("ping", None)

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult:
        raw = await self._call("tools/list", {"cursor": cursor} if cursor else None)
        return types.ListToolsResult.model_validate(raw)

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, meta: Mapping[str, Any] | None
    ) -> types.CallToolResult:
        params: dict[str, Any] = {"name": name}
        if arguments is not None:
            params["arguments"] = arguments
        if meta:
            params["_meta"] = dict(meta)
        raw = await self._call("tools/call", params)
        return types.CallToolResult.model_validate(raw)

    async def close(self) -> None:
        """End the session upstream (DELETE), best effort."""
        self._closed = True
        if self.session_id is None:
            return
        with anyio.move_on_after(CANCEL_SECONDS):
            try:
                async with self._http.delete(self._url, headers=self._headers()):
                    pass
            except (aiohttp.ClientError, OSError) as err:
                log.debug("MCP session %s not deleted: %s", self._url, err)

    # --- relaying ---------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        on_message: OnMessage,
        *,
        initializing: bool = False,
    ) -> dict[str, Any]:
        """Send one request (the session's own id) and return the raw answer (``result``
        or ``error``); every other message of its stream goes to ``on_message``, in order
        (the server's ``ping`` is answered here). A caller cancelled (or failing) after
        sending it tells the server with ``notifications/cancelled``."""
        if self._closed:
            raise NotDelivered("closed", "the session has ended")
        self._next_id += 1
        request_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response: aiohttp.ClientResponse | None = None
        try:
            response = await self._post(message)
            return await self._answer(response, request_id, on_message, initializing=initializing)
        except NotDelivered:
            if response is not None:
                response.close()
            raise
        except BaseException:
            if response is not None:
                response.close()  # a body not read to its end: the connection is dropped
            if method != "initialize":
                await self._cancel(request_id)  # it may have got there (even mid-POST)
            raise

    async def notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        """Send a client notification."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._send(message, method)

    async def respond(self, message: Mapping[str, Any]) -> None:
        """Send the client's answer to a request of the server's (the server's id)."""
        await self._send(message, "a response")

    async def listen(self, on_message: OnMessage) -> None:
        """Read the session's GET stream (the server's unsolicited messages) into
        ``on_message`` until the session ends; a server that offers none (405) is fine.

        A stream that ends is opened again with ``Last-Event-ID`` after the server's
        ``retry``, within the bounds of a response stream's resumption (see
        :meth:`_resume`): at most :data:`MAX_RESUMES` connections, and
        :data:`MAX_RESUME_FAILURES` in a row that brought nothing new (no message, no
        event id, open less than :data:`QUIET_SECONDS`)."""
        stream = EventStream(MAX_MESSAGE_BYTES)
        failures = 0
        for _ in range(MAX_RESUMES):
            if self._closed:
                return
            last_id = stream.last_event_id
            opened = anyio.current_time()
            heard = await self._listen_once(stream, on_message)
            if heard is None:
                return
            # a stream that brought something, or stayed open a while (then timed out
            # idle, or was closed by a proxy), is no failure
            lasted = anyio.current_time() - opened >= QUIET_SECONDS
            fresh = heard or lasted or stream.last_event_id != last_id
            failures = 0 if fresh else failures + 1
            if failures >= MAX_RESUME_FAILURES:
                log.info("MCP upstream %s: its GET stream keeps ending, not reopened", self.name)
                return
            wait = DEFAULT_RETRY_SECONDS if stream.retry_ms is None else stream.retry_ms / 1000
            if wait > MAX_RETRY_SECONDS:
                log.info(
                    "MCP upstream %s: asks to wait %g s to reopen its GET stream", self.name, wait
                )
                return
            await anyio.sleep(wait)
        log.info("MCP upstream %s: its GET stream was opened %d times", self.name, MAX_RESUMES)

    # --- the wire ---------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {
            **self._extra,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if self.session_id is not None:
            headers[SESSION_HEADER] = self.session_id
        if self.protocol_version is not None:
            headers[VERSION_HEADER] = self.protocol_version
        return headers

    def _stream_headers(self, last_event_id: str) -> dict[str, str]:
        headers = self._headers()
        del headers["Content-Type"]
        headers["Accept"] = "text/event-stream"
        if last_event_id:
            headers[LAST_EVENT_ID_HEADER] = last_event_id
        return headers

    async def _post(self, message: Mapping[str, Any]) -> aiohttp.ClientResponse:
        body = json.dumps(message, separators=(",", ":")).encode()
        try:
            return await self._http.post(
                self._url, data=body, headers=self._headers(), allow_redirects=False
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            raise NotDelivered("connect", str(err)) from err  # no connection: nothing sent

    async def _send(self, message: Mapping[str, Any], what: str) -> None:
        """POST a message that is not a request (expecting 202 Accepted)."""
        if self._closed:
            raise NotDelivered("closed", "the session has ended")
        async with await self._post(message) as response:
            await _read(response)
            if response.status == 404 and self.session_id is not None:
                self._closed = True
                raise NotDelivered("session", "the server no longer knows the session")
            if response.status >= 400:
                raise MCPError(types.INTERNAL_ERROR, f"{what} refused: HTTP {response.status}")

    async def _call(self, method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The result of ``method`` (the server's requests refused); an error raised."""
        return result_of(method, await self.request(method, params, self._refuse))

    async def _cancel(self, request_id: int) -> None:
        """Tell the server a request was abandoned (the caller was cancelled or failed)."""
        failures = (aiohttp.ClientError, OSError, MCPError, NotDelivered)
        shield = anyio.CancelScope(shield=True)
        with shield, anyio.move_on_after(CANCEL_SECONDS), contextlib.suppress(*failures):
            await self.notify(CANCELLED, cancelled(request_id))

    async def _answer(
        self,
        response: aiohttp.ClientResponse,
        request_id: int,
        on_message: OnMessage,
        *,
        initializing: bool,
    ) -> dict[str, Any]:
        """The JSON-RPC answer to ``request_id`` in ``response`` (JSON or SSE)."""
        if response.status == 404 and self.session_id is not None:
            self._closed = True
            raise NotDelivered("session", "the server no longer knows the session")
        if initializing and response.status < 400:
            self.session_id = _session_id(response.headers.get(SESSION_HEADER))
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            message = _parse(await _read(response))
            if message.get("id") != request_id and response.status < 400:
                raise MCPError(types.INTERNAL_ERROR, "the answer is for another request")
            if "error" in message or response.status < 400:
                return message
        if response.status >= 400:
            raise MCPError(types.INTERNAL_ERROR, f"the upstream answered HTTP {response.status}")
        if kind != "text/event-stream":
            raise MCPError(types.INTERNAL_ERROR, f"unexpected content type {kind!r}")
        stream = EventStream(MAX_MESSAGE_BYTES)
        answer = await self._read_stream(response, stream, request_id, on_message)
        if answer is None:
            response.close()  # ended or broken: its connection is not reused
            answer = await self._resume(stream, request_id, on_message)
        return answer

    async def _read_stream(
        self,
        response: aiohttp.ClientResponse,
        stream: EventStream,
        request_id: int,
        on_message: OnMessage,
    ) -> dict[str, Any] | None:
        """The answer to ``request_id`` in one connection of ``stream``; None when the
        connection ended (or broke) without it and ``stream`` may be resumed."""
        try:
            async with contextlib.aclosing(stream.messages(response.content.iter_any())) as events:
                async for data in events:
                    message = _parse(data)
                    if message.get("id") == request_id and is_answer(message):
                        self._drain_later(response)
                        return message
                    if is_ping(message):
                        await self._reply(pong(message))
                    else:
                        await on_message(message)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as err:
            if not stream.last_event_id:
                raise  # not resumable: the caller sees the transport failure
            log.info("MCP upstream %s: response stream broke (%s), resuming", self._url, err)
        return None

    async def _resume(
        self, stream: EventStream, request_id: int, on_message: OnMessage
    ) -> dict[str, Any]:
        """The answer to ``request_id``, read from ``stream`` resumed (2025-11-25: a GET
        with ``Last-Event-ID``, after the server's ``retry``) until it comes.

        The request itself is never sent again. Resumption is bounded: at most
        :data:`MAX_RESUMES` connections, :data:`MAX_RESUME_FAILURES` in a row that brought
        no new event, a ``retry`` of at most :data:`MAX_RETRY_SECONDS`; past a bound, or
        when the server cannot resume (no event id, refused, session gone), the request
        fails with ``CONNECTION_CLOSED``.
        """
        failures = 0
        for _ in range(MAX_RESUMES):
            last_id = stream.last_event_id
            if not last_id:
                raise _lost("the response stream ended without an answer")
            if not _sendable(last_id):
                raise _lost("the response stream ended and its event id cannot be sent back")
            wait = DEFAULT_RETRY_SECONDS if stream.retry_ms is None else stream.retry_ms / 1000
            if wait > MAX_RETRY_SECONDS:
                raise _lost(
                    f"the response stream ended and the server asks to wait {wait:g} s before"
                    f" resuming it (at most {MAX_RETRY_SECONDS:g} s)"
                )
            await anyio.sleep(wait)
            answer = await self._resume_once(stream, request_id, on_message)
            if answer is not None:
                return answer
            failures = 0 if stream.last_event_id != last_id else failures + 1
            if failures >= MAX_RESUME_FAILURES:
                raise _lost(f"the response stream could not be resumed ({failures} attempts)")
        raise _lost(f"the response stream was resumed {MAX_RESUMES} times without an answer")

    async def _resume_once(
        self, stream: EventStream, request_id: int, on_message: OnMessage
    ) -> dict[str, Any] | None:
        """One GET resuming ``stream``: the answer, or None (no answer on it: again)."""
        headers = self._stream_headers(stream.last_event_id)
        try:
            response = await self._http.get(self._url, headers=headers, allow_redirects=False)
        except (aiohttp.ClientConnectionError, OSError) as err:
            log.info("MCP upstream %s: resuming a response stream failed: %s", self._url, err)
            return None
        try:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if response.status >= 500:
                log.info("MCP upstream %s: resuming: HTTP %d", self._url, response.status)
                response.close()
                return None
            if response.status == 404:
                self._closed = True
                raise _lost("the server no longer knows the session; the answer is lost")
            if response.status != 200 or kind != "text/event-stream":
                raise _lost(
                    f"the server refused to resume the response stream (HTTP {response.status},"
                    f" {kind or 'no content type'})"
                )
            answer = await self._read_stream(response, stream, request_id, on_message)
        except BaseException:
            response.close()
            raise
        if answer is None:
            response.close()
        return answer

    async def _listen_once(self, stream: EventStream, on_message: OnMessage) -> bool | None:
        """One connection of the GET stream: whether it brought a message; None when the
        stream is not to be opened again (none offered, refused, the session gone)."""
        if stream.last_event_id and not _sendable(stream.last_event_id):
            log.info("MCP upstream %s: its GET stream's event id cannot be sent back", self.name)
            return None
        headers = self._stream_headers(stream.last_event_id)
        try:
            response = await self._http.get(self._url, headers=headers, allow_redirects=False)
        except (aiohttp.ClientConnectionError, OSError) as err:
            log.info("MCP upstream %s: opening its GET stream failed: %s", self.name, err)
            return False
        heard = False
        try:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if response.status == 405:
                return None  # the server offers no GET stream
            if response.status == 404:
                self._closed = True
                return None
            if response.status >= 500:
                log.info("MCP upstream %s: GET stream: HTTP %d", self.name, response.status)
                return False
            if response.status != 200 or kind != "text/event-stream":
                log.info(
                    "MCP upstream %s: GET stream refused (HTTP %d, %s)",
                    self.name,
                    response.status,
                    kind or "no content type",
                )
                return None
            self.listening.set()
            with contextlib.suppress(aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
                async with contextlib.aclosing(
                    stream.messages(response.content.iter_any())
                ) as events:
                    async for data in events:
                        heard = True
                        message = _parse(data)
                        if is_ping(message):
                            await self._reply(pong(message))
                        else:
                            await on_message(message)
        except MCPError as err:  # an unreadable message, or a ping not answered
            log.warning("MCP upstream %s: GET stream: %s", self.name, err.error.message)
        finally:
            response.close()
        return heard

    def _drain_later(self, response: aiohttp.ClientResponse) -> None:
        try:
            self._tasks.start_soon(_drain, response)
        except RuntimeError:  # the session is closing: no connection to keep
            response.close()

    async def _refuse(self, message: dict[str, Any]) -> None:
        """The server's messages to a session that relays none: its notifications are
        dropped, its requests (sampling, elicitation, roots) refused."""
        if "method" in message and "id" in message:
            error = {"code": types.METHOD_NOT_FOUND, "message": "not supported"}
            await self._reply({"jsonrpc": "2.0", "id": message["id"], "error": error})

    async def _reply(self, reply: dict[str, Any]) -> None:
        """Answer a request of the server's, from the session itself (best effort)."""
        # bounded: the stream holds a connection of the pool, and the reply may wait for
        # another one (a pool full of such streams never frees one)
        with anyio.move_on_after(CANCEL_SECONDS) as bounded:
            try:
                posted = await self._post(reply)
            except NotDelivered as err:  # the reply's, not the request's: that one got there
                raise MCPError(
                    types.CONNECTION_CLOSED, f"a reply to the upstream failed: {err}"
                ) from err
            async with posted as response:
                await _read(response)
        if bounded.cancelled_caught:
            log.info("MCP upstream %s: reply to its request %r not sent", self._url, reply["id"])


def _sendable(event_id: str) -> bool:
    """Whether an event id may go back as ``Last-Event-ID`` (header hygiene)."""
    return len(event_id) <= MAX_EVENT_ID_CHARS and _HEADER_SAFE.fullmatch(event_id) is not None


def _session_id(value: str | None) -> str | None:
    """The server's session id, refused unless visible ASCII (MCP) and short."""
    if value is None:
        return None
    if len(value) > MAX_EVENT_ID_CHARS or not _VISIBLE.fullmatch(value):
        raise MCPError(types.INTERNAL_ERROR, "the upstream's session id is not visible ASCII")
    return value


async def _read(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_MESSAGE_BYTES:
            raise MCPError(types.INTERNAL_ERROR, "the upstream's answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _lost(why: str) -> MCPError:
    """The answer cannot be read any more (the request was sent: never sent again)."""
    return MCPError(types.CONNECTION_CLOSED, why)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data)
    except ValueError:
        raise MCPError(types.PARSE_ERROR, "the upstream sent invalid JSON") from None
    if not isinstance(message, dict):
        raise MCPError(types.PARSE_ERROR, "the upstream sent a batch or a non-object")
    return message


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read what is left of an answered SSE stream (its end), so the connection is reused;
    a stream that goes on is closed instead."""
    size = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        try:
            async for chunk in response.content.iter_any():
                size += len(chunk)
                if size > MAX_MESSAGE_BYTES:
                    break
            else:
                response.release()
                return
        except (aiohttp.ClientError, OSError):
            pass
    response.close()
