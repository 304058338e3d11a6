"""Sliding windows by event time, and the detectors ``[detection]`` turns on."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerolane.detection.detector import Hit, Windows
from zerolane.detection.detectors import build_detectors
from zerolane.errors import InvalidInput
from zerolane.settings.detection import (
    DelegationFanoutSettings,
    DetectionSettings,
    DormantSettings,
    LateralMovementSettings,
    OffWindowSettings,
    PrivilegeReuseSettings,
    ReplaySettings,
    Schedule,
    ScopeProbingSettings,
    ToxicChainsSettings,
)


def test_a_window_keeps_the_hits_of_its_last_seconds_by_event_time() -> None:
    windows = Windows(10)
    windows.add("a", Hit(0, 1, "e1"))
    assert [h.seq for h in windows.add("a", Hit(5, 2, "e2"))] == [1, 2]
    assert [h.seq for h in windows.add("a", Hit(12, 3, "e3"))] == [2, 3]
    windows.add("b", Hit(30, 4, "e4"))
    # its state keeps only what is still in a window as of the latest hit (30)
    assert windows.state() == {"b": [[30, 4, "e4", ""]]}
    restored = Windows(10)
    restored.restore(windows.state())
    assert [h.seq for h in restored.add("b", Hit(31, 5, "e5"))] == [4, 5]
    restored.clear("b")
    restored.clear("nothing")
    assert restored.state() == {}


def test_the_detectors_are_the_enabled_ones_in_a_stable_order() -> None:
    later = ["lateral_movement", "toxic_chains", "privilege_reuse", "dormant"]
    assert [d.name for d in build_detectors(DetectionSettings())] == [
        "replay",
        "scope_probing",
        "delegation_fanout",
        *later,  # off_window runs once a schedule is given
    ]
    none = DetectionSettings(
        replay=ReplaySettings(enabled=False),
        scope_probing=ScopeProbingSettings(enabled=False),
        delegation_fanout=DelegationFanoutSettings(enabled=False),
        lateral_movement=LateralMovementSettings(enabled=False),
        toxic_chains=ToxicChainsSettings(enabled=False),
        privilege_reuse=PrivilegeReuseSettings(enabled=False),
        off_window=OffWindowSettings(enabled=False, schedules=(Schedule(playbook="p"),)),
        dormant=DormantSettings(enabled=False),
    )
    assert build_detectors(none) == []
    only = DetectionSettings(
        replay=ReplaySettings(enabled=False),
        off_window=OffWindowSettings(schedules=(Schedule(playbook="p"),)),
    )
    assert [d.name for d in build_detectors(only)] == [
        "scope_probing",
        "delegation_fanout",
        "lateral_movement",
        "toxic_chains",
        "privilege_reuse",
        "off_window",
        "dormant",
    ]


def test_a_relative_chain_file_is_read_from_the_home(tmp_path: Path) -> None:
    (tmp_path / "chains.toml").write_text("rules = []\n")
    settings = DetectionSettings(toxic_chains=ToxicChainsSettings(file="chains.toml"))
    assert "toxic_chains" in [d.name for d in build_detectors(settings, tmp_path)]
    with pytest.raises(InvalidInput):
        build_detectors(settings, tmp_path / "elsewhere")
