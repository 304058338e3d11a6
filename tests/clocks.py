"""A clock the tests set forward, so a test about expiry never waits for it."""

from __future__ import annotations

import time


class AheadClock:
    """The wall clock, set forward by the test: a task's window ends at once instead of
    after a real wait. The client side keeps the real time (its proofs are then a few
    seconds old, well within their window), so it suits a whole running server."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def now(self) -> float:
        return time.time() + self.ahead

    def past(self, moment: float) -> None:
        """Set the clock forward to just after ``moment`` (never back)."""
        self.ahead = max(self.ahead, moment + 0.05 - time.time())
