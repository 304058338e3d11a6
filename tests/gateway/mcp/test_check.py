"""``mcp-gateway check``: an upstream that cannot start fails it, named with its cause."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.gateway.mcp.broken_servers import (
    MISSING_MODULE,
    importing_missing_module,
    missing_executable,
    sample,
)
from zerolane.errors import Unavailable
from zerolane.gateway.mcp.check import UpstreamCheck, check_upstreams
from zerolane.gateway.mcp.config import GatewayConfig, UpstreamConfig


def _config(*servers: UpstreamConfig) -> GatewayConfig:
    return GatewayConfig(
        public_url="http://127.0.0.1:1",
        authorization_servers=("http://127.0.0.1:2",),
        servers=servers,
        audience="http://127.0.0.1:1/mcp",
    )


def test_a_server_that_starts_passes_with_its_tools() -> None:
    (checked,) = check_upstreams(_config(sample()))
    assert checked == UpstreamCheck("tools", checked.tools)
    assert "read_report" in checked.tools


def test_a_module_that_fails_to_import_fails_the_check(tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as raised:
        check_upstreams(_config(sample(), importing_missing_module(tmp_path)))
    err = raised.value
    assert err.reason == "mcp.upstream"
    assert err.message.startswith("1 of 2 MCP upstream server(s) cannot start: upstream 'broken'")
    assert "the process exited before initializing" in err.message
    assert f"ModuleNotFoundError: No module named '{MISSING_MODULE}'" in err.message
    assert "'tools'" not in err.message  # the twin started fine
    assert "Traceback" not in err.message


def test_a_missing_executable_fails_the_check(tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as raised:
        check_upstreams(_config(missing_executable(tmp_path), sample()))
    assert "upstream 'absent': FileNotFoundError" in raised.value.message
    assert "no-such-server" in raised.value.message


def test_an_http_upstream_nobody_serves_fails_the_check() -> None:
    web = UpstreamConfig(name="web", destination="web.example", url="http://127.0.0.1:9/mcp")
    with pytest.raises(Unavailable, match="upstream 'web'"):
        check_upstreams(_config(web))


def test_a_server_that_never_answers_initialize_fails_in_bounded_time(tmp_path: Path) -> None:
    silent = dataclasses.replace(
        sample(), name="silent", args=("-c", "import time; time.sleep(60)")
    )
    with pytest.raises(Unavailable, match="upstream 'silent': no answer to initialize in time"):
        check_upstreams(_config(silent), connect_seconds=1.0)
