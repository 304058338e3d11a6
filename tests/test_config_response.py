"""``[response]`` in zerolane.toml: defaults, round trip, refusals with their twins."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from zerolane.config import parse_config, render_config
from zerolane.errors import InvalidInput
from zerolane.settings.response import ResponseSettings

BASE: dict[str, Any] = {"trust_domain": "example.org"}
HOOK = {"url": "https://alerts.example.org/zerolane"}


def test_the_defaults_score_and_do_nothing() -> None:
    response = parse_config(BASE).response
    assert response == ResponseSettings()
    assert response.rules == ()
    assert [response.risk.weight(s) for s in ("low", "medium", "high", "dire")] == [10, 30, 60, 0]
    assert response.risk.half_life_seconds == 3600
    assert "response" not in tomllib.loads(render_config(parse_config(BASE)))


def test_rules_are_read_and_written_back() -> None:
    doc = {
        **BASE,
        "response": {
            "risk": {"half_life_seconds": 600, "weights": {"high": 80}},
            "webhook": {**HOOK, "secret_env": "MY_SECRET", "max_attempts": 3},
            "rules": [
                {"name": "page", "min_severity": "high", "actions": ["alert"]},
                {"name": "stop-probers", "detectors": ["scope_probing"], "actions": ["suspend"]},
                {"name": "risky", "min_risk": 70, "actions": ["revoke", "disable"]},
            ],
        },
    }
    config = parse_config(doc)
    response = config.response
    assert response.risk.weight("high") == 80
    assert response.risk.weight("low") == 10
    assert [r.name for r in response.rules] == ["page", "stop-probers", "risky"]
    assert response.rules[2].min_risk == 70
    assert parse_config(tomllib.loads(render_config(config))) == config


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        ({"rules": [{"name": "r", "actions": ["suspend"]}]}, "needs detectors, min_severity"),
        ({"rules": [{"name": "r", "min_risk": 5, "actions": []}]}, "needs actions"),
        ({"rules": [{"name": "r", "min_risk": 5, "actions": ["page"]}]}, "actions"),
        ({"rules": [{"name": "r", "min_risk": 101, "actions": ["suspend"]}]}, "0 to 100"),
        ({"rules": [{"name": "a b", "min_risk": 5, "actions": ["suspend"]}]}, "name: letters"),
        ({"rules": [{"name": "", "min_risk": 5, "actions": ["suspend"]}]}, "name: letters"),
        (
            {"rules": [{"name": "r", "min_risk": 5, "actions": ["suspend"]}] * 2},
            "rule names must be unique",
        ),
        (
            {"rules": [{"name": "r", "min_risk": 5, "actions": ["alert"]}]},
            "needs [response.webhook]",
        ),
        ({"webhook": {"url": "ftp://x.example/"}}, "url must be an http(s) URL"),
        ({"risk": {"half_life_seconds": 0}}, "half_life_seconds: must be 1 to"),
        ({"risk": {"weights": {"dire": 5}}}, "response.risk.weights"),
        ({"risk": {"weights": {"high": 500}}}, "must be 0 to 100"),
    ],
)
def test_bad_response_settings_are_refused(response: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_config({**BASE, "response": response})
    assert problem in caught.value.message


def test_an_alert_rule_with_a_webhook_is_accepted() -> None:
    """The twin of the refusal above."""
    rule = {"name": "r", "min_risk": 5, "actions": ["alert"]}
    config = parse_config({**BASE, "response": {"rules": [rule], "webhook": HOOK}})
    assert config.response.rules[0].actions == ("alert",)
