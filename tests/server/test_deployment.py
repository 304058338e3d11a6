"""Opening a deployment: its clock never goes backwards, and a new home's admin
credential is stored in one write with its ``home.initialized`` event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zerolane.identity.admin as admin_module
from zerolane.audit.events import Actor
from zerolane.errors import Unavailable
from zerolane.identity.admin import authenticate_admin
from zerolane.server.deployment import Deployment, forward_clock, init_home
from zerolane.types import Clock, ForwardClock, Outcome, SystemClock

ADMIN = Actor("admin", "test")
START = 1_800_000_000.0


class SteppingClock:
    """A clock a test sets, backwards too (an NTP correction, an operator)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def _events(deployment: Deployment) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in deployment.audit.iter_records()]


def test_a_clock_stepping_back_never_yields_an_earlier_now(tmp_path: Path) -> None:
    clock = SteppingClock(START)
    deployment, _ = init_home(tmp_path / "home", "example.org", clock)
    try:
        assert isinstance(deployment.clock, ForwardClock)
        clock.t = START + 100
        assert deployment.clock.now() == START + 100
        clock.t = START + 40  # stepped back, inside one process
        assert deployment.clock.now() == START + 100
        deployment.registry.register(
            "spiffe://example.org/a", selectors=[], owner=None, actor=ADMIN
        )
        registered = _events(deployment)[-1]
        assert registered["time"] == "2027-01-15T08:01:40.000Z"  # START + 100, not + 40
        clock.t = START + 150  # the twin: time moving forward is followed
        assert deployment.clock.now() == START + 150
    finally:
        deployment.close()


def test_every_service_of_an_opened_deployment_shares_the_forward_clock(tmp_path: Path) -> None:
    init_home(tmp_path / "home", "example.org", SteppingClock(START))[0].close()
    clock = SteppingClock(START + 500)
    deployment = Deployment.open(tmp_path / "home", clock)
    try:
        assert deployment.clock.now() == START + 500
        clock.t = START  # stepped back
        stamped = deployment.audit.event("policy.reloaded", ADMIN, "x", Outcome.SUCCESS).time
        assert stamped == START + 500
        workload = deployment.registry.register(
            "spiffe://example.org/a", selectors=[], owner=None, actor=ADMIN
        )
        assert workload.created_at == START + 500
    finally:
        deployment.close()


def test_a_forward_clock_is_not_wrapped_again() -> None:
    system = SystemClock()
    assert forward_clock(system) is system
    assert isinstance(forward_clock(None), SystemClock)
    stepping: Clock = SteppingClock(START)
    wrapped = forward_clock(stepping)
    assert wrapped is not stepping
    assert forward_clock(wrapped) is wrapped


def test_init_records_the_admin_credential_with_home_initialized(tmp_path: Path) -> None:
    deployment, token = init_home(tmp_path / "home", "example.org", SteppingClock(START))
    try:
        [credential] = deployment.stores.list_admin_credentials()
        assert authenticate_admin(deployment.stores, token) == credential
        [initialized] = [e for e in _events(deployment) if e["kind"] == "home.initialized"]
        details = initialized["details"]
        assert isinstance(details, dict)
        assert details["admin_credential_id"] == credential.credential_id
        assert all(token not in r.body for r in deployment.audit.iter_records())
    finally:
        deployment.close()


def test_no_admin_credential_exists_when_home_initialized_cannot_be_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_seal(*args: object) -> object:
        raise OSError("audit sink gone")

    home = tmp_path / "home"
    with monkeypatch.context() as outage:
        outage.setattr(admin_module, "seal", failing_seal)
        with pytest.raises(Unavailable) as refused:
            init_home(home, "example.org", SteppingClock(START))
    assert refused.value.reason == "audit.write"
    reopened = Deployment.open(home, SteppingClock(START))
    try:  # nobody holds an admin credential the log does not account for
        assert reopened.stores.list_admin_credentials() == []
        assert [e["kind"] for e in _events(reopened)].count("home.initialized") == 0
    finally:
        reopened.close()
