"""The probe's own listener: it serves the key material a forged token names by URL
(``jku``, ``x5u``) and records who fetched it.

A ``jku`` or ``x5u`` scenario must be answerable both ways. If the header named an
address nobody serves, a target that does dereference it would get nothing, refuse the
token for want of a key, and be reported as sound: a false pass. So the probe serves the
attacker's half itself, for the length of the run: a JWK Set holding the probe's key
(``jku``), a PEM certificate chain for it (``x5u``), each at a path of its own with a
random part no one else can guess. Every request for a published path is recorded, so
a scenario knows whether the target fetched the URL its token named, whatever it then
decided (docs/probe.md, "jku and x5u").

The listener is the standard library's :class:`http.server.ThreadingHTTPServer` in a
daemon thread, started on the first :meth:`Callback.publish` (a run without these
scenarios opens no port) and stopped by :meth:`Callback.close`. It answers ``GET`` and
``HEAD`` of published paths, 404 for anything else, and logs nothing.

Where it listens follows the callback URL (``callback_url`` in the probe file,
``--callback-url``; ``http://127.0.0.1:0`` by default, a target on the same machine):
an IP address literal is bound as given, ``localhost`` as 127.0.0.1, a host name on
every IPv4 interface (the name is for the target to resolve); port 0 or none is an
ephemeral port, and the URLs handed out name the port actually bound.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

#: where the listener is by default: loopback, an ephemeral port
DEFAULT_URL = "http://127.0.0.1:0"
#: seconds a connection to the listener may stay idle
_IDLE = 5.0
#: fetches recorded per published path at most (a target looping on it is one finding)
_KEPT = 16


class CallbackUnavailable(Exception):
    """The listener could not be started (the address is taken, not this machine's)."""


@dataclass(frozen=True)
class Fetch:
    """One request for a published path: who asked, how, and when."""

    method: str
    path: str
    client: str  # "host:port" of the connection's peer
    user_agent: str
    at: float


@dataclass(frozen=True)
class _Document:
    body: bytes
    content_type: str


def parse_callback_url(url: str) -> tuple[str, int]:
    """The host and port of a callback URL (``http://host[:port]``, nothing else), or
    :class:`ValueError` saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"a callback URL is http://host[:port], not {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a callback URL holds no user or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a callback URL has no path, query or fragment: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"a callback URL's port is 0-65535: {url!r}") from None
    return parts.hostname, port or 0


def _bind_address(host: str) -> tuple[str, socket.AddressFamily]:
    if host == "localhost":
        return "127.0.0.1", socket.AF_INET
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0", socket.AF_INET  # noqa: S104  (a name: the target resolves it)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return str(address), family


class Callback:
    """The listener at ``url`` (see the module's docstring). Thread-safe."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.host, self.port = parse_callback_url(url)
        self._documents: dict[str, _Document] = {}
        self._fetches: dict[str, list[Fetch]] = {}
        self._fetched = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def base(self) -> str:
        """The URL the target reaches the listener at (the bound port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def publish(self, name: str, body: bytes, content_type: str) -> str:
        """Serve ``body`` at a new, unguessable path ending in ``name``; its URL. Starts
        the listener if it is not running (:class:`CallbackUnavailable` if it cannot)."""
        self._start()
        path = f"/{secrets.token_urlsafe(16)}/{name}"
        with self._fetched:
            self._documents[path] = _Document(body, content_type)
            self._fetches[path] = []
        return self.base + path

    def fetches(self, url: str, *, wait: float = 0.0) -> list[Fetch]:
        """The requests for ``url`` (one :meth:`publish` gave) so far; with ``wait``,
        up to that many seconds for a first one to come (a target may fetch after it
        answered)."""
        path = urlsplit(url).path
        deadline = time.monotonic() + wait
        with self._fetched:
            while not self._fetches.get(path):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._fetched.wait(left)
            return list(self._fetches.get(path, ()))

    def close(self) -> None:
        """Stop the listener (if it was started); published URLs answer no more."""
        with self._start_lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None and thread is not None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    # the server

    def _start(self) -> None:
        with self._start_lock:
            if self._server is not None:
                return
            address, family = _bind_address(self.host)
            server_class = type("_Server", (ThreadingHTTPServer,), {"address_family": family})
            try:
                server = server_class((address, self.port), self._handler())
            except OSError as error:
                raise CallbackUnavailable(
                    f"cannot listen on {address} port {self.port}: {error.strerror or error}"
                ) from None
            server.daemon_threads = True
            self.port = int(server.server_address[1])
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="zerolane-probe-callback",
                daemon=True,
            )
            self._thread.start()

    def _record(self, method: str, path: str, client: str, user_agent: str) -> _Document | None:
        with self._fetched:
            document = self._documents.get(path)
            if document is None:
                return None
            kept = self._fetches[path]
            if len(kept) < _KEPT:
                kept.append(Fetch(method, path, client, user_agent[:200], time.time()))
            self._fetched.notify_all()
            return document

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        callback = self

        class Handler(BaseHTTPRequestHandler):
            timeout: ClassVar[float] = _IDLE
            server_version = "zerolane-probe"
            sys_version = ""

            def do_GET(self) -> None:
                self._answer(with_body=True)

            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def _answer(self, *, with_body: bool) -> None:
                path = urlsplit(self.path).path
                client = f"{self.client_address[0]}:{self.client_address[1]}"
                agent = self.headers.get("User-Agent", "")
                document = callback._record(self.command, path, client, agent)
                if document is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", document.content_type)
                self.send_header("Content-Length", str(len(document.body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if with_body:
                    self.wfile.write(document.body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the probe's output is its report, not a request log

        return Handler
