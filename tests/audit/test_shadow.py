"""The shadow report over an audit log: would-deny events grouped by reason, counted in
their period only (the start found by bisection), examples and names gathered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.audit.conftest import NOW, FixedClock
from zerolane.audit.events import SYSTEM, Actor
from zerolane.audit.log import AuditLog
from zerolane.audit.shadow import EXAMPLES, PAGE, _epoch, shadow_report
from zerolane.store.memory import MemoryStores
from zerolane.store.records import AuditRecord
from zerolane.types import Outcome

AGENT = Actor("workload", "spiffe://example.org/agent")
ROUTE = "route:finance DELETE /reports/{id}"


def shadow_details(reasons: list[str], **more: Any) -> dict[str, Any]:
    """A shadow allow's details as the decider records them."""
    return {
        "decision_id": "d",
        "decision": "shadow",
        "reasons": [],
        "policies": reasons,
        "would_deny": reasons,
        "shadow": [ROUTE],
        "playbook": "reports",
        "method": "DELETE",
        "action": "delete",
        "resource": "finance/reports/q3",
        "destination": "finance-api.internal",
        **more,
    }


class Log:
    """An audit log over memory stores whose clock the test moves."""

    def __init__(self) -> None:
        self.stores = MemoryStores()
        self.clock = FixedClock(NOW)
        self.log = AuditLog(self.stores, self.clock)

    def decision(self, details: dict[str, Any], task: str = "t1", at: float = 0.0) -> None:
        self.clock.t = NOW + at
        outcome = Outcome.SUCCESS if details["decision"] != "deny" else Outcome.DENIED
        self.log.record(
            "decision", actor=AGENT, subject=task, outcome=outcome, reason="x", details=details
        )


def test_would_denies_are_grouped_by_reason_most_frequent_first() -> None:
    log = Log()
    log.decision(shadow_details(["scope.action"]), "t1", 10)
    log.decision(shadow_details(["scope.action"], resource="finance/reports/q4"), "t2", 20)
    log.decision(shadow_details(["scope.action", "flow.egress"]), "t2", 30)
    log.decision(shadow_details(["flow.egress"], playbook="other", shadow=["policies"]), "t3", 40)
    # the twins, never counted: a plain allow, a deny, another kind of event
    log.decision({"decision": "allow", "reasons": [], "policies": ["task.request"]}, "t1", 50)
    log.decision({"decision": "deny", "reasons": ["scope.action"]}, "t1", 60)
    log.log.record("workload.registered", actor=SYSTEM, subject="x", outcome=Outcome.SUCCESS)

    found = shadow_report(log.stores, NOW, NOW + 100)
    assert found.total == 4
    action, egress = found.groups
    assert (action.reason, action.count, len(action.tasks)) == ("scope.action", 3, 2)
    assert (egress.reason, egress.count, len(egress.tasks)) == ("flow.egress", 2, 2)
    assert egress.playbooks == {"reports", "other"}
    assert egress.modes == {ROUTE, "policies"}
    assert action.first_seen == "2027-01-15T08:00:10.000Z"
    assert action.last_seen == "2027-01-15T08:00:30.000Z"
    # one example per different request (the third asked what the first did)
    assert [e.resource for e in action.examples] == ["finance/reports/q3", "finance/reports/q4"]
    shown = found.as_json()
    assert [r["reason"] for r in shown["reasons"]] == ["scope.action", "flow.egress"]
    assert shown["reasons"][0]["examples"][0]["task_id"] == "t1"
    assert shown["reasons"][1]["playbooks"] == ["other", "reports"]
    assert (shown["since"], shown["total"]) == ("2027-01-15T08:00:00.000Z", 4)


def test_only_the_period_is_counted_and_read() -> None:
    log = Log()
    for at in range(0, 3000, 10):  # 300 would-denies, one every 10 s, and other events
        log.decision(shadow_details(["scope.action"]), f"t{at}", at)
        log.log.record("workload.registered", actor=SYSTEM, subject="x", outcome=Outcome.SUCCESS)
    reads: list[tuple[int, int]] = []
    read = log.stores.read_events

    def counted(after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        reads.append((after_seq, limit))
        return read(after_seq, limit)

    log.stores.read_events = counted  # type: ignore[method-assign]
    found = shadow_report(log.stores, NOW + 2500, NOW + 2600)
    assert found.total == 11  # 2500, 2510 ... 2600
    (group,) = found.groups
    assert group.first_seen.endswith("08:41:40.000Z")
    # bisected: a few one-event reads, then one page from just before the period
    paged = [after for after, limit in reads if limit == PAGE]
    assert len(paged) == 1
    assert paged[0] > 400  # not from the beginning of the log
    # the twin: a period with nothing in it, and an empty log
    assert shadow_report(log.stores, NOW + 5000, NOW + 6000).total == 0
    assert shadow_report(MemoryStores(), NOW, NOW + 1).groups == ()


def test_a_long_period_is_read_page_after_page() -> None:
    log = Log()
    for at in range(PAGE + 5):
        log.decision(shadow_details(["scope.action"]), "t1", at / 10)
    found = shadow_report(log.stores, NOW - 1, NOW + PAGE)
    assert found.total == PAGE + 5
    assert len(found.groups[0].examples) == 1  # the same request each time
    assert EXAMPLES >= 1


def test_a_shadow_event_without_its_reasons_is_still_counted() -> None:
    log = Log()
    details = shadow_details([])
    del details["playbook"]
    log.decision(details)
    (group,) = shadow_report(log.stores, NOW - 1, NOW + 1).groups
    assert (group.reason, group.count, group.playbooks) == ("unknown", 1, set())


@pytest.mark.parametrize(("text", "epoch"), [("2027-01-15T08:00:00.000Z", NOW), ("x", None)])
def test_event_times(text: str, epoch: float | None) -> None:
    assert _epoch(text) == epoch


class OneRecord:
    """A store holding one decision event whose time cannot be read."""

    def __init__(self, body: str) -> None:
        self.record = AuditRecord(1, "e1", "not a time", "decision", "success", body, "", "")

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return [self.record] if after_seq < 1 else []

    def last_event(self) -> AuditRecord | None:
        return self.record

    def append_events(self, events: object, seal: object) -> list[AuditRecord]:
        raise NotImplementedError


def test_what_only_looks_like_a_shadow_allow_is_not_counted() -> None:
    log = Log()
    # a deny whose enforcement point's details happen to name would_deny
    log.decision({"decision": "deny", "arguments": {"would_deny": ["x"]}})
    assert shadow_report(log.stores, NOW - 1, NOW + 1).total == 0
    unreadable = OneRecord(json.dumps({"details": shadow_details(["scope.action"])}))
    assert shadow_report(unreadable, NOW - 1, NOW + 1).total == 0
    # the twin: the same event at a time that reads is counted
    log.decision(shadow_details(["scope.action"]))
    assert shadow_report(log.stores, NOW - 1, NOW + 1).total == 1
