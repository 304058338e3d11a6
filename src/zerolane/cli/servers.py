"""Several ASGI apps served by one process, all or none (``zerolane up`` and its gateways).

Every listening socket is bound (and listening) before any app starts, so a port in
use, or two listeners on one port, stops the process before anything serves. Each app
then runs its own uvicorn server, with its own event loop, in a thread:
:meth:`ServerGroup.start` returns once every server has started (its lifespan
completed), or stops those that did and raises. The caller's main thread keeps the
signals: :meth:`ServerGroup.wait` returns when asked to stop or when a server ended on
its own, and :meth:`ServerGroup.stop` drains them all.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zerolane.errors import Unavailable

if TYPE_CHECKING:
    import uvicorn

#: how long a stopping server lets requests in flight finish before cancelling them
DRAIN_SECONDS = 10
#: how long all servers together may take to start (lifespans connect upstreams)
START_SECONDS = 60.0
BACKLOG = 2048


def listen_url(host: str, port: int, path: str = "") -> str:
    """``http://host:port/path``, with an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (``SO_REUSEADDR``, as uvicorn binds).

    It listens at once: on Linux two sockets with ``SO_REUSEADDR`` may both be bound to
    one port until one of them listens, and the conflict must show here, not later.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def listen(label: str, host: str, port: int) -> socket.socket:
    """:func:`bind`, or ``listen.failed`` naming ``label`` (port 0: any free port, see
    :func:`bound_port`)."""
    try:
        return bind(host, port)
    except (OSError, ValueError) as err:  # ValueError: a host name IDNA cannot encode
        why = (err.strerror if isinstance(err, OSError) else None) or err
        raise Unavailable(
            "listen.failed", f"{label}: cannot listen on {listen_url(host, port)}: {why}"
        ) from err


def bound_port(sock: socket.socket) -> int:
    """The port ``sock`` listens on (the one picked for port 0)."""
    return int(sock.getsockname()[1])


@dataclass(eq=False)
class _Member:
    label: str
    server: uvicorn.Server
    sock: socket.socket | None = None
    thread: threading.Thread | None = None
    error: BaseException | None = None

    def run(self) -> None:
        assert self.sock is not None
        try:
            self.server.run(sockets=[self.sock])
        # uvicorn ends a failed startup with sys.exit(); anything else is a crash: both
        # are kept and reported by the main thread, which then stops every server
        except BaseException as err:
            self.error = err

    def ended(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def why(self) -> str:
        if self.error is None or isinstance(self.error, SystemExit):
            return " (see the log above)"
        return f": {type(self.error).__name__}: {self.error}"


class ServerGroup:
    """uvicorn servers that start together and stop together."""

    def __init__(self) -> None:
        self._members: list[_Member] = []
        self._stopped = False

    def add(self, label: str, config: uvicorn.Config) -> None:
        """Serve ``config`` (its app, host and port); ``label`` names it in errors."""
        import uvicorn

        config.timeout_graceful_shutdown = DRAIN_SECONDS
        self._members.append(_Member(label, uvicorn.Server(config)))

    def bind(self) -> None:
        """Listen on every address, or on none: raises ``listen.failed`` naming the server."""
        for member in self._members:
            config = member.server.config
            try:
                member.sock = listen(member.label, config.host, config.port)
            except Unavailable:
                self._close_sockets()
                raise

    def listeners(self) -> dict[str, str]:
        """Each bound server's base URL (``https://`` when it serves TLS), by label."""
        urls = {}
        for member in self._members:
            if member.sock is not None:
                config = member.server.config
                url = listen_url(config.host, bound_port(member.sock))
                urls[member.label] = url.replace("http://", "https://", 1) if config.is_ssl else url
        return urls

    def port(self, label: str) -> int:
        """The port the server ``label`` listens on, once bound (the one picked for 0)."""
        member = next(m for m in self._members if m.label == label)
        if member.sock is None:
            raise RuntimeError(f"{label} is not bound yet")
        return bound_port(member.sock)

    def start(self, stop: threading.Event, timeout: float = START_SECONDS) -> bool:
        """Start every server: True once all have started, False when ``stop`` came first.

        When one fails to start (its lifespan failed, it crashed, or ``timeout`` passed)
        the others are stopped and ``server.start`` is raised naming it.
        """
        for member in self._members:
            member.thread = threading.Thread(
                target=member.run, name=f"zerolane {member.label}", daemon=True
            )
            member.thread.start()
        deadline = time.monotonic() + timeout
        while not all(member.server.started for member in self._members):
            failed = self._ended()
            if failed is not None:
                self.stop()
                raise Unavailable("server.start", f"{failed.label} failed to start{failed.why()}")
            if time.monotonic() > deadline:
                late = [m.label for m in self._members if not m.server.started]
                self.stop()
                raise Unavailable(
                    "server.start", f"{', '.join(late)} did not start within {timeout:.0f} s"
                )
            if stop.wait(0.02):
                return False
        return True

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set; raises ``server.stopped`` if a server ends first."""
        while not stop.wait(0.2):
            failed = self._ended()
            if failed is not None:
                raise Unavailable(
                    "server.stopped", f"{failed.label} stopped unexpectedly{failed.why()}"
                )

    def stop(self) -> None:
        """Stop every server: no new connections, requests in flight get
        :data:`DRAIN_SECONDS`, then lifespans shut down (upstream sessions closed)."""
        if self._stopped:
            return
        self._stopped = True
        for member in self._members:
            member.server.should_exit = True
        deadline = time.monotonic() + DRAIN_SECONDS + 5
        for member in self._members:
            if member.thread is not None:
                member.thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [m for m in self._members if m.thread is not None and m.thread.is_alive()]
        for member in stuck:
            member.server.force_exit = True
        for member in stuck:
            assert member.thread is not None
            member.thread.join(5)
        self._close_sockets()

    def force(self) -> None:
        """Stop now: skip the rest of the drain (a second SIGTERM or Ctrl-C)."""
        for member in self._members:
            member.server.should_exit = True
            member.server.force_exit = True

    def _ended(self) -> _Member | None:
        return next((m for m in self._members if m.ended()), None)

    def _close_sockets(self) -> None:
        for member in self._members:
            if member.sock is not None:
                member.sock.close()
