"""Reading the access lines the servers write (``zerolane.access``) in tests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from zerolane.gateway.access_log import LOGGER_NAME
from zerolane.logs import ACCESS_FIELDS, JsonFormatter, TextFormatter


class AccessLines(logging.Handler):
    """Every access record, with its fields and both renderings."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def fields(self) -> list[dict[str, Any]]:
        return [dict(getattr(r, ACCESS_FIELDS)) for r in list(self.records)]

    def rendered(self) -> list[str]:
        """Every line as text and as JSON (what could reach a log file)."""
        text, js = TextFormatter(), JsonFormatter()
        return [f(r) for r in list(self.records) for f in (text.format, js.format)]

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The first line ``match`` accepts; servers write it just after answering."""
        deadline = time.monotonic() + timeout
        while True:
            found = [f for f in self.fields() if match(f)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no such access line in {self.fields()}")
            time.sleep(0.01)


@contextmanager
def access_lines() -> Iterator[AccessLines]:
    """Capture ``zerolane.access`` at info (and restore its level after)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = AccessLines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
