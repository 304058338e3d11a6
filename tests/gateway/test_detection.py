"""Continuous verification over the real stack: a replay through the HTTP gateway (its
own process's deployment, writing the shared store) is found by the detectors the
control plane runs, and the detection names the refused request's event."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.gateway.conftest import Stack


def events_after(stack: Stack, seq: int) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in stack.deployment.stores.read_events(seq, 10_000)]


def detected(stack: Stack, seq: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The detections that name the event ``seq`` as evidence, once there are some."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            e
            for e in events_after(stack, seq)
            if e["kind"] == "detection" and seq in [x["seq"] for x in e["details"]["evidence"]]
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_replay_through_the_gateway_is_detected_naming_its_event(stack: Stack) -> None:
    last = stack.deployment.stores.last_event()
    start = last.seq if last is not None else 0
    with stack.task() as task:
        url = stack.url("/finance/reports/q3")
        captured = task.headers("GET", url)
        assert httpx.get(url, headers=captured).status_code == 200
        assert httpx.get(url, headers=captured).status_code == 401  # the replay
        decisions = [e for e in events_after(stack, start) if e["kind"] == "decision"]
        allowed = next(e for e in decisions if e["details"]["decision"] == "allow")
        replay = next(e for e in decisions if e["reason"] == "dpop.replayed")
        (found,) = detected(stack, replay["seq"])
        assert found["reason"] == "detection.replay"
        assert found["actor"] == {"type": "detector", "id": "replay"}
        assert found["details"]["severity"] == "high"
        assert found["details"]["reasons"] == ["dpop.replayed"]
        assert {"seq": replay["seq"], "event_id": replay["event_id"]} in found["details"][
            "evidence"
        ]
        # the legitimate twin: the allowed request is evidence of nothing
        assert detected(stack, allowed["seq"], timeout=0) == []
