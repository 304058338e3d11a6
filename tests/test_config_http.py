"""``[http]``, the request-head limits of every listener (zerolane.toml, the HTTP and
MCP gateways' files, forward-auth's): defaults, round trip, refusals with twins."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from zerolane.config import HttpLimits, parse_config, parse_http_limits, render_config
from zerolane.errors import InvalidInput
from zerolane.gateway.config import parse_gateway_config
from zerolane.gateway.forward_auth_config import parse_config as parse_forward_auth
from zerolane.gateway.mcp import config as mcp

BASE: dict[str, Any] = {"trust_domain": "example.org"}
GATEWAY: dict[str, Any] = {
    "public_url": "http://127.0.0.1:8800",
    "upstreams": [
        {
            "name": "finance",
            "base_url": "http://127.0.0.1:9000/finance",
            "prefix": "/finance",
            "routes": [{"method": "GET", "path": "/r", "action": "read", "resource": "f/r"}],
        }
    ],
}
MCP: dict[str, Any] = {
    "public_url": "https://mcp.example.org",
    "authorization_servers": ["https://zerolane.example.org"],
    "servers": [{"name": "r", "command": "python", "args": ["s.py"], "destination": "r.int"}],
}
FORWARD_AUTH: dict[str, Any] = {
    "public_url": "https://api.example.org",
    "destination": "api",
    "routes": [{"method": "GET", "path": "/r", "action": "read", "resource": "r"}],
}
CUSTOM: dict[str, Any] = {
    "max_request_line_bytes": 4096,
    "max_header_line_bytes": 16384,
    "max_headers_bytes": 65536,
    "max_header_count": 50,
    "header_timeout_seconds": 2.5,
}


def test_the_defaults_are_nginx_like() -> None:
    limits = parse_http_limits({})
    assert limits == HttpLimits()
    assert (limits.max_request_line_bytes, limits.max_header_line_bytes) == (8192, 8192)
    assert (limits.max_headers_bytes, limits.max_header_count) == (32768, 100)
    assert limits.header_timeout_seconds == 10.0
    config = parse_config(dict(BASE))
    assert config.http == HttpLimits()
    assert "http" not in tomllib.loads(render_config(config))


def test_every_listener_reads_its_http_table() -> None:
    expected = HttpLimits(**CUSTOM)
    assert parse_config({**BASE, "http": CUSTOM}).http == expected
    assert parse_gateway_config({**GATEWAY, "http": CUSTOM}, Path("/")).http == expected
    assert mcp.parse_gateway_config({**MCP, "http": CUSTOM}, Path("/")).http == expected
    assert parse_forward_auth({**FORWARD_AUTH, "http": CUSTOM}).http == expected
    assert parse_gateway_config(GATEWAY, Path("/")).http == HttpLimits()
    assert mcp.parse_gateway_config(MCP, Path("/")).http == HttpLimits()
    assert parse_forward_auth(FORWARD_AUTH).http == HttpLimits()


def test_http_round_trips_through_zerolane_toml() -> None:
    config = parse_config({**BASE, "http": {**CUSTOM, "header_timeout_seconds": 3}})
    again = parse_config(tomllib.loads(render_config(config)))
    assert again.http == config.http
    assert again.http.header_timeout_seconds == 3.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"max_header_line_bytes": 0},
            "http.max_header_line_bytes: must be 1 to 1048576 bytes, not 0",
        ),
        ({"max_request_line_bytes": -1}, "http.max_request_line_bytes: must be 1 to 1048576 bytes"),
        ({"max_headers_bytes": 2 << 20}, "http.max_headers_bytes: must be 1 to 1048576 bytes"),
        ({"max_header_count": 0}, "http.max_header_count: must be 1 to 10000, not 0"),
        ({"max_header_count": -5}, "http.max_header_count: must be 1 to 10000"),
        ({"header_timeout_seconds": 0}, "http.header_timeout_seconds: must be over 0"),
        ({"header_timeout_seconds": -1.5}, "http.header_timeout_seconds: must be over 0"),
        ({"header_timeout_seconds": 3601}, "at most 3600"),
        (
            {"max_header_line_bytes": 65536},
            "http: max_header_line_bytes is larger than max_headers_bytes",
        ),
    ],
)
def test_bad_values_are_refused_with_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_config({**BASE, "http": table})
    assert refused.value.reason == "config.http"
    assert message in refused.value.message
    with pytest.raises(InvalidInput) as gateway:
        parse_gateway_config({**GATEWAY, "http": table}, Path("/"))
    assert (gateway.value.reason, gateway.value.message) == ("config.http", refused.value.message)
    with pytest.raises(InvalidInput):
        mcp.parse_gateway_config({**MCP, "http": table}, Path("/"))
    with pytest.raises(InvalidInput) as forward_auth:
        parse_forward_auth({**FORWARD_AUTH, "http": table})
    assert (forward_auth.value.reason, forward_auth.value.message) == (
        "config.http",
        refused.value.message,
    )


@pytest.mark.parametrize(
    ("table", "reason", "message"),
    [
        ({"max_header_count": "100"}, "config.type", "http.max_header_count: must be an integer"),
        ({"max_headers_bytes": True}, "config.type", "http.max_headers_bytes: must be an integer"),
        ({"max_header_line_bytes": 8.5}, "config.type", "must be an integer"),
        ({"header_timeout_seconds": "10"}, "config.type", "must be a number"),
        ({"header_timeout_seconds": True}, "config.type", "must be a number"),
        ({"max_header_size": 8192}, "config.unknown_key", "http.max_header_size"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused(
    table: dict[str, Any], reason: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_config({**BASE, "http": table})
    assert refused.value.reason == reason
    assert message in refused.value.message


def test_http_must_be_a_table() -> None:
    with pytest.raises(InvalidInput, match="http: must be a table"):
        parse_config({**BASE, "http": 5})
    with pytest.raises(InvalidInput, match="http: must be a table"):
        parse_http_limits([])


def test_the_limits_at_their_bounds_are_accepted() -> None:
    """The twins: the smallest and largest values each key takes."""
    low = {
        "max_request_line_bytes": 1,
        "max_header_line_bytes": 1,
        "max_headers_bytes": 1,
        "max_header_count": 1,
        "header_timeout_seconds": 0.001,
    }
    high = {
        "max_request_line_bytes": 1 << 20,
        "max_header_line_bytes": 1 << 20,
        "max_headers_bytes": 1 << 20,
        "max_header_count": 10_000,
        "header_timeout_seconds": 3600,
    }
    assert parse_http_limits(low).max_headers_bytes == 1
    assert parse_http_limits(high).header_timeout_seconds == 3600.0
