"""``zerolane up``'s control-plane listener holds request heads to ``[http]``: a real
process, spoken to over raw sockets, its peak memory read before and after."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.conftest import build_request, raw_request
from tests.gateway.huge_head import peak_rss_kib, stream_huge_header
from tests.server_process import server_process
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
    argv = [sys.executable, "-m", "zerolane", "up", "--home", str(home), "--port", str(port)]
    with server_process(argv, port) as process:
        yield port, process.pid


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
