"""``[approvals]`` in zerolane.toml: defaults, round trip, bounds with their twins."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from zerolane.config import ApprovalsConfig, parse_config, render_config
from zerolane.errors import InvalidInput

BASE: dict[str, Any] = {"trust_domain": "example.org"}


def test_the_defaults_and_a_round_trip() -> None:
    assert parse_config(BASE).approvals == ApprovalsConfig(ttl=900, max_pending=16)
    assert "approvals" not in tomllib.loads(render_config(parse_config(BASE)))
    config = parse_config({**BASE, "approvals": {"ttl": 60, "max_pending": 1}})
    assert config.approvals == ApprovalsConfig(ttl=60, max_pending=1)
    assert parse_config(tomllib.loads(render_config(config))).approvals == config.approvals


@pytest.mark.parametrize(
    "approvals",
    [
        {"ttl": 59},
        {"ttl": 86401},
        {"max_pending": 0},
        {"max_pending": 1001},
        {"retention": 3599},
        {"retention": 365 * 86400 + 1},
        {"retention": "7d"},
        {"holds_refresh": 0.01},
        {"holds_refresh": 61},
        {"other": 1},
    ],
)
def test_out_of_bounds_is_refused(approvals: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_config({**BASE, "approvals": approvals})


def test_retention_and_holds_refresh_parse_and_reach_the_deployment_settings() -> None:
    defaults = parse_config(BASE).approvals
    assert (defaults.retention, defaults.holds_refresh) == (7 * 86400, 1.0)
    config = parse_config({**BASE, "approvals": {"retention": 3600, "holds_refresh": 0.5}})
    assert (config.approvals.retention, config.approvals.holds_refresh) == (3600, 0.5)
    assert parse_config(tomllib.loads(render_config(config))).approvals == config.approvals
