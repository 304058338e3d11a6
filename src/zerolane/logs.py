"""How the servers write their log: one line per record, readable text or JSON.

:func:`configure_logging` is what the serving commands call (``--log-level``,
``--log-format``): one handler on stderr for every logger of the process (zerolane's,
uvicorn's, the libraries'), with :class:`TextFormatter` (the default) or
:class:`JsonFormatter` (one JSON object per line, for a log shipper). zerolane's own
loggers say what the servers do (the access lines of
:mod:`zerolane.gateway.access_log`, upstreams connecting or failing) at ``info``, shown
whatever ``--log-level`` says short of ``debug``/``trace``; the level governs the rest.

Every time is RFC 3339 in UTC with milliseconds. A record that carries access fields
(``extra={ACCESS_FIELDS: {...}}``) has them as top-level keys in JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
#: the attribute of a log record holding an access line's fields
ACCESS_FIELDS = "zerolane_access"
#: uvicorn's level names (``trace`` is its own, below debug)
LEVELS = {"critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10, "trace": 5}
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_MARK = "_zerolane_handler"


def rfc3339(created: float) -> str:
    """``2026-12-07T12:00:00.123Z``: a record's time, UTC, milliseconds."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _one_line(text: str) -> str:
    """No record spans lines in text format: line breaks are written as ``\\n``."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message>``, one line (a traceback's breaks escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{rfc3339(record.created)} {record.levelname} {record.name}: "
        line += record.getMessage()
        if record.exc_info:
            line += " | " + self.formatException(record.exc_info)
        return _one_line(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message``, the
    access fields of an access line, ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            doc.update(fields)
        doc["message"] = record.getMessage()
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record comes (a test runner, or anything
    else that swaps it, never leaves the handler writing to a closed stream)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter of ``fmt`` (``text`` or ``json``)."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def configure_logging(
    level: str = "warning", fmt: LogFormat = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record of the process to ``stream`` (else stderr) in ``fmt``.

    ``level`` (uvicorn's names) is the root's and uvicorn's; zerolane's loggers stay at
    ``info`` or below, so access lines and upstream state are always written. Called
    again, it replaces the handler it installed before. uvicorn must be configured with
    ``log_config=None`` (else its own handlers come back when its config is built).
    Returns the handler.
    """
    numeric = LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    logging.addLevelName(LEVELS["trace"], "TRACE")
    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(formatter(fmt))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _UVICORN:  # through the root's handler, in the same format
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(numeric)
    logging.getLogger("zerolane").setLevel(min(numeric, logging.INFO))
    return handler
