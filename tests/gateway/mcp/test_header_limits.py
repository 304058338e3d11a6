"""``zerolane mcp-gateway run`` holds request heads to its file's ``[http]``: a real
process, spoken to over raw sockets (the limits themselves: tests/gateway/test_header_limits.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tomli_w

from tests.gateway.conftest import build_request, raw_request
from tests.gateway.mcp.conftest import TD, gateway_config
from tests.gateway.mcp.harness import HttpUpstream
from tests.server_process import server_process
from zerolane.cli.background import BackgroundServer, free_port
from zerolane.server.deployment import init_home

pytestmark = pytest.mark.e2e
RUN_APP = "from zerolane.cli.mcp_gateway import app; app(prog_name='zerolane mcp-gateway')"


def test_the_mcp_gateway_refuses_a_header_over_its_http_limit(tmp_path: Path) -> None:
    deployment, _ = init_home(tmp_path / "home", TD)
    try:
        with BackgroundServer(deployment) as cp, HttpUpstream(tmp_path / "web.jsonl") as web:
            port = free_port()
            doc = gateway_config(port, cp.url, web.url, tmp_path / "stdio.jsonl")
            doc["http"] = {"max_header_line_bytes": 1024}
            config = tmp_path / "gateway.toml"
            config.write_text(tomli_w.dumps(doc))
            argv = ["run", "--config", str(config), "--home", str(tmp_path / "home")]
            with server_process([sys.executable, "-c", RUN_APP, *argv], port) as process:
                long = build_request("POST", "/mcp", [("X-Note", "n" * 1020)])
                refused = raw_request(port, long)
                assert refused.status == 431
                assert refused.headers["connection"] == "close"
                assert json.loads(refused.body)["reason"] == "request.headers_too_large"
                # the twin reaches the gateway, which checks its Host first (DNS-rebinding
                # protection: only the public host and the listen address are served)
                twin = raw_request(port, build_request("POST", "/mcp", [("X-Note", "n" * 900)]))
                assert (twin.status, json.loads(twin.body)["reason"]) == (421, "request.host")
            assert process.returncode == 0  # stopped cleanly by SIGTERM
    finally:
        deployment.close()
