"""Run the control plane in a background thread (for the demo and tests)."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerolane.server.deployment import Deployment


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """uvicorn serving :func:`create_app` on a loopback port in a daemon thread."""

    def __init__(self, deployment: Deployment, host: str = "127.0.0.1") -> None:
        import uvicorn

        from zerolane.gateway.http.protocol import TlsScopeHttpToolsProtocol, with_limits
        from zerolane.server.app import create_app

        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            create_app(deployment),
            host=host,
            port=self.port,
            log_level="warning",
            proxy_headers=False,  # as zerolane up: no client address from a header
            http=with_limits(TlsScopeHttpToolsProtocol, deployment.config.http),  # as up: [http]
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> BackgroundServer:
        import httpx

        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the control plane did not start")

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class BackgroundApp:
    """Any ASGI app served by uvicorn on a loopback port in a daemon thread."""

    def __init__(self, app: Any, *, port: int, health: str = "/healthz") -> None:
        import uvicorn

        from zerolane.gateway.http.protocol import HeadLimitedHttpToolsProtocol

        self.url = f"http://127.0.0.1:{port}"
        self._health = health
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            proxy_headers=False,
            http=HeadLimitedHttpToolsProtocol,  # request heads held to the default [http]
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> BackgroundApp:
        import httpx

        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}{self._health}", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"the app on {self.url} did not start")

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
