"""Refusals before any decision are audited at a bounded rate (issue 13 item 2): a
token bucket per (listener, reason, client) and one for all of them, the count of the
refusals not written carried by the next event written, the writing off the caller's
thread; and the HTTP gateway's unmapped routes and missing credentials go through it,
while a legitimate request is still allowed and decided as before."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Stack
from tests.identity.attestors.cases import FixedClock
from zerolane.audit.events import Actor, Event
from zerolane.audit.log import AuditLog
from zerolane.errors import Unavailable
from zerolane.gateway import refusals as refusals_module
from zerolane.gateway.config import load_gateway_config
from zerolane.gateway.http import GatewayApp
from zerolane.gateway.refusals import KIND, RefusalAudit, RefusalRates, audit_refusal
from zerolane.store.memory import MemoryStores
from zerolane.types import Outcome

Message = MutableMapping[str, Any]


def _log() -> tuple[AuditLog, MemoryStores, FixedClock]:
    stores, clock = MemoryStores(), FixedClock()
    return AuditLog(stores, clock), stores, clock


def _events(stores: Any, after: int = 0) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in stores.read_events(after, 100_000)]
    return [b for b in bodies if b["kind"] == KIND]


def _refuse(audit: RefusalAudit, client: str = "10.0.0.9", reason: str = "route.unmapped") -> bool:
    return audit.refused(
        listener="gw", reason=reason, method="GET", path="/admin", client=client, status=403
    )


def test_a_flood_writes_a_burst_then_carries_the_count() -> None:
    log, stores, clock = _log()
    audit = RefusalAudit(log, clock, RefusalRates(per_second=1.0, burst=5))
    written = [_refuse(audit) for _ in range(100)]
    audit.flush()
    assert written.count(True) == 5
    events = _events(stores)
    assert len(events) == 5
    assert [e["details"]["suppressed"] for e in events] == [0] * 5
    first = events[0]
    assert (first["reason"], first["outcome"], first["subject"]) == (
        "route.unmapped",
        "denied",
        "unknown",
    )
    assert first["actor"] == {"type": "workload", "id": "unauthenticated"}
    assert first["details"] | {"suppressed": 0} == {
        "listener": "gw",
        "method": "GET",
        "path": "/admin",
        "client": "10.0.0.9",
        "status": 403,
        "suppressed": 0,
    }
    assert audit.suppressed == 95
    clock.t += 2.5  # two tokens back
    assert _refuse(audit)
    assert _refuse(audit)
    assert not _refuse(audit)
    audit.flush()
    later = _events(stores)[5:]
    assert [e["details"]["suppressed"] for e in later] == [95, 0]
    # another client, another reason: their own buckets
    assert _refuse(audit, client="10.0.0.10")
    assert _refuse(audit, reason="auth.missing")
    audit.close()
    assert len(_events(stores)) == 9


def test_many_clients_share_the_total_bucket() -> None:
    log, stores, clock = _log()
    audit = RefusalAudit(log, clock, RefusalRates(per_second=1.0, burst=2, total_per_second=10))
    written = [_refuse(audit, client=f"10.0.{i // 250}.{i % 250}") for i in range(500)]
    audit.flush()
    assert written.count(True) == 10  # one second's worth of the total bucket
    assert len(_events(stores)) == 10
    clock.t += 1.0
    assert _refuse(audit, client="10.0.1.1")  # a client stopped by the total bucket
    audit.close()
    assert _events(stores)[-1]["details"]["suppressed"] == 1


def test_a_forgotten_key_hands_its_count_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refusals_module, "MAX_KEYS", 2)
    log, stores, clock = _log()
    audit = RefusalAudit(log, clock, RefusalRates(per_second=0.001, burst=1))
    assert _refuse(audit, client="a")
    assert not _refuse(audit, client="a")  # counted under a
    assert _refuse(audit, client="b")
    assert _refuse(audit, client="c")  # a is forgotten, its count kept
    assert _refuse(audit, client="d")
    audit.close()
    last = _events(stores)[-2]
    assert last["details"]["client"] == "c"
    assert last["details"]["suppressed_elsewhere"] == 1
    assert "suppressed_elsewhere" not in _events(stores)[-1]["details"]


def test_it_names_a_known_task_and_bounds_what_it_is_given() -> None:
    log, stores, clock = _log()
    audit = RefusalAudit(log, clock)
    assert audit.refused(
        listener="mcp",
        reason="mcp.session_unknown",
        method="POST" * 10,
        path="/x" * 1000,
        client="::1",
        task_id="tsk_1",
        workload="spiffe://example.org/a",
    )
    audit.close()
    (event,) = _events(stores)
    assert (event["subject"], event["actor"]["id"]) == ("tsk_1", "spiffe://example.org/a")
    details = event["details"]
    assert (details["task_id"], details["workload"]) == ("tsk_1", "spiffe://example.org/a")
    assert len(details["method"]) == 16
    assert details["path"].endswith("...")
    assert len(details["path"]) == refusals_module.MAX_TEXT + 3


def test_the_caller_never_waits_for_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    log, stores, clock = _log()
    release = threading.Event()
    stored = log.record_all

    def slow(events: Any) -> Any:
        release.wait(10)
        return stored(events)

    monkeypatch.setattr(log, "record_all", slow)
    monkeypatch.setattr(refusals_module, "MAX_PENDING", 3)
    audit = RefusalAudit(log, clock, RefusalRates(burst=100, total_per_second=100))
    written = [_refuse(audit) for _ in range(10)]  # returns while the log is stuck
    assert written == [True] * 3 + [False] * 7  # no more than MAX_PENDING wait
    release.set()
    audit.flush()
    assert _refuse(audit)
    audit.close()
    assert [e["details"]["suppressed"] for e in _events(stores)] == [0, 0, 0, 7]


def test_an_event_the_log_cannot_store_is_counted_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    log, _, clock = _log()

    def broken(events: Any) -> Any:
        raise Unavailable("audit.write", "the disk is full")

    monkeypatch.setattr(log, "record_all", broken)
    audit = RefusalAudit(log, clock, RefusalRates(per_second=0.001, burst=1))
    assert _refuse(audit)
    assert not _refuse(audit)
    audit.close()
    assert audit.lost == 1
    clock.t += 2000
    assert _refuse(audit)  # a writer again after close, carrying the count
    audit.close()
    assert audit.lost == 3


def test_a_clock_stepped_back_refills_nothing() -> None:
    log, stores, clock = _log()
    audit = RefusalAudit(log, clock, RefusalRates(per_second=1.0, burst=1))
    assert _refuse(audit)
    clock.t -= 100
    assert not _refuse(audit)
    clock.t += 100.5
    assert not _refuse(audit)  # half a token since the newest time seen
    clock.t += 0.5
    assert _refuse(audit)
    audit.close()
    audit.flush()  # nothing pending, no writer: returns
    assert len(_events(stores)) == 2


def test_audit_refusal_reads_the_scope_and_never_raises() -> None:
    log, stores, clock = _log()
    audit = RefusalAudit(log, clock)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "raw_path": b"/probe?token=secret",
        "client": ("192.0.2.7", 5555),
    }
    audit_refusal(audit, scope, listener="gw", reason="route.unmapped", status=403)
    audit_refusal(None, scope, listener="gw", reason="route.unmapped", status=403)  # off
    audit_refusal(audit, {"type": "http"}, listener="gw", reason="x", status=400)
    audit.close()
    first, second = _events(stores)
    assert (first["details"]["path"], first["details"]["client"]) == ("/probe", "192.0.2.7")
    assert (second["details"]["method"], second["details"]["client"]) == ("-", "-")

    class Broken(RefusalAudit):
        def refused(self, **_: Any) -> bool:
            raise RuntimeError("a bug")

    audit_refusal(Broken(log, clock), scope, listener="gw", reason="r", status=400)


def test_another_listener_s_event_goes_through_the_same_buckets() -> None:
    log, stores, clock = _log()
    audit = RefusalAudit(log, clock, RefusalRates(per_second=1.0, burst=2))
    scope: dict[str, Any] = {"method": "POST", "raw_path": b"/oauth/token", "client": ("h", 1)}

    def sign_in(details: dict[str, object]) -> Event:
        return log.event("oauth.sign_in", Actor("user", "x"), "c1", Outcome.DENIED, "r", details)

    for _ in range(5):
        audit_refusal(audit, scope, listener="oauth", reason="r", status=401, event_of=sign_in)
    clock.t += 1.0
    audit_refusal(audit, scope, listener="oauth", reason="r", status=401, event_of=sign_in)
    audit.flush()
    bodies = [json.loads(r.body) for r in stores.read_events(0, 100)]
    assert [(b["kind"], b["subject"]) for b in bodies] == [("oauth.sign_in", "c1")] * 3
    assert [b["details"]["suppressed"] for b in bodies] == [0, 0, 3]
    assert bodies[0]["details"]["path"] == "/oauth/token"

    def broken(details: dict[str, object]) -> Event:
        raise RuntimeError("a bug")

    clock.t += 1.0  # an event that cannot be built is lost, counted, and pends nothing
    audit_refusal(audit, scope, listener="oauth", reason="r", status=401, event_of=broken)
    assert audit.lost == 1
    clock.t += 1.0
    assert audit.refused(
        listener="oauth", reason="r", method="POST", path="/", client="h", event_of=sign_in
    )
    audit.close()
    assert len(stores.read_events(0, 100)) == 4


# ---- through the HTTP gateway --------------------------------------------------------------


def _call(app: GatewayApp, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _scope(path: bytes, client: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "method": "GET",
        "path": path.decode(),
        "raw_path": path,
        "query_string": b"",
        "headers": headers or [],
        "client": (client, 40000),
    }


def test_a_flood_of_unmapped_requests_at_the_http_gateway(stack: Stack) -> None:
    deployment = stack.gateway_deployment
    clock = FixedClock()
    audit = RefusalAudit(deployment.audit, clock, RefusalRates(per_second=1.0, burst=5))
    config = load_gateway_config(stack.config_path)
    app = GatewayApp(config, deployment.decider, listener="probe-gw", refusals=audit)
    start = deployment.audit.tail(1)[0].seq
    for i in range(60):
        sent = _call(app, _scope(f"/no/such/{i}".encode(), "198.51.100.1"))
        assert sent[0]["status"] == 403
    # no credentials on a mapped route: its own reason, its own bucket
    sent = _call(app, _scope(b"/finance/reports/q3", "198.51.100.1"))
    assert sent[0]["status"] == 401
    audit.flush()
    events = [
        e for e in _events(deployment.stores, start) if e["details"]["listener"] == "probe-gw"
    ]
    unmapped = [e for e in events if e["reason"] == "route.unmapped"]
    assert len(unmapped) == 5  # the bucket's worth, not 60
    assert [e["details"]["path"] for e in unmapped] == [f"/no/such/{i}" for i in range(5)]
    assert unmapped[0]["details"]["client"] == "198.51.100.1"
    assert unmapped[0]["details"]["status"] == 403
    (missing,) = [e for e in events if e["reason"] != "route.unmapped"]
    assert missing["details"]["path"] == "/finance/reports/q3"
    assert missing["details"]["status"] == 401
    clock.t += 1.0
    _call(app, _scope(b"/no/such/more", "198.51.100.1"))
    audit.close()
    last = _events(deployment.stores, start)[-1]
    assert (last["details"]["path"], last["details"]["suppressed"]) == ("/no/such/more", 55)


def test_a_probe_is_visible_and_the_legitimate_request_still_allowed(stack: Stack) -> None:
    deployment = stack.gateway_deployment
    start = deployment.audit.tail(1)[0].seq
    before = deployment.refusals.suppressed
    probe = "/zz-probe-of-an-unmapped-path"
    assert httpx.get(stack.url(probe)).status_code == 403
    with stack.task() as task:
        allowed = task.request("GET", stack.url("/finance/reports/q3"))
        assert allowed.status_code == 200
        task_id = task.task_id
    deployment.refusals.flush(10)
    events = [json.loads(r.body) for r in deployment.stores.read_events(start, 100_000)]
    decisions = [e for e in events if e["kind"] == "decision" and e["subject"] == task_id]
    assert [e["details"]["decision"] for e in decisions] == ["allow"]  # audited as before
    probes = [e for e in events if e["kind"] == KIND and e["reason"] == "route.unmapped"]
    # written, unless this client's bucket was spent by other tests of the session: then
    # counted, and carried by its next event
    if probes:
        assert [e["details"]["path"] for e in probes] == [probe]
        assert probes[0]["details"]["listener"] == "gateway"
    else:
        assert deployment.refusals.suppressed == before + 1
