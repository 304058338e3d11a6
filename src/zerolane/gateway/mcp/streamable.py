"""A lean MCP client session over streamable HTTP (aiohttp): the gateway's upstream hop.

One session (``initialize`` once, then the ``Mcp-Session-Id`` and
``MCP-Protocol-Version`` headers on every request) over a pool of keep-alive
connections, so concurrent calls share it and sequential calls reuse one connection.
It speaks the handshake protocol revisions (2024-11-05 to 2025-11-25) and only what
the gateway needs: ``tools/list`` and ``tools/call`` requests, answered as JSON or as
an SSE stream. In a stream, the server's notifications are ignored, its ``ping`` is
answered and its other requests (sampling, elicitation, roots) are refused: the
gateway does not relay them. Redirects are not followed and nothing is taken from the
environment (no proxy, no netrc): the connection is the gateway's own and carries none
of the agent's credentials.

A server that can resume its streams (2025-11-25) opens them with a priming event (an
id, no data) and may close a request's stream before its answer: the stream is then
resumed with a GET carrying ``Last-Event-ID`` (after the server's ``retry``), never by
sending the request again, and within bounds (see :meth:`HttpSession._resume`). No
other GET stream is opened.

A request that provably never reached the server raises :class:`NotDelivered` (the
connection could not be made, or the server answered 404 for the session: it no
longer knows it and processed nothing); the caller may send it again on a new
session. Any other failure may come after the server got the request.
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
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

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
#: the longest event id sent back as ``Last-Event-ID`` (visible ASCII and spaces only)
MAX_EVENT_ID_CHARS = 1024
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")


class NotDelivered(Exception):
    """The request never reached the upstream server (safe to send again)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def http_session() -> aiohttp.ClientSession:
    """The connection pool of one upstream (the MCP SDK's client timeouts)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=KEEPALIVE_SECONDS),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
        trust_env=False,
    )


class HttpSession:
    """One MCP session with a streamable HTTP server, shared by concurrent requests."""

    def __init__(
        self,
        url: str,
        http: aiohttp.ClientSession,
        tasks: TaskGroup,
        client_info: types.Implementation,
    ) -> None:
        self._url = url
        self._http = http
        self._tasks = tasks  # background reads of finished SSE streams
        self._client_info = client_info
        self._next_id = 0
        self.session_id: str | None = None
        self.protocol_version: str | None = None

    async def initialize(self) -> types.InitializeResult:
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": self._client_info.model_dump(by_alias=True, exclude_none=True),
        }
        raw = await self._request("initialize", params, initializing=True)
        result = types.InitializeResult.model_validate(raw)
        if result.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise MCPError(
                types.INVALID_REQUEST, f"unsupported protocol version {result.protocol_version}"
            )
        self.protocol_version = result.protocol_version
        await self._notify("notifications/initialized", None)
        return result

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult:
        raw = await self._request("tools/list", {"cursor": cursor} if cursor else None)
        return types.ListToolsResult.model_validate(raw)

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None, meta: Mapping[str, Any] | None
    ) -> types.CallToolResult:
        params: dict[str, Any] = {"name": name}
        if arguments is not None:
            params["arguments"] = arguments
        if meta:
            params["_meta"] = dict(meta)
        raw = await self._request("tools/call", params)
        return types.CallToolResult.model_validate(raw)

    async def close(self) -> None:
        """End the session upstream (DELETE), best effort."""
        if self.session_id is None:
            return
        with anyio.move_on_after(CANCEL_SECONDS):
            try:
                async with self._http.delete(self._url, headers=self._headers()):
                    pass
            except (aiohttp.ClientError, OSError) as err:
                log.debug("MCP session %s not deleted: %s", self._url, err)

    # --- the wire ---------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if self.session_id is not None:
            headers[SESSION_HEADER] = self.session_id
        if self.protocol_version is not None:
            headers[VERSION_HEADER] = self.protocol_version
        return headers

    async def _post(self, message: Mapping[str, Any]) -> aiohttp.ClientResponse:
        body = json.dumps(message, separators=(",", ":")).encode()
        try:
            return await self._http.post(
                self._url, data=body, headers=self._headers(), allow_redirects=False
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            raise NotDelivered("connect", str(err)) from err  # no connection: nothing sent

    async def _notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        async with await self._post(message) as response:
            await _read(response)
            if response.status >= 400:
                raise MCPError(types.INTERNAL_ERROR, f"{method} refused: HTTP {response.status}")

    async def _request(
        self, method: str, params: Mapping[str, Any] | None, *, initializing: bool = False
    ) -> dict[str, Any]:
        self._next_id += 1
        request_id = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response = await self._post(message)
        try:
            answer = await self._answer(response, request_id, initializing=initializing)
        except NotDelivered:
            response.close()
            raise
        except BaseException:
            response.close()  # a body not read to its end: the connection is dropped
            if method != "initialize":
                await self._cancel(request_id)
            raise
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            code = error.get("code")
            raise MCPError(
                code if isinstance(code, int) else types.INTERNAL_ERROR,
                str(error.get("message", "error")),
                error.get("data"),
            )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise MCPError(types.INTERNAL_ERROR, f"{method}: the answer holds no result object")
        return result

    async def _cancel(self, request_id: int) -> None:
        """Tell the server a request was abandoned (the caller was cancelled or failed)."""
        params = {"requestId": request_id, "reason": "abandoned by the gateway"}
        failures = (aiohttp.ClientError, OSError, MCPError, NotDelivered)
        shield = anyio.CancelScope(shield=True)
        with shield, anyio.move_on_after(CANCEL_SECONDS), contextlib.suppress(*failures):
            await self._notify("notifications/cancelled", params)

    async def _answer(
        self, response: aiohttp.ClientResponse, request_id: int, *, initializing: bool
    ) -> dict[str, Any]:
        """The JSON-RPC answer to ``request_id`` in ``response`` (JSON or SSE)."""
        if response.status == 404 and self.session_id is not None:
            raise NotDelivered("session", "the server no longer knows the session")
        if initializing and response.status < 400:
            self.session_id = response.headers.get(SESSION_HEADER)
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
        answer = await self._read_stream(response, stream, request_id)
        if answer is None:
            response.close()  # ended or broken: its connection is not reused
            answer = await self._resume(stream, request_id)
        return answer

    async def _read_stream(
        self, response: aiohttp.ClientResponse, stream: EventStream, request_id: int
    ) -> dict[str, Any] | None:
        """The answer to ``request_id`` in one connection of ``stream``; None when the
        connection ended (or broke) without it and ``stream`` may be resumed."""
        try:
            async with contextlib.aclosing(stream.messages(response.content.iter_any())) as events:
                async for data in events:
                    message = _parse(data)
                    if message.get("id") == request_id and "method" not in message:
                        self._drain_later(response)
                        return message
                    if "method" in message and "id" in message:  # a request of the server's
                        await self._refuse(message)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as err:
            if not stream.last_event_id:
                raise  # not resumable: the caller sees the transport failure
            log.info("MCP upstream %s: response stream broke (%s), resuming", self._url, err)
        return None

    async def _resume(self, stream: EventStream, request_id: int) -> dict[str, Any]:
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
            if len(last_id) > MAX_EVENT_ID_CHARS or not _HEADER_SAFE.fullmatch(last_id):
                raise _lost("the response stream ended and its event id cannot be sent back")
            wait = DEFAULT_RETRY_SECONDS if stream.retry_ms is None else stream.retry_ms / 1000
            if wait > MAX_RETRY_SECONDS:
                raise _lost(
                    f"the response stream ended and the server asks to wait {wait:g} s before"
                    f" resuming it (at most {MAX_RETRY_SECONDS:g} s)"
                )
            await anyio.sleep(wait)
            answer = await self._resume_once(stream, request_id)
            if answer is not None:
                return answer
            failures = 0 if stream.last_event_id != last_id else failures + 1
            if failures >= MAX_RESUME_FAILURES:
                raise _lost(f"the response stream could not be resumed ({failures} attempts)")
        raise _lost(f"the response stream was resumed {MAX_RESUMES} times without an answer")

    async def _resume_once(self, stream: EventStream, request_id: int) -> dict[str, Any] | None:
        """One GET resuming ``stream``: the answer, or None (no answer on it: again)."""
        headers = self._headers()
        del headers["Content-Type"]
        headers["Accept"] = "text/event-stream"
        headers[LAST_EVENT_ID_HEADER] = stream.last_event_id
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
                raise _lost("the server no longer knows the session; the answer is lost")
            if response.status != 200 or kind != "text/event-stream":
                raise _lost(
                    f"the server refused to resume the response stream (HTTP {response.status},"
                    f" {kind or 'no content type'})"
                )
            answer = await self._read_stream(response, stream, request_id)
        except BaseException:
            response.close()
            raise
        if answer is None:
            response.close()
        return answer

    def _drain_later(self, response: aiohttp.ClientResponse) -> None:
        try:
            self._tasks.start_soon(_drain, response)
        except RuntimeError:  # the session is closing: no connection to keep
            response.close()

    async def _refuse(self, request: dict[str, Any]) -> None:
        """Answer a server's request: ``ping`` is answered, the rest refused."""
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
        if request.get("method") == "ping":
            reply["result"] = {}
        else:
            reply["error"] = {"code": types.METHOD_NOT_FOUND, "message": "not supported"}
        # best effort and bounded: the stream holds a connection of the pool, and the
        # reply may wait for another one (a pool full of such streams never frees one)
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
            log.info("MCP upstream %s: reply to its request %r not sent", self._url, request["id"])


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
