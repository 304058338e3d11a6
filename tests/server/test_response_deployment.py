"""The deployment's responder: built from ``[response]``, refused at start when a rule
alerts and the webhook's secret is not in the environment (never sent unsigned), run
after each detection step, its scores handed to this process's decider."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerolane.config import CONFIG_NAME
from zerolane.errors import InvalidInput
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment, init_home

ALERTING = """
[response.webhook]
url = "https://alerts.example.org/hook"
secret_env = "ZL_TEST_ALERT_SECRET"

[[response.rules]]
name = "page"
min_severity = "high"
actions = ["alert"]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    deployment, _ = init_home(path, "example.org")
    deployment.close()
    with (path / CONFIG_NAME).open("a") as config:
        config.write(ALERTING)
    return path


def test_an_alert_rule_without_its_secret_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZL_TEST_ALERT_SECRET", raising=False)
    deployment = Deployment.open(home)
    try:
        with pytest.raises(InvalidInput) as caught:
            deployment.responder  # noqa: B018
        assert caught.value.reason == "config.response_secret"
        with pytest.raises(InvalidInput) as refused:  # the API is not served without it
            create_app(deployment)
        assert refused.value.reason == "config.response_secret"
    finally:
        deployment.close()


def test_with_its_secret_the_responder_runs_after_the_detectors(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZL_TEST_ALERT_SECRET", "not-logged")
    deployment = Deployment.open(home)
    try:
        assert deployment.responder.step() > 0  # the home's own events: nothing to do
        assert deployment.detection.catch_up() > 0
        assert deployment.risk.facts("tsk_x", "spiffe://example.org/w").task == 0
    finally:
        deployment.close()
