"""Shared ids, enums and small Protocols used across layers."""

from __future__ import annotations

import enum
import threading
import time
from typing import Protocol

JSON = dict[str, object]


class Clock(Protocol):
    """Wall-clock source, injected so expiry is testable."""

    def now(self) -> float: ...


class ForwardClock:
    """``inner``, except that it never goes backwards: when ``inner`` steps back (an NTP
    correction, an operator setting the date), it answers the latest time it has
    answered until ``inner`` catches up. A task seen expired by this process therefore
    stays expired to it, and tokens, windows and events are stamped in order."""

    def __init__(self, inner: Clock) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._latest = float("-inf")

    def now(self) -> float:
        current = self._inner.now()
        with self._lock:
            if current > self._latest:
                self._latest = current
            return self._latest


class _WallClock:
    def now(self) -> float:
        return time.time()


class SystemClock(ForwardClock):
    """The real clock: seconds since the epoch, never going backwards (a
    :class:`ForwardClock` over the wall clock)."""

    def __init__(self) -> None:
        super().__init__(_WallClock())


class Outcome(enum.StrEnum):
    """What happened. Never defaulted: every event names its outcome."""

    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class WorkloadStatus(enum.StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class Sensitivity(enum.IntEnum):
    """Data sensitivity, ordered: public < internal < confidential < restricted."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Sensitivity:
        try:
            return cls[label.upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown sensitivity {label!r} (one of: {names})") from None


class TaskState(enum.StrEnum):
    """Where a task is in its life. Only ``active`` tasks get anything allowed."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    REVOKED = "revoked"
    EXPIRED = "expired"

    @property
    def ended(self) -> bool:
        return self in (TaskState.COMPLETED, TaskState.REVOKED, TaskState.EXPIRED)
