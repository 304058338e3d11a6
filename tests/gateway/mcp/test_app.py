"""The gateway's lifespan: it says which upstreams serve (only those that initialized),
and one that cannot start is logged once with its cause, then retried with backoff."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import cast

import pytest
from starlette.testclient import TestClient

from tests.gateway.mcp.broken_servers import (
    MISSING_MODULE,
    importing_missing_module,
    missing_executable,
    sample,
)
from zerolane.gateway.mcp import GatewayConfig, create_gateway_app
from zerolane.gateway.mcp.app import serving_line
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.upstream import Upstream

#: the lifespan decides nothing: no core services needed to start and stop
NO_CORE = cast(Enforcement, None)


def _config(*servers: UpstreamConfig) -> GatewayConfig:
    return GatewayConfig(
        public_url="http://testserver",
        authorization_servers=("http://127.0.0.1:2",),
        servers=servers,
        audience="http://testserver/mcp",
    )


def _messages(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name]


def test_only_upstreams_that_initialized_count_as_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="zerolane.gateway.mcp")
    config = _config(sample(), importing_missing_module(tmp_path), missing_executable(tmp_path))
    app = create_gateway_app(config, NO_CORE)
    with TestClient(app) as client:
        health = client.get("/healthz").json()
        ready = client.get("/readyz")
        time.sleep(1.8)  # retried meanwhile (0.5 s, then 1 s): the same cause, not logged again
    assert health["upstreams_with_tools"] == ["tools"]
    # not ready while an upstream never connected: each named, with its cause
    assert ready.status_code == 503
    assert ready.json()["serving"] == ["tools"]
    assert ready.json()["not_serving"] == ["absent", "broken"]  # names: causes are logged
    assert "stderr" not in ready.text
    assert _messages(caplog, "zerolane.gateway.mcp.app") == [
        "1 of 3 upstream server(s) serving (tools); not serving: broken, absent"
    ]
    startup = next(r for r in caplog.records if r.name == "zerolane.gateway.mcp.app")
    assert startup.levelno == logging.WARNING
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "zerolane.gateway.mcp.upstream" and r.levelno >= logging.WARNING
    ]
    assert len(warned) == 2  # each failing upstream once, with its cause
    broken = next(m for m in warned if m.startswith("MCP upstream broken"))
    assert "the process exited before initializing" in broken
    assert f"ModuleNotFoundError: No module named '{MISSING_MODULE}'" in broken
    assert "FileNotFoundError" in next(m for m in warned if m.startswith("MCP upstream absent"))
    retries = [
        r
        for r in caplog.records
        if r.levelno == logging.DEBUG and r.getMessage().startswith("MCP upstream broken still")
    ]
    assert retries  # it was retried, quietly
    assert "Traceback" not in capfd.readouterr().err  # the child's traceback went nowhere


def test_all_serving_is_an_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zerolane.gateway.mcp")
    with TestClient(create_gateway_app(_config(sample()), NO_CORE)) as client:
        ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")  # the twin
    (record,) = [r for r in caplog.records if r.name == "zerolane.gateway.mcp.app"]
    assert (record.levelno, record.getMessage()) == (
        logging.INFO,
        "1 of 1 upstream server(s) serving (tools)",
    )
    assert "MCP upstream tools is serving (3 tools)" in _messages(
        caplog, "zerolane.gateway.mcp.upstream"
    )


def test_the_serving_line() -> None:
    up, down = (
        Upstream(sample()),
        Upstream(UpstreamConfig(name="x", destination="d", url="http://h")),
    )
    assert serving_line([up, down]) == "0 of 2 upstream server(s) serving; not serving: tools, x"
