"""Prometheus metrics of one gateway app (its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class GatewayMetrics:
    """Decisions by outcome and reason, decision and total latency, upstream errors.

    Every request counts a decision and times itself: :meth:`decided` and :meth:`served`
    keep each label child once looked up, as ``labels()`` validates its values and takes
    a lock on every call. They keep no more children than the registry itself does.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "zerolane_gateway_decisions_total",
            "Requests by outcome (allow, deny, shadow: allowed but enforcement would deny, "
            "refused before a decision) and reason (a shadow one's: the would-deny reason)",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "zerolane_gateway_decision_seconds",
            "Time to decide one request (token, proof, task, policy, audit)",
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.request_seconds = Histogram(
            "zerolane_gateway_request_seconds",
            "Time from request to the end of the response, by upstream",
            ["upstream"],
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.upstream_errors = Counter(
            "zerolane_gateway_upstream_errors_total",
            "Forwarding failures by upstream and kind (error, timeout, too_large, aborted)",
            ["upstream", "kind"],
            registry=self.registry,
        )
        self._decided: dict[tuple[str, str], Counter] = {}
        self._served: dict[str, Histogram] = {}

    def decided(self, outcome: str, reason: str) -> Counter:
        """The ``decisions`` counter of this outcome and reason."""
        child = self._decided.get((outcome, reason))
        if child is None:
            child = self._decided[outcome, reason] = self.decisions.labels(outcome, reason)
        return child

    def served(self, upstream: str) -> Histogram:
        """The ``request_seconds`` histogram of this upstream (``-`` when none)."""
        child = self._served.get(upstream)
        if child is None:
            child = self._served[upstream] = self.request_seconds.labels(upstream)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
