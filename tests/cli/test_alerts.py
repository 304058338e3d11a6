"""``zerolane alerts list``: queued and failed alerts from the responder's stored state,
as a table or JSON; bodies never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_task import run
from zerolane.audit.chain import seal
from zerolane.detection.risk import RESPONSE_CURSOR
from zerolane.server.deployment import Deployment, init_home
from zerolane.store.changes import AdvanceCursors, CursorAdvance

QUEUED = {
    "id": "alr_queued",
    "rule": "page",
    "detection_seq": 7,
    "body": '{"secret-ish": "body"}',
    "attempts": 1,
    "next_at": 0.0,  # due now: shown as -
    "last_error": "http 503",
}
FAILED = {
    "id": "alr_failed",
    "rule": "page",
    "detection_seq": 3,
    "attempts": 5,
    "last_error": "ClientConnectorError",
    "next_at": 0.0,
    "at": 1_700_000_000.0,
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    deployment, _ = init_home(path, "example.org")
    deployment.close()
    return path


def store_alerts(home: Path) -> None:
    deployment = Deployment.open(home)
    try:
        state = json.dumps({"risk": {}, "alerts": [QUEUED], "failed": [FAILED]})
        change = AdvanceCursors((CursorAdvance(RESPONSE_CURSOR, 0, 0, state, 1.0),))
        assert deployment.stores.write_recorded(change, lambda ok: [], seal)
    finally:
        deployment.close()


def test_no_alerts(home: Path) -> None:
    result = run(home, "alerts", "list")
    assert result.exit_code == 0, result.output
    assert "no alerts queued or failed" in result.output
    assert json.loads(run(home, "alerts", "list", "--json").output) == []


def test_queued_and_failed_alerts_are_listed(home: Path) -> None:
    store_alerts(home)
    result = run(home, "alerts", "list", "--wide")
    assert result.exit_code == 0, result.output
    assert "alr_queued" in result.output
    assert "queued" in result.output
    assert "alr_failed" in result.output
    assert "ClientConnectorError" in result.output
    assert "2023-11-14 22:13:20" in result.output  # when it failed
    assert "body" not in result.output.lower().replace("no alerts", "")
    listed = json.loads(run(home, "alerts", "list", "--json").output)
    assert [(a["status"], a["id"]) for a in listed] == [
        ("queued", "alr_queued"),
        ("failed", "alr_failed"),
    ]
    assert all("body" not in a for a in listed)
    failed = json.loads(run(home, "alerts", "list", "--failed", "--json").output)
    assert [a["id"] for a in failed] == ["alr_failed"]
