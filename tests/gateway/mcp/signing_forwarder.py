"""A forwarder in front of the MCP gateway that signs each request as an agent's client
would, so a client that knows nothing of zerolane (the conformance suite) can talk
through the gateway.

For every request it receives it drops ``Authorization``, ``DPoP``, ``Content-Length``
and ``Host``, adds the task's token and a fresh DPoP proof for the method and the
gateway's endpoint, forwards it, and streams the answer back as it comes (status and
headers kept, SSE event by event). Host and Origin stay what the client meant: its own
address becomes the gateway's, any other (a DNS rebinding attempt's) is passed as sent.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from zerolane.cli.background import free_port

#: request headers never forwarded as received (credentials, framing, the address)
DROPPED = frozenset(
    {"authorization", "dpop", "content-length", "host", "transfer-encoding", "connection"}
)
#: hop-by-hop headers of a response (RFC 9110 section 7.6.1), never relayed
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
    | {"proxy-authenticate", "proxy-authorization"}
)


class Signer(Protocol):
    """What signs a request: :meth:`zerolane.sdk.Task.headers`."""

    def headers(self, method: str, url: str) -> dict[str, str]: ...


class SigningForwarder:
    """An aiohttp server on a loopback port, in its own thread, forwarding to the gateway
    at ``gateway_endpoint`` as ``task``: ``url`` is what a client points at."""

    def __init__(self, task: Signer, gateway_endpoint: str) -> None:
        self.task = task
        target = urlsplit(gateway_endpoint)
        self.gateway_origin = f"{target.scheme}://{target.netloc}"
        self.gateway_host = target.netloc
        self.port = free_port()
        self.own_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.url = f"http://127.0.0.1:{self.port}{target.path}"
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def __enter__(self) -> SigningForwarder:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *_: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
            self._loop.close()

    async def _start(self) -> None:
        # headers the client did not send are not added (the request goes as it was)
        skip = ["Accept", "Accept-Encoding", "User-Agent", "Content-Type"]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        self._http = aiohttp.ClientSession(
            timeout=timeout, skip_auto_headers=skip, auto_decompress=False
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        # a client going away cancels its relay, which closes the gateway's stream too
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def _headers(self, request: web.Request) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value) for name, value in request.headers.items() if name.lower() not in DROPPED
        )
        host = request.headers.get("Host", self.gateway_host)
        headers["Host"] = self.gateway_host if host in self.own_hosts else host
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc in self.own_hosts:
            headers["Origin"] = self.gateway_origin
        headers.update(self.task.headers(request.method, self.gateway_origin + request.path))
        return headers

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        self.requests += 1
        body = await request.read()
        target = self.gateway_origin + request.rel_url.path_qs
        async with self._http.request(
            request.method,
            target,
            headers=self._headers(request),
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():  # as it arrives: SSE flows
                await response.write(chunk)
            await response.write_eof()
            return response
