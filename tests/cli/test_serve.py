"""``zerolane up --port 0`` and ``zerolane gateway run --port 0``: a free port is taken and
the line announcing the server names the port it listens on, not 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue

import httpx
import pytest

from tests.cli.test_gateway_cli import _example
from zerolane.server.deployment import init_home

TD = "port0.example"


class _Served:
    """A zerolane command in its own process; its stderr lines read as they come."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "zerolane", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: Queue[str] = Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except Empty:
                raise AssertionError(f"no line matching {pattern!r}: {self.seen}") from None
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@pytest.fixture
def home(tmp_path: Path) -> Path:
    init_home(tmp_path / "home", TD)[0].close()
    return tmp_path / "home"


@pytest.fixture
def served() -> Iterator[list[_Served]]:
    started: list[_Served] = []
    yield started
    for process in started:
        process.stop()


def test_up_on_port_0_announces_the_port_it_got(home: Path, served: list[_Served]) -> None:
    up = _Served("up", "--home", str(home), "--port", "0", "--no-gateways")
    served.append(up)
    port = int(up.wait_for(r"control plane on http://127\.0\.0\.1:(\d+)").group(1))
    assert port != 0
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert up.stop() == 0


def test_gateway_run_on_port_0_announces_the_port_it_got(
    tmp_path: Path, home: Path, served: list[_Served]
) -> None:
    config = _example(tmp_path)
    args = ["gateway", "run", "--config", str(config), "--home", str(home), "--port", "0"]
    gateway = _Served(*args)
    served.append(gateway)
    port = int(gateway.wait_for(r"zerolane gateway on http://127\.0\.0\.1:(\d+) ").group(1))
    assert port != 0
    response = httpx.get(f"http://127.0.0.1:{port}/finance/reports/q3", timeout=5)
    assert response.status_code == 401  # it is the gateway answering: no task token
    assert gateway.stop() == 0
