"""Shared ids, enums and small Protocols used across layers."""

from __future__ import annotations

import enum
import time
from typing import Protocol

JSON = dict[str, object]


class Clock(Protocol):
    """Wall-clock source, injected so expiry is testable."""

    def now(self) -> float: ...


class SystemClock:
    """The real clock: seconds since the epoch."""

    def now(self) -> float:
        return time.time()


class Outcome(enum.StrEnum):
    """What happened. Never defaulted: every event names its outcome."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class WorkloadStatus(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
