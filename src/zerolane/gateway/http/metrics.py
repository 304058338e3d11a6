"""Prometheus metrics of one gateway app (its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class GatewayMetrics:
    """Decisions by outcome and reason, decision and total latency, upstream errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "zerolane_gateway_decisions_total",
            "Requests by outcome (allow, deny, refused before a decision) and reason",
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
