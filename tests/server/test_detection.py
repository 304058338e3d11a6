"""The control plane runs the detectors while it is served (``[detection]``), and
exposes how far behind the log they are."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from tests.server.conftest import Api
from zerolane.errors import Unavailable
from zerolane.server.app import create_app
from zerolane.server.deployment import init_home
from zerolane.server.metrics import DetectionMetrics
from zerolane.settings.detection import DetectionSettings


def scrape(api: Api) -> str:
    reply = api.client.get("/metrics")
    assert reply.status_code == 200
    return reply.text


def test_the_served_api_runs_the_detectors_and_shows_their_lag(api: Api) -> None:
    deadline = time.monotonic() + 10
    while 'zerolane_detection_lag_events{detector="replay"} 0.0' not in scrape(api):
        assert time.monotonic() < deadline, scrape(api)
        time.sleep(0.05)
    text = scrape(api)
    for name in ("replay", "scope_probing", "delegation_fanout"):
        assert f'zerolane_detection_lag_events{{detector="{name}"}}' in text
    assert "zerolane_detection_recorded_total 0.0" in text
    assert "zerolane_detection_step_failures_total 0.0" in text
    assert "zerolane_response_fired_total 0.0" in text  # the responder's, beside them
    assert "zerolane_response_alerts_failed_total 0.0" in text
    assert "zerolane_response_alerts_queued 0.0" in text
    # it read the home's first events and stores its cursor once the log is quiet (the
    # next poll reads nothing)
    while (cursor := api.deployment.stores.get_cursor("replay")) is None:
        assert time.monotonic() < deadline, "the cursor was never stored"
        time.sleep(0.05)
    assert cursor.seq >= 1


def test_detection_can_be_turned_off(tmp_path: Path) -> None:
    deployment, _ = init_home(tmp_path / "home", "example.org")
    deployment.config = dataclasses.replace(
        deployment.config, detection=DetectionSettings(enabled=False)
    )
    try:
        with TestClient(create_app(deployment)) as client:
            assert "zerolane_detection" not in client.get("/metrics").text
        assert "detection" not in deployment.__dict__  # never even built
        assert deployment.stores.list_cursors() == []
    finally:
        deployment.close()


class Unreachable:
    recorded = 2
    failures = 1

    def lag(self) -> dict[str, int]:
        raise Unavailable("store.read", "the database could not be read")


def test_a_scrape_leaves_out_a_lag_it_cannot_read(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    registry.register(DetectionMetrics(Unreachable()))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert "zerolane_detection_lag_events" not in text
    assert "zerolane_detection_recorded_total 2.0" in text
    assert "zerolane_detection_step_failures_total 1.0" in text
    assert "could not be read" in caplog.text
