"""The clocks of :mod:`zerolane.types`: time never goes backwards for a process."""

from __future__ import annotations

import threading

import pytest

from zerolane.types import ForwardClock, SystemClock


class SteppingClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def test_a_forward_clock_holds_its_latest_time_when_the_inner_clock_steps_back() -> None:
    inner = SteppingClock(1000.0)
    clock = ForwardClock(inner)
    assert clock.now() == 1000.0
    inner.t = 1010.0  # the twin: forward moves pass through
    assert clock.now() == 1010.0
    inner.t = 1004.0  # an NTP step back
    assert clock.now() == 1010.0
    inner.t = 1011.5  # caught up
    assert clock.now() == 1011.5


def test_the_system_clock_never_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = SteppingClock(2000.0)
    monkeypatch.setattr("zerolane.types.time.time", wall.now)
    clock = SystemClock()
    assert clock.now() == 2000.0
    wall.t = 1990.0
    assert clock.now() == 2000.0
    wall.t = 2001.0
    assert clock.now() == 2001.0


def test_a_forward_clock_is_monotonic_across_threads() -> None:
    clock = SystemClock()
    seen: list[list[float]] = []

    def read() -> None:
        mine = [clock.now() for _ in range(2000)]
        seen.append(mine)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mine in seen:
        assert mine == sorted(mine)
