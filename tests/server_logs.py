"""What in-process servers log, traceback text included, for tests that look for none."""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: where uvicorn, asyncio, aiohttp and zerolane log (uvicorn's loggers do not propagate)
LOGGERS = ("", "uvicorn", "uvicorn.error", "asyncio", "aiohttp", "zerolane")


@contextmanager
def server_logs(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Every record logged meanwhile, formatted with its traceback if it has one."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
    try:
        yield text
    finally:
        for logger, old in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(old)


def drop_upload(port: int, head: bytes, body: bytes = b"0123456789") -> None:
    """Send a request head and part of its body, then hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        time.sleep(0.2)  # the server now waits for the rest of the body
    time.sleep(0.5)  # and has seen the connection close
