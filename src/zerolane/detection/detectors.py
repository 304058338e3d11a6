"""The detectors ``[detection]`` turns on, in a stable order."""

from __future__ import annotations

from zerolane.detection.delegation_fanout import DelegationFanoutDetector
from zerolane.detection.detector import Detector
from zerolane.detection.replay import ReplayDetector
from zerolane.detection.scope_probing import ScopeProbingDetector
from zerolane.settings.detection import DetectionSettings


def build_detectors(settings: DetectionSettings) -> list[Detector]:
    """One detector per enabled ``[detection.<name>]`` table."""
    detectors: list[Detector] = []
    if settings.replay.enabled:
        detectors.append(ReplayDetector(settings.replay))
    if settings.scope_probing.enabled:
        detectors.append(ScopeProbingDetector(settings.scope_probing))
    if settings.delegation_fanout.enabled:
        detectors.append(DelegationFanoutDetector(settings.delegation_fanout))
    return detectors
