"""``configure_logging``: every logger of the process, one line per record, text or JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from zerolane.logs import (
    ACCESS_FIELDS,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    formatter,
    rfc3339,
)

LOGGERS = ("", "zerolane", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@pytest.fixture
def restored() -> Iterator[None]:
    """configure_logging changes process-wide loggers: put them back after."""
    saved = [
        (lg, lg.level, list(lg.handlers), lg.propagate)
        for lg in (logging.getLogger(n) for n in LOGGERS)
    ]
    try:
        yield
    finally:
        for lg, level, handlers, propagate in saved:
            for handler in list(lg.handlers):
                if handler not in handlers:
                    lg.removeHandler(handler)
            for handler in handlers:
                if handler not in lg.handlers:
                    lg.addHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("zerolane.x", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    record.created = 1_765_108_800.25  # 2025-12-07T12:00:00.250Z
    return record


def test_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1_765_108_800.25) == "2025-12-07T12:00:00.250Z"


def test_text_is_one_line_even_with_a_traceback() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        record = _record("failed %s", "here\nthere")
        record.exc_info = sys.exc_info()
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert line.startswith("2025-12-07T12:00:00.250Z WARNING zerolane.x: failed here\\nthere | ")
    assert "ValueError: bad\\nthing" in line


def test_json_has_the_access_fields_at_the_top() -> None:
    fields = {"listener": "api", "method": "GET", "path": "/x", "status": 200}
    doc = json.loads(JsonFormatter().format(_record("msg", **{ACCESS_FIELDS: fields})))
    assert doc == {
        "time": "2025-12-07T12:00:00.250Z",
        "level": "warning",
        "logger": "zerolane.x",
        "listener": "api",
        "method": "GET",
        "path": "/x",
        "status": 200,
        "message": "msg",
    }


def test_unknown_format_and_level_are_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        formatter("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "text")


@pytest.mark.usefixtures("restored")
def test_configure_logging_json_covers_zerolane_and_uvicorn() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    logging.getLogger("uvicorn.error").warning("port in use")
    logging.getLogger("zerolane.access").info("api GET / 200")  # info: still written
    logging.getLogger("zerolane.gateway").debug("not at warning")
    logging.getLogger("uvicorn.error").info("chatter below the level")
    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(d["logger"], d["level"], d["message"]) for d in docs] == [
        ("uvicorn.error", "warning", "port in use"),
        ("zerolane.access", "info", "api GET / 200"),
    ]


@pytest.mark.usefixtures("restored")
def test_configure_logging_again_replaces_its_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("debug", "text", second)
    logging.getLogger("zerolane.gateway").debug("now shown")
    assert first.getvalue() == ""
    (line,) = second.getvalue().splitlines()
    assert line.endswith("DEBUG zerolane.gateway: now shown")


@pytest.mark.usefixtures("restored")
def test_stderr_is_the_one_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run in-process under a test runner swaps stderr, then closes it: later
    records go to the stderr of their moment, never to the closed one."""
    swapped, later = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    configure_logging("warning", "text")
    logging.getLogger("zerolane.access").info("first")
    swapped.close()
    monkeypatch.setattr("sys.stderr", later)
    logging.getLogger("zerolane.access").info("second")
    assert later.getvalue().endswith("INFO zerolane.access: second\n")
