"""``zerolane up``'s control-plane listener holds request heads to ``[http]``: a real
process, spoken to over raw sockets, its peak memory read before and after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.conftest import build_request, raw_request
from tests.gateway.huge_head import peak_rss_kib, stream_huge_header
from zerolane.cli.background import free_port
from zerolane.server.deployment import init_home

pytestmark = pytest.mark.e2e
RSS_BOUND_KIB = 16 * 1024


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """``zerolane up --no-gateways`` with ``[http] max_header_count = 20``: its port and pid."""
    home = tmp_path_factory.mktemp("up") / "home"
    init_home(home, "limits.zerolane.dev")[0].close()
    with (home / "zerolane.toml").open("a") as config:
        config.write("\n[http]\nmax_header_count = 20\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "zerolane", "up", "--home", str(home), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"up exited: {process.communicate()[1]!r}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stderr is not None
            process.stderr.close()


def test_a_64_mib_header_is_431_within_a_memory_bound(api: tuple[int, int]) -> None:
    port, pid = api
    baseline = peak_rss_kib(pid)
    answer = stream_huge_header(port).answer
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
    assert b"connection: close\r\n" in answer
    assert b"\r\ndate: " in answer  # the server's default headers, as on its other answers
    assert b'"reason": "request.headers_too_large"' in answer
    growth = peak_rss_kib(pid) - baseline
    assert growth < RSS_BOUND_KIB, f"peak RSS grew by {growth} KiB"
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_the_configured_header_count_holds(api: tuple[int, int]) -> None:
    """``[http] max_header_count = 20`` of zerolane.toml: 21 headers are refused, 20
    (build_request adds Host and Connection) served."""
    port, _ = api
    twenty = [(f"X-H{i}", "v") for i in range(18)]
    assert raw_request(port, build_request("GET", "/healthz", twenty)).status == 200
    refused = raw_request(port, build_request("GET", "/healthz", [*twenty, ("X-H18", "v")]))
    assert refused.status == 431
    assert b"more than 20 headers" in refused.body


def test_a_request_line_over_8_kib_is_414(api: tuple[int, int]) -> None:
    port, _ = api
    target = "/healthz?" + "q" * 8200
    refused = raw_request(port, build_request("GET", target, []))
    assert refused.status == 414
    assert b'"reason": "request.line_too_long"' in refused.body
    twin = raw_request(port, build_request("GET", "/healthz?" + "q" * 8000, []))
    assert twin.status == 200
