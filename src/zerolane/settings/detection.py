"""``[detection]``: the detectors that read the audit log while tasks run.

The runner (:mod:`zerolane.detection.runner`) reads the log by sequence number from
each detector's stored cursor, off the decision path, every ``poll_interval`` seconds
(or sooner when it is behind), ``batch_size`` events at a time. Each detector has a
table of its own with ``enabled`` and its thresholds; a detection is an audit event
(``kind = "detection"``) naming its ``severity``. See docs/detection.md.

```toml
[detection]
enabled = true
[detection.scope_probing]
distinct = 5
window_seconds = 60
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import AfterValidator

from zerolane.settings.validate import STRICT, Bool, Float, Int, Texts, reason, refuse, within

Severity = Annotated[Literal["low", "medium", "high"], reason("config.detection_severity")]
#: the longest window a detector may keep open (one day): its state is stored with its cursor
MAX_WINDOW = 86400
Window = Annotated[Int, within("config.detection", 1, MAX_WINDOW, " seconds")]
Count = Annotated[Int, within("config.detection", 1, 10_000)]

#: the reason ids of a refused replay: a spent proof id or refresh token used again, a
#: token presented with another key or certificate than its own, or for another task
REPLAY_REASONS = (
    "dpop.replayed",
    "dpop.key_mismatch",
    "mtls.cert_mismatch",
    "token.task_mismatch",
    "oauth.refresh_reused",
)


def _reasons(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values or not all(values):
        raise refuse("config.detection", "must be a list of reason ids, none empty")
    return values


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """``[detection.replay]``: ``threshold`` refused replays (``reasons``) of one task
    (or of the unidentified, when no task is known) within ``window_seconds``."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    threshold: Count = 1
    window_seconds: Window = 60
    severity: Severity = "high"
    reasons: Annotated[Texts, AfterValidator(_reasons)] = REPLAY_REASONS


@dataclass(frozen=True, slots=True)
class ScopeProbingSettings:
    """``[detection.scope_probing]``: ``distinct`` different (action, resource) pairs
    denied to one task within ``window_seconds``."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    distinct: Annotated[Int, within("config.detection", 2, 10_000)] = 5
    window_seconds: Window = 60
    severity: Severity = "medium"


@dataclass(frozen=True, slots=True)
class DelegationFanoutSettings:
    """``[detection.delegation_fanout]``: ``children`` delegations from one task within
    ``window_seconds``, or a chain ``depth`` delegations deep built within it."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    children: Annotated[Int, within("config.detection", 2, 10_000)] = 10
    depth: Annotated[Int, within("config.detection", 2, 64)] = 4
    window_seconds: Window = 60
    severity: Severity = "medium"


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """``[detection]``: whether the control plane runs the detectors, how often it reads
    the log, and each detector's thresholds."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    #: seconds between reads of the log when the detectors have caught up
    poll_interval: Annotated[Float, within("config.detection", 0.01, 60, " seconds")] = 0.5
    #: events read (and committed with their detections) at a time
    batch_size: Annotated[Int, within("config.detection", 1, 10_000)] = 500
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    scope_probing: ScopeProbingSettings = field(default_factory=ScopeProbingSettings)
    delegation_fanout: DelegationFanoutSettings = field(default_factory=DelegationFanoutSettings)
