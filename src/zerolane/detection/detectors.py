"""The detectors ``[detection]`` turns on, in a stable order."""

from __future__ import annotations

from pathlib import Path

from zerolane.detection.delegation_fanout import DelegationFanoutDetector
from zerolane.detection.detector import Detector
from zerolane.detection.dormant import DormantDetector
from zerolane.detection.lateral_movement import LateralMovementDetector
from zerolane.detection.off_window import OffWindowDetector
from zerolane.detection.privilege_reuse import PrivilegeReuseDetector
from zerolane.detection.replay import ReplayDetector
from zerolane.detection.scope_probing import ScopeProbingDetector
from zerolane.detection.toxic_chains import ToxicChainsDetector, load_rules
from zerolane.settings.detection import DetectionSettings


def build_detectors(settings: DetectionSettings, home: Path | None = None) -> list[Detector]:
    """One detector per enabled ``[detection.<name>]`` table. ``home``: where a relative
    ``[detection.toxic_chains] file`` is (a bad one is refused, ``config.detection``)."""
    detectors: list[Detector] = []
    if settings.replay.enabled:
        detectors.append(ReplayDetector(settings.replay))
    if settings.scope_probing.enabled:
        detectors.append(ScopeProbingDetector(settings.scope_probing))
    if settings.delegation_fanout.enabled:
        detectors.append(DelegationFanoutDetector(settings.delegation_fanout))
    if settings.lateral_movement.enabled:
        detectors.append(LateralMovementDetector(settings.lateral_movement))
    if settings.toxic_chains.enabled:
        rules = load_rules(settings.toxic_chains, home)
        detectors.append(ToxicChainsDetector(settings.toxic_chains, rules))
    if settings.privilege_reuse.enabled:
        detectors.append(PrivilegeReuseDetector(settings.privilege_reuse))
    if settings.off_window.enabled and settings.off_window.schedules:
        detectors.append(OffWindowDetector(settings.off_window))
    if settings.dormant.enabled:
        detectors.append(DormantDetector(settings.dormant))
    return detectors
