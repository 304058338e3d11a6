"""The forwarder the conformance test puts in front of the gateway: it signs each request
as the task's client would, keeps the client's Host and Origin meaning, and streams the
answer back as it comes."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import anyio
import httpx

from tests.gateway.mcp.harness import StubReply, StubRequest, StubUpstream
from tests.gateway.mcp.signing_forwarder import SigningForwarder


class Signer:
    """Stands for a task: its token and a proof naming the method and URL signed."""

    def headers(self, method: str, url: str) -> dict[str, str]:
        return {"Authorization": "DPoP task-token", "DPoP": f"proof {method} {url}"}


EVENT = b"id: 1\ndata: {}\n\n"


async def answer(request: StubRequest) -> StubReply:
    if request.method == "GET":  # an SSE stream: one event, then open for a second
        headers = {"mcp-session-id": "s-1", "content-type": "text/event-stream"}
        return StubReply(headers=headers, chunks=[EVENT], end_after=2.0)
    return StubReply(status=404, headers={"mcp-session-id": "s-1"}, body=b"gone")


def test_requests_are_signed_for_the_gateway_and_keep_what_the_client_meant() -> None:
    async def main() -> tuple[list[StubRequest], list[httpx.Response], str]:
        async with StubUpstream(answer) as gateway:
            with SigningForwarder(Signer(), gateway.url) as forwarder:
                own = urlsplit(forwarder.url).netloc
                async with httpx.AsyncClient(timeout=10) as client:
                    sent = [
                        await client.post(
                            forwarder.url,
                            content=b'{"jsonrpc": "2.0"}',
                            headers={
                                "Authorization": "Bearer stolen",
                                "DPoP": "replayed",
                                "Origin": f"http://{own}",
                                "Mcp-Session-Id": "s-1",
                            },
                        ),
                        await client.post(
                            forwarder.url,
                            content=b"{}",
                            headers={
                                "Host": "evil.example.com",
                                "Origin": "http://evil.example.com",
                            },
                        ),
                    ]
        return gateway.requests, sent, urlsplit(gateway.url).netloc

    received, (first, second), gateway_host = anyio.run(main)
    endpoint = f"http://{gateway_host}/mcp"
    signed, evil = received
    assert signed.headers["authorization"] == "DPoP task-token"
    assert signed.headers["dpop"] == f"proof POST {endpoint}"
    assert signed.headers["host"] == gateway_host
    assert signed.headers["origin"] == f"http://{gateway_host}"
    assert signed.headers["mcp-session-id"] == "s-1"
    assert signed.body == b'{"jsonrpc": "2.0"}'
    assert evil.headers["host"] == "evil.example.com"  # another host goes as sent
    assert evil.headers["origin"] == "http://evil.example.com"
    assert evil.headers["dpop"] == f"proof POST {endpoint}"
    assert (first.status_code, first.text, first.headers["mcp-session-id"]) == (404, "gone", "s-1")
    assert second.status_code == 404


def test_an_sse_stream_flows_event_by_event() -> None:
    async def main() -> tuple[bytes, bytes, float, float]:
        async with StubUpstream(answer) as gateway:
            with SigningForwarder(Signer(), gateway.url) as forwarder:
                async with (
                    httpx.AsyncClient(timeout=10) as client,
                    client.stream("GET", forwarder.url) as response,
                ):
                    started = time.monotonic()
                    assert response.headers["mcp-session-id"] == "s-1"
                    chunks = response.aiter_raw()
                    first = await anext(chunks)
                    arrived = time.monotonic() - started
                    rest = b"".join([chunk async for chunk in chunks])
                    return first, rest, arrived, time.monotonic() - started

    first, rest, arrived, ended = anyio.run(main)
    assert (first, rest) == (EVENT, b"")
    assert arrived < 1.0 < ended  # the event came before the stream ended, not with it
