"""A uvicorn server (any :class:`uvicorn.Config`, TLS included) in a daemon thread."""

from __future__ import annotations

import threading
import time

import uvicorn


class Served:
    """Started when ``with`` enters (its lifespan done), stopped when it leaves."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
