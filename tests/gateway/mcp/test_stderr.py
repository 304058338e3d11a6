"""A stdio upstream's stderr: kept while it starts (its last line names a failure), then
relayed to the log line by line once it serves."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from zerolane.gateway.mcp.stderr import TAIL_LINES, StderrRelay


def _wait_for(caplog: pytest.LogCaptureFixture, text: str) -> None:
    deadline = time.monotonic() + 5
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.01)


def test_held_while_starting_then_relayed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zerolane.gateway.mcp.stderr")
    relay = StderrRelay("tools")
    relay.file.write("starting up\n")
    relay.file.flush()
    time.sleep(0.1)
    assert caplog.records == []  # held: a failing start is reported by its cause, once
    relay.serving()
    relay.file.write("\n   \nrequest handled\n")
    relay.file.flush()
    _wait_for(caplog, "request handled")
    assert [r.getMessage() for r in caplog.records] == [
        "MCP upstream tools (stderr): request handled"
    ]
    assert relay.last_line(5) == "request handled"


def test_a_process_that_dies_is_read_to_its_last_line() -> None:
    relay = StderrRelay("broken")
    code = "import sys\nfor i in range(100): print('line', i, file=sys.stderr)\nraise SystemExit(3)"
    done = subprocess.run([sys.executable, "-c", code], stderr=relay.file, check=False)
    assert done.returncode == 3
    assert relay.last_line(5) == "line 99"
    assert len(relay._tail) == TAIL_LINES  # bounded
