"""Bodies stream through the gateway within limits, and within a memory bound.

The size limits are checked on the in-process gateway of the shared stack (1 MiB
requests, 2 MiB responses). The 50 MB transfers go through ``zerolane gateway run``
as its own process, whose peak resident memory (``VmHWM``) is read before and after.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.conftest import (
    Stack,
    build_request,
    gateway_command,
    gateway_toml,
    peak_rss_kib,
    raw_request,
    subprocess_env,
)
from zerolane.cli.background import free_port

pytestmark = pytest.mark.e2e
MIB = 1 << 20
BIG = 50 * 1000 * 1000
RSS_BOUND_KIB = 40 * 1024


def _blocks(total: int, block: int = 256 * 1024) -> Iterator[bytes]:
    chunk = b"a" * block
    sent = 0
    while sent < total:
        piece = chunk[: min(block, total - sent)]
        sent += len(piece)
        yield piece


def test_a_declared_body_over_the_limit_is_refused_before_forwarding(stack: Stack) -> None:
    before = stack.upstream.count()
    with stack.task() as task:
        url = stack.url("/finance/upload")
        headers = [*task.headers("POST", url).items(), ("Content-Length", str(2 * MIB))]
        # only the head is sent: the refusal must not wait for a body
        response = raw_request(
            stack.gateway.port, build_request("POST", "/finance/upload", headers)
        )
        assert response.status == 413
        assert json.loads(response.body)["reason"] == "request.too_large"
        twin = task.request("POST", url, content=b"b" * MIB)
        assert twin.status_code == 200, twin.text
        assert twin.json()["body_length"] == MIB
    assert stack.upstream.count() == before + 1


def test_a_streamed_body_over_the_limit_is_cut_off(stack: Stack) -> None:
    with stack.task() as task:
        url = stack.url("/finance/upload")
        response = task.request("POST", url, content=_blocks(3 * MIB))
        assert response.status_code == 413
        assert response.json()["reason"] == "request.too_large"
        assert response.headers["connection"] == "close"
        twin = task.request("POST", url, content=_blocks(MIB - 1))
        assert twin.status_code == 200, twin.text
        assert twin.json()["body_length"] == MIB - 1


def test_responses_over_the_limit_are_refused_or_cut_off(stack: Stack) -> None:
    with stack.task() as task:
        declared = task.request("GET", stack.url(f"/finance/download/{3 * MIB}"))
        assert declared.status_code == 502
        assert declared.json()["reason"] == "upstream.too_large"
        with pytest.raises(httpx.RemoteProtocolError):
            task.request("GET", stack.url(f"/finance/download/{3 * MIB}?chunked"))
        twin = task.request("GET", stack.url(f"/finance/download/{2 * MIB}?chunked"))
        assert twin.status_code == 200
        assert len(twin.content) == 2 * MIB
    metrics = httpx.get(stack.url("/metrics")).text
    assert 'zerolane_gateway_upstream_errors_total{kind="too_large",upstream="finance"}' in metrics
    assert 'zerolane_gateway_upstream_errors_total{kind="aborted",upstream="finance"}' in metrics


class _GatewayProcess:
    def __init__(self, stack: Stack) -> None:
        self.port = free_port()
        folder = stack.home.parent / f"gw-{self.port}"
        limits = 'max_request_body = "64 MiB"'
        config = gateway_toml(folder, stack.upstream.port, self.port, limits=limits)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            gateway_command("run", "--config", str(config), "--home", str(stack.home)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=subprocess_env(),
        )

    def wait_ready(self) -> None:
        for _ in range(300):
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited: {self.process.communicate()[1]!r}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the gateway did not start")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            assert self.process.stderr is not None
            self.process.stderr.close()
        return code


def test_50_mb_stream_through_a_gateway_process_within_a_memory_bound(stack: Stack) -> None:
    gateway = _GatewayProcess(stack)
    try:
        gateway.wait_ready()
        with stack.task() as task:
            upload = f"{gateway.url}/finance/upload"
            warm = task.request("POST", upload, content=b"w" * (256 * 1024))
            assert warm.status_code == 200, warm.text
            baseline = peak_rss_kib(gateway.process.pid)

            sent = task.request(
                "POST", upload, content=_blocks(BIG), headers={"Content-Length": str(BIG)}
            )
            assert sent.status_code == 200, sent.text
            echo = sent.json()
            assert echo["body_length"] == BIG
            assert echo["body_sha256"] == hashlib.sha256(b"a" * BIG).hexdigest()

            chunked = task.request("POST", upload, content=_blocks(BIG))
            assert chunked.status_code == 200, chunked.text
            assert chunked.json()["body_length"] == BIG

            url = f"{gateway.url}/finance/download/{BIG}"
            received = 0
            with stack.agent.http.stream("GET", url, headers=task.headers("GET", url)) as response:
                assert response.status_code == 200
                for block in response.iter_bytes():
                    received += len(block)
            assert received == BIG

            growth = peak_rss_kib(gateway.process.pid) - baseline
            assert growth < RSS_BOUND_KIB, f"peak RSS grew by {growth} KiB"
    finally:
        assert gateway.stop() == 0
