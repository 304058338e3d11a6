"""The gateway's metrics: the label children it keeps are the registry's own."""

from __future__ import annotations

from zerolane.gateway.http.metrics import GatewayMetrics


def test_kept_children_count_in_the_registry() -> None:
    metrics = GatewayMetrics()
    allowed = metrics.decided("allow", "ok")
    assert allowed is metrics.decided("allow", "ok") is metrics.decisions.labels("allow", "ok")
    assert metrics.decided("deny", "task.revoked") is not allowed
    assert metrics.served("finance") is metrics.request_seconds.labels("finance")
    allowed.inc()
    metrics.decided("allow", "ok").inc()
    metrics.decided("deny", "task.revoked").inc()
    metrics.served("finance").observe(0.003)
    metrics.served("-").observe(0.001)
    text = metrics.render().decode()
    assert 'zerolane_gateway_decisions_total{outcome="allow",reason="ok"} 2.0' in text
    assert 'zerolane_gateway_decisions_total{outcome="deny",reason="task.revoked"} 1.0' in text
    assert 'zerolane_gateway_request_seconds_count{upstream="finance"} 1.0' in text
    assert 'zerolane_gateway_request_seconds_count{upstream="-"} 1.0' in text


def test_two_apps_keep_their_own_children() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.decided("allow", "ok").inc()
    assert second.decided("allow", "ok") is not first.decided("allow", "ok")
    assert 'reason="ok"} 0.0' in second.render().decode()
