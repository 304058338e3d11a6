"""A tiny upstream for the gateway tests, run as its own process.

Every request is answered with what arrived: method, raw path, query, headers, body
length and SHA-256 (the body is read in chunks, never held). ``GET /__count`` (not
counted) says how many requests arrived, and how many of them with their whole body
(``complete``); ``.../download/<n>`` streams ``n`` bytes
(``?chunked`` without a Content-Length); ``.../slow`` answers after 3 seconds;
``.../early`` starts its answer before reading the body and ends it 0.3 s later.

    python tests/gateway/echo_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import hashlib
import sys

from aiohttp import web

CHUNK = 64 * 1024
counter = {"requests": 0, "complete": 0}


async def count(_: web.Request) -> web.Response:
    return web.json_response({"count": counter["requests"], "complete": counter["complete"]})


async def _download(request: web.Request, size: int) -> web.StreamResponse:
    response = web.StreamResponse()
    if "chunked" in request.query:
        response.enable_chunked_encoding()
    else:
        response.content_length = size
    await response.prepare(request)
    block = b"z" * CHUNK
    remaining = size
    while remaining > 0:
        await response.write(block[: min(CHUNK, remaining)])
        remaining -= CHUNK
    await response.write_eof()
    return response


async def echo(request: web.Request) -> web.StreamResponse:
    counter["requests"] += 1
    path, _, query = request.raw_path.partition("?")
    last = path.rsplit("/", 2)
    if len(last) == 3 and last[1] == "download" and last[2].isdigit():
        return await _download(request, int(last[2]))
    if path.endswith("/early"):  # answers before reading the body
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"early ")
        await asyncio.sleep(0.3)
        await response.write(b"late")
        await response.write_eof()
        return response
    if path.endswith("/slow"):
        await asyncio.sleep(3)
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        digest.update(chunk)
        length += len(chunk)
    counter["complete"] += 1
    return web.json_response(
        {
            "method": request.method,
            "path": path,
            "query": query,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_length": length,
            "body_sha256": digest.hexdigest(),
        },
        headers={"Set-Cookie": "upstream=1; Path=/", "X-Upstream": "echo"},
    )


def main() -> None:
    app = web.Application(client_max_size=1 << 40)
    app.router.add_get("/__count", count)
    app.router.add_route("*", "/{tail:.*}", echo)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
