"""A small HTTP/1.1 server for the path, method and size scenarios' tests, lax in the
ways one asks: it decides on the raw path and serves the normalized one, honours
method override headers, and reads heads and bodies of any size.

It knows one bearer token and two resources: ``GET /allowed/item`` (allowed) and
``/forbidden/item`` (refused 403 when the decision sees that path), plus ``DELETE
/allowed/item``, refused. Its answers carry a volatile part (a counter), as real
answers carry timestamps and request ids.
"""

from __future__ import annotations

import itertools
import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

TOKEN = "lax-token"
ALLOWED = "/allowed/item"
FORBIDDEN = "/forbidden/item"
HEAD_LIMIT = 8 * 1024
BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Lax:
    """What the server gets wrong."""

    normalizes_after_deciding: bool = False
    honours_override: bool = False
    unbounded: bool = False


def normalized(raw: str) -> str:
    """The path a lax framework serves: decoded until stable, backslashes as slashes,
    ``;`` parameters stripped, dot segments resolved."""
    path = raw
    while (decoded := unquote(path)) != path:
        path = decoded
    path = path.replace("\\", "/")
    segments: list[str] = []
    for segment in path.split("/"):
        segment = segment.split(";")[0]
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "/" + "/".join(segments)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        while self._one():
            pass

    def _one(self) -> bool:
        lax = self.server.lax
        line = self.rfile.readline()
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        head = len(line)
        too_large = False
        while (field := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            head += len(field)
            too_large = too_large or len(field) > HEAD_LIMIT or head > 8 * HEAD_LIMIT
            name, _, value = field.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if not lax.unbounded and (too_large or length > BODY_LIMIT):
            status = 431 if too_large else 413
            self._answer(status, {"error": "too large"}, close=True)
            return False
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                return False
            left -= len(chunk)
        raw = target.split("?")[0]
        if headers.get("authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"error": "unauthorized"})
            return True
        # the decision: on the raw path and the request line's method
        if raw == FORBIDDEN or (method, normalized(raw)) == ("DELETE", ALLOWED):
            self._answer(403, {"error": "forbidden"})
            return True
        # the service: on what a lax framework makes of them
        served = normalized(raw) if lax.normalizes_after_deciding else raw
        if lax.honours_override:
            for name in ("x-http-method-override", "x-http-method", "x-method-override"):
                method = headers.get(name, method).upper()
        if served in (ALLOWED, FORBIDDEN) and method in ("GET", "DELETE"):
            done = "deleted" if method == "DELETE" else "read"
            self._answer(200, {"item": served, "done": done, "n": next(self.server.counter)})
        else:
            self._answer(404, {"error": "not found"})
        return True

    def _answer(self, status: int, body: dict[str, object], *, close: bool = False) -> None:
        data = json.dumps(body).encode()
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(data)}\r\n"
        head += "Connection: close\r\n\r\n" if close else "\r\n"
        self.wfile.write(head.encode() + data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, lax: Lax) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lax = lax
        self.counter = itertools.count()


@contextmanager
def lax_server(lax: Lax) -> Iterator[str]:
    """The server on a loopback port, as its base URL."""
    server = _Server(lax)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
