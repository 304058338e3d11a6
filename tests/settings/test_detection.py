"""``[detection]``'s later detectors in zerolane.toml: their defaults, a round trip of
every table, and refusals, each with its accepted twin."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from zerolane.config import parse_config, render_config
from zerolane.errors import InvalidInput
from zerolane.settings.detection import (
    DEFAULT_CHAINS,
    DEFAULT_SOURCES,
    DetectionSettings,
    hours_of,
    weekdays_of,
)

BASE: dict[str, Any] = {"trust_domain": "example.org"}


def test_the_defaults() -> None:
    detection = parse_config(BASE).detection
    assert detection.lateral_movement.min_history == 20
    assert detection.toxic_chains.rules == DEFAULT_CHAINS
    assert detection.privilege_reuse.sources == DEFAULT_SOURCES
    assert detection.off_window.schedules == ()
    assert detection.dormant.days == 30


def test_every_table_is_read_and_written_back() -> None:
    doc = {
        **BASE,
        "detection": {
            "lateral_movement": {"learning_seconds": 0, "min_history": 5, "max_items": 10},
            "toxic_chains": {
                "window_seconds": 60,
                "file": "chains.toml",
                "rules": [
                    {
                        "name": "db_then_mail",
                        "steps": [
                            {"actions": ["http:GET"], "min_sensitivity": "restricted"},
                            {"tools": ["send_email"], "destination": "external", "decision": "any"},
                        ],
                    }
                ],
            },
            "privilege_reuse": {"factor": 3, "sources": {"jkt": "key"}},
            "off_window": {
                "schedules": [
                    {
                        "workload": "spiffe://example.org/batch",
                        "hours": "1-4",
                        "weekdays": "mon-fri",
                    },
                    {"playbook": "payroll", "timezone": "Europe/Paris"},
                ]
            },
            "dormant": {"days": 7.5, "severity": "high"},
        },
    }
    config = parse_config(doc)
    detection = config.detection
    assert detection.toxic_chains.rules[0].steps[1].destination == "external"
    assert detection.privilege_reuse.factor == 3
    assert detection.off_window.schedules[1].playbook == "payroll"
    assert parse_config(tomllib.loads(render_config(config))) == config
    assert detection != DetectionSettings()


@pytest.mark.parametrize(
    ("detection", "problem"),
    [
        ({"lateral_movement": {"min_histroy": 2}}, "lateral_movement.min_histroy: unknown key"),
        ({"lateral_movement": {"max_items": 0}}, "lateral_movement.max_items: must be 1 to 1000"),
        ({"toxic_chains": {"rules": [{"name": "x", "steps": [{}]}]}}, "a chain has 2 to 8 steps"),
        ({"toxic_chains": {"rules": [{"name": " ", "steps": [{}, {}]}]}}, "must be a name"),
        (
            {"toxic_chains": {"rules": [{"name": "x", "steps": [{}, {}]}] * 2}},
            "chain names must be unique",
        ),
        (
            {"toxic_chains": {"rules": [{"name": "x", "steps": [{"tools": [""]}, {}]}]}},
            "must be a list of patterns",
        ),
        (
            {"toxic_chains": {"rules": [{"name": "x", "steps": [{"min_sensitivity": "top"}, {}]}]}},
            "unknown sensitivity 'top'",
        ),
        ({"privilege_reuse": {"factor": 1}}, "privilege_reuse.factor: must be 1.5 to 1000"),
        ({"privilege_reuse": {"sources": {"jkt": ""}}}, "privilege_reuse.sources.jkt"),
        ({"off_window": {"schedules": [{"hours": "1-4"}]}}, "names a workload, a playbook or both"),
        ({"off_window": {"schedules": [{"playbook": "p", "hours": "5-1"}]}}, "cron hour field"),
        ({"off_window": {"schedules": [{"playbook": "p", "weekdays": "mo"}]}}, "cron weekday"),
        ({"off_window": {"schedules": [{"playbook": "p", "timezone": "Mars/X"}]}}, "no time zone"),
        ({"dormant": {"days": 0}}, "dormant.days: must be 0.01 to 3650 days"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(detection: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_config({**BASE, "detection": detection})
    assert err.value.reason.startswith("config.")
    assert problem in err.value.message
    assert parse_config({**BASE, "detection": {}}).detection == DetectionSettings()


def test_cron_fields() -> None:
    assert hours_of("*") == frozenset(range(24))
    assert hours_of("0,12,18-20") == {0, 12, 18, 19, 20}
    assert weekdays_of("mon-fri") == {0, 1, 2, 3, 4}
    assert weekdays_of("sat, SUN") == {5, 6}
    for bad in ("24", "-1", "a", "3-1", ""):
        with pytest.raises(ValueError, match="is not a"):
            hours_of(bad)
