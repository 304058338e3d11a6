"""``[detection]`` in zerolane.toml: defaults, round trip, refusals with their twins."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from zerolane.config import parse_config, render_config
from zerolane.errors import InvalidInput
from zerolane.settings.detection import REPLAY_REASONS, DetectionSettings

BASE: dict[str, Any] = {"trust_domain": "example.org"}


def test_the_defaults_run_every_detector() -> None:
    detection = parse_config(BASE).detection
    assert detection == DetectionSettings()
    assert detection.enabled
    assert detection.replay.threshold == 1
    assert detection.replay.reasons == REPLAY_REASONS
    assert detection.scope_probing.distinct == 5
    assert detection.delegation_fanout.children == 10
    assert "detection" not in tomllib.loads(render_config(parse_config(BASE)))


def test_thresholds_are_read_and_written_back() -> None:
    doc = {
        **BASE,
        "detection": {
            "poll_interval": 1,
            "batch_size": 100,
            "replay": {"threshold": 3, "reasons": ["dpop.replayed"], "severity": "medium"},
            "scope_probing": {"distinct": 8, "window_seconds": 120},
            "delegation_fanout": {"enabled": False, "depth": 3},
        },
    }
    config = parse_config(doc)
    assert config.detection.poll_interval == 1
    assert config.detection.replay.reasons == ("dpop.replayed",)
    assert config.detection.scope_probing.window_seconds == 120
    assert not config.detection.delegation_fanout.enabled
    assert parse_config(tomllib.loads(render_config(config))) == config


@pytest.mark.parametrize(
    ("detection", "problem"),
    [
        ({"replay": {"treshold": 2}}, "detection.replay.treshold: unknown key"),
        ({"replay": {"threshold": 0}}, "detection.replay.threshold: must be 1 to 10000"),
        ({"replay": {"reasons": []}}, "detection.replay.reasons: must be a list of reason ids"),
        ({"replay": {"reasons": [""]}}, "detection.replay.reasons: must be a list of reason ids"),
        ({"scope_probing": {"distinct": 1}}, "detection.scope_probing.distinct: must be 2"),
        ({"scope_probing": {"severity": "dire"}}, "detection.scope_probing.severity"),
        ({"delegation_fanout": {"window_seconds": 0}}, "window_seconds: must be 1 to 86400"),
        ({"poll_interval": 0}, "detection.poll_interval: must be 0.01 to 60"),
        ({"enabled": "yes"}, "detection.enabled: must be true or false"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(detection: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_config({**BASE, "detection": detection})
    assert problem in err.value.message
    # the twin: the section without the bad key is accepted
    assert parse_config({**BASE, "detection": {}}).detection == DetectionSettings()
