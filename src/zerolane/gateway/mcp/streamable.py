"""A lean MCP client session over streamable HTTP (aiohttp): the gateway's upstream hop.

One session (``initialize`` once, then the ``Mcp-Session-Id`` and
``MCP-Protocol-Version`` headers on every request) over a pool of keep-alive
connections, so concurrent calls share it and sequential calls reuse one connection.
It speaks the handshake protocol revisions (2024-11-05 to 2025-11-25) and only what
the gateway needs: ``tools/list`` and ``tools/call`` requests, answered as JSON or as
an SSE stream. In a stream, the server's notifications are ignored, its ``ping`` is
answered and its other requests (sampling, elicitation, roots) are refused: the
gateway does not relay them. No GET stream is opened, redirects are not followed and
nothing is taken from the environment (no proxy, no netrc): the connection is the
gateway's own and carries none of the agent's credentials.

A request that provably never reached the server raises :class:`NotDelivered` (the
connection could not be made, or the server answered 404 for the session: it no
longer knows it and processed nothing); the caller may send it again on a new
session. Any other failure may come after the server got the request.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from typing import Any

import aiohttp
import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

log = logging.getLogger(__name__)

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
#: the largest JSON body or SSE event read from an upstream
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: how long the rest of an SSE stream is read after its answer, to keep the connection
DRAIN_SECONDS = 1.0
#: idle connections are dropped before servers usually drop them (uvicorn: 5 s), so a
#: request is rarely sent on a connection the server is closing
KEEPALIVE_SECONDS = 2.0
CANCEL_SECONDS = 1.0


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
        async with contextlib.aclosing(sse_messages(response.content.iter_any())) as events:
            async for data in events:
                message = _parse(data)
                if message.get("id") == request_id and "method" not in message:
                    self._drain_later(response)
                    return message
                if "method" in message and "id" in message:  # a request of the server's
                    await self._refuse(message)
        raise MCPError(types.CONNECTION_CLOSED, "the response stream ended without an answer")

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


def _parse(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data)
    except ValueError:
        raise MCPError(types.PARSE_ERROR, "the upstream sent invalid JSON") from None
    if not isinstance(message, dict):
        raise MCPError(types.PARSE_ERROR, "the upstream sent a batch or a non-object")
    return message


async def sse_messages(chunks: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
    """The data of each ``message`` event of an SSE stream read in ``chunks``
    (text/event-stream rules: lines end with CRLF, LF or CR; ``data`` lines join with
    LF; comments, ``id`` and ``retry`` skipped; an event without data is no message)."""
    pending = bytearray()
    data: list[bytes] = []
    event = b""
    size = 0
    async for chunk in chunks:
        pending += chunk
        start = 0
        while True:
            end = _line_end(pending, start)
            if end is None:
                break
            line_end, next_start = end
            line = bytes(pending[start:line_end])
            start = next_start
            if not line:  # a blank line dispatches the event
                if data and event in (b"", b"message"):
                    yield b"\n".join(data)
                data, event, size = [], b"", 0
                continue
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"data":
                size += len(value) + 1  # its line feed: empty data lines grow it too
                if size > MAX_MESSAGE_BYTES:
                    raise MCPError(types.INTERNAL_ERROR, "an upstream SSE event is too large")
                data.append(value)
            elif field == b"event":
                event = value
        del pending[:start]
        if len(pending) > MAX_MESSAGE_BYTES:
            raise MCPError(types.INTERNAL_ERROR, "an upstream SSE line is too long")


def _line_end(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """Where the line from ``start`` ends and the next begins (None: not complete yet;
    a CR at the very end waits for the next chunk, which may begin with its LF)."""
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start, lf if lf >= 0 else len(buffer))
    if cr >= 0:
        if cr + 1 == len(buffer):
            return None
        return cr, cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
    if lf >= 0:
        return lf, lf + 1
    return None


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
