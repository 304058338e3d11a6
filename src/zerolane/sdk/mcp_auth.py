"""Connect the official MCP client to the zerolane MCP gateway with a task's credentials.

The MCP SDK's streamable HTTP transport sends its HTTP requests (POSTs, the GET event
stream, the closing DELETE) through an ``httpx2`` client; :class:`McpAuth` signs each
of them with the task token and a fresh DPoP proof for its own method and URL, so no
proof is ever sent twice. ``Task.mcp_auth()`` and ``AsyncTask.mcp_auth()`` make one:

    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(auth=task.mcp_auth(), timeout=MCP_TIMEOUT) as http,
        streamable_http_client("https://mcp.example.org/mcp", http_client=http) as streams,
        ClientSession(*streams) as session,
    ):
        await session.initialize()
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping

import httpx2

#: The MCP SDK's own defaults: 30 s to connect, write and pool; 300 s to read, since the
#: server may hold an event stream open.
MCP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)

#: ``headers(method, url)``: ``Authorization`` and a fresh ``DPoP`` proof for one request.
HeaderSigner = Callable[[str, str], Mapping[str, str]]


class McpAuth(httpx2.Auth):
    """An ``httpx2.Auth`` adding ``Authorization: DPoP <token>`` and a fresh proof to
    every request, for that request's method and URL.

    It works for sync and async ``httpx2`` clients alike; signing is local (the key
    never leaves the process) and does no I/O.
    """

    def __init__(self, headers: HeaderSigner) -> None:
        self._headers = headers

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response]:
        request.headers.update(self._headers(request.method, str(request.url)))
        yield request
