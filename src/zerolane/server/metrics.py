"""Prometheus metrics of the control plane (one registry per app)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zerolane.decision import Decision
from zerolane.detection.response import Responder
from zerolane.detection.runner import DetectionRunner

log = logging.getLogger(__name__)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "zerolane_http_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zerolane_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.attestations = Counter(
            "zerolane_attestations_total",
            "Attestations by outcome and reason",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "zerolane_decisions_total",
            "Decisions of POST /v1/decide by outcome (allow, deny, shadow: allowed, though "
            "enforcement would deny it) and reason (a shadow one's: the would-deny reason)",
            ["outcome", "reason"],
            registry=self.registry,
        )

    def decided(self, decision: Decision) -> None:
        """Count a decision of ``/v1/decide``: a shadow allow apart (outcome ``shadow``,
        under the first reason enforcement would have denied it with), so it is never
        counted as an allow; an allow under ``ok``; a deny under its first reason."""
        if decision.shadow is not None:
            reason = decision.shadow.reasons[0]
        else:
            reason = decision.reasons[0] if decision.reasons else "ok"
        self.decisions.labels(decision.outcome, reason).inc()


class DetectionMetrics(Collector):
    """The detection stream, read when scraped: each detector's lag (events in the log
    past its stored cursor), and the detections and failed steps of this process."""

    def __init__(self, runner: DetectionRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "zerolane_detection_lag_events",
            "Audit events not yet read by each detector (last seq - its cursor)",
            labels=["detector"],
        )
        try:
            for name, behind in self._runner.lag().items():
                lag.add_metric([name], behind)
        except Exception:  # a scrape never fails for the store: the lag is left out
            log.exception("the detectors' lag could not be read")
        else:
            yield lag
        yield CounterMetricFamily(
            "zerolane_detection_recorded",
            "Detections recorded by this process",
            value=self._runner.recorded,
        )
        yield CounterMetricFamily(
            "zerolane_detection_step_failures",
            "Detection steps that failed (and were retried) in this process",
            value=self._runner.failures,
        )


class ResponseMetrics(Collector):
    """The responder of this process (``[[response.rules]]``): rules fired, alerts
    delivered and failed, and alerts waiting for their next attempt."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder

    def collect(self) -> Iterator[Metric]:
        counters = (
            ("zerolane_response_fired", "Response rules fired by this process", "fired"),
            ("zerolane_response_alerts_delivered", "Alerts delivered by this process", "delivered"),
            ("zerolane_response_alerts_failed", "Alerts that failed every attempt", "failed"),
        )
        for name, text, member in counters:
            yield CounterMetricFamily(name, text, value=getattr(self._responder, member))
        yield GaugeMetricFamily(
            "zerolane_response_alerts_queued",
            "Alerts waiting for their next attempt",
            value=self._responder.queued,
        )


class Measured:
    """ASGI middleware: count and time every answered request by route and status, and
    mark every answer ``Cache-Control: no-store``.

    A request that gets no answer (the client left mid-upload) is not counted and is no
    error: plain ASGI, unlike a ``BaseHTTPMiddleware``, which raises "No response
    returned." when the app under it returns without answering.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                MutableHeaders(scope=message)["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, answer)
        if status is None:
            return
        name = getattr(scope.get("route"), "path", "unmatched")
        self.metrics.requests.labels(name, str(status)).inc()
        self.metrics.latency.labels(name).observe(time.perf_counter() - start)
