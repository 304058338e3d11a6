"""Scheduled control testing: each run is an audit event, each fail a ``probe``
detection that the response rules alert on like any other."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.detection.test_response import Clock, FakeActions
from tests.gateway.conftest import EchoUpstream, Stack
from tests.probe.test_cli import probe_file
from zerolane.cli.probe_schedule import ScheduledProbe
from zerolane.detection.response import Responder
from zerolane.server.deployment import Deployment, init_home
from zerolane.settings.probe import ProbeSchedule
from zerolane.settings.response import (
    ResponseRule,
    ResponseSettings,
    RiskSettings,
    WebhookSettings,
)


def _events(deployment: Deployment, kind: str, after: int) -> list[dict[str, Any]]:
    return [
        json.loads(r.body) for r in deployment.stores.read_events(after, 100_000) if r.kind == kind
    ]


def _head(deployment: Deployment) -> int:
    last = deployment.audit.tail(1)
    return last[0].seq if last else 0


@pytest.fixture
def lone_home(tmp_path: Path) -> Iterator[Deployment]:
    deployment, _ = init_home(tmp_path / "home", "probe-schedule.example")
    yield deployment
    deployment.close()


def test_a_passing_run_is_one_probe_run_event(
    stack: Stack, probe_playbook: str, tmp_path: Path
) -> None:
    path = probe_file(tmp_path, stack, probe_playbook, extra=f'url = "{stack.public_url}"')
    schedule = ProbeSchedule(every=3600, file=str(path), only=("proof",))
    before = _head(stack.deployment)
    probe = ScheduledProbe(stack.deployment, schedule, stack.control.url)
    report = probe.run_once()
    assert report is not None
    assert not report.failed
    (run,) = _events(stack.deployment, "probe.run", before)
    assert run["outcome"] == "success"
    assert run["reason"] == "probe.pass"
    assert run["details"]["failed"] == []
    assert run["details"]["counts"]["pass"] >= 1
    assert not [
        e
        for e in _events(stack.deployment, "detection", before)
        if e["details"]["detector"] == "probe"
    ]


def test_a_failing_run_is_a_detection_that_alerts(
    upstream: EchoUpstream,
    lone_home: Deployment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bearer token the echo upstream accepts from anywhere: the sender-constraint
    scenario fails; the response rule on detector ``probe`` posts an alert."""
    monkeypatch.setenv("PROBE_TOKEN", "static-probe-token")
    path = tmp_path / "probe.toml"
    path.write_text(
        '[credentials]\nkind = "static"\ntoken_env = "PROBE_TOKEN"\n'
        f'[target]\nurl = "{upstream.url}"\nallowed = "GET /fin/reports/q3"\n'
    )
    schedule = ProbeSchedule(every=3600, file=str(path), only=("token.replayed_elsewhere",))
    probe = ScheduledProbe(lone_home, schedule, "http://127.0.0.1:9")
    report = probe.run_once()
    assert report is not None
    assert report.failed
    (run,) = _events(lone_home, "probe.run", 0)
    assert (run["outcome"], run["reason"]) == ("failure", "probe.fail")
    assert run["details"]["failed"] == ["token.replayed_elsewhere"]
    (found,) = _events(lone_home, "detection", 0)
    assert found["reason"] == "detection.probe"
    assert found["details"]["scenario"] == "token.replayed_elsewhere"
    assert "static-probe-token" not in json.dumps(_events(lone_home, "probe.run", 0))

    posted: list[dict[str, Any]] = []

    def capture(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
        posted.append(json.loads(body))

    rule = ResponseRule(name="alert-on-probe", detectors=("probe",), actions=("alert",))
    settings = ResponseSettings(
        risk=RiskSettings(half_life_seconds=3600),
        webhook=WebhookSettings(url="http://127.0.0.1:9/hook"),
        rules=(rule,),
    )
    responder = Responder(
        lone_home.stores,
        lone_home.audit,
        settings,
        FakeActions(),
        Clock(),
        poster=capture,
        secret=b"s" * 32,
    )
    responder.catch_up()
    assert len(posted) == 1
    assert "probe" in json.dumps(posted[0])


def test_a_run_that_cannot_start_is_recorded_with_its_reason(
    lone_home: Deployment, tmp_path: Path
) -> None:
    schedule = ProbeSchedule(every=3600, file=str(tmp_path / "missing.toml"))
    assert ScheduledProbe(lone_home, schedule, "http://127.0.0.1:9").run_once() is None
    (run,) = _events(lone_home, "probe.run", 0)
    assert (run["outcome"], run["reason"]) == ("failure", "probe.file")


def test_a_schedule_is_required() -> None:
    with pytest.raises(ValueError, match="no schedule"):
        ScheduledProbe(None, ProbeSchedule(), "")  # type: ignore[arg-type]


def test_the_schedule_runs_in_its_thread_until_stopped(
    lone_home: Deployment, tmp_path: Path
) -> None:
    schedule = ProbeSchedule(every=3600, file=str(tmp_path / "missing.toml"), first_after=0)
    probe = ScheduledProbe(lone_home, schedule, "http://127.0.0.1:9")
    probe.start()
    try:
        for _ in range(200):
            if _events(lone_home, "probe.run", 0):
                break
            threading.Event().wait(0.05)
    finally:
        probe.stop()
    assert probe.runs == 1
    assert len(_events(lone_home, "probe.run", 0)) == 1


def test_a_run_that_crashes_is_recorded_and_forgets_the_last_report(
    lone_home: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug mid-run is a probe.run failure (its error's type, never its message, which
    could quote what the run held), not silence behind the last run's pass."""

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-looking detail")

    monkeypatch.setattr("zerolane.cli.probe.probe_with_file", crash)
    schedule = ProbeSchedule(every=3600, file=str(tmp_path / "probe.toml"))
    probe = ScheduledProbe(lone_home, schedule, "http://127.0.0.1:9")
    probe.last = object()  # type: ignore[assignment]  # a report of an earlier run
    assert probe.run_once() is None
    assert probe.last is None
    (run,) = _events(lone_home, "probe.run", 0)
    assert (run["outcome"], run["reason"]) == ("failure", "probe.error")
    assert run["details"]["error"] == "RuntimeError"
    assert "secret-looking detail" not in json.dumps(run)
