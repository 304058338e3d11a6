"""A zerolane server started as its own process, for the tests that need a real one:
started, waited for until ``/healthz`` answers, stopped with SIGTERM (killed if it
does not stop), its stderr pipe closed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

#: the environment a test's server process runs with: plain, wide output
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


@contextmanager
def server_process(
    argv: Sequence[str], port: int, *, ready_seconds: float = 30.0, stop_seconds: float = 20.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (a server listening on 127.0.0.1:``port``) until the block ends."""
    process = subprocess.Popen(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV
    )
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{argv[:4]} exited: {process.communicate()[1]!r}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_seconds)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stderr is not None
            process.stderr.close()
