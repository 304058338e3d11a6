"""Automatic response: each action fired by a recorded detection, a near miss not fired,
a restart that repeats nothing, risk rules, and signed webhook alerts retried and, when
they keep failing, recorded as failed and listed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.detection.recorded import AGENT, T0
from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.detection import alerts
from zerolane.detection import response as response_module
from zerolane.detection.response import Responder, ResponseStore, stored_alerts
from zerolane.detection.risk import RESPONSE_CURSOR, RiskView
from zerolane.errors import Conflict, NotFound, Unavailable
from zerolane.policy.context import RiskFacts
from zerolane.server.webhook import post
from zerolane.settings.response import (
    ResponseRule,
    ResponseSettings,
    RiskSettings,
    WebhookSettings,
)
from zerolane.store.changes import AdvanceCursors, CursorAdvance
from zerolane.store.memory import MemoryStores
from zerolane.store.records import AuditRecord
from zerolane.store.sqlite import SqliteStores
from zerolane.types import Outcome

SECRET = b"s3cret-for-tests"


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> float:
        return self.at


class FakeActions:
    """Records what responses asked; a second suspension is refused like the store does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.suspended: set[str] = set()
        self.held: set[str] = set()

    def suspend(self, task_id: str, actor: Actor, reason: str) -> object:
        if task_id in self.suspended:
            raise Conflict("task.already_suspended", "already")
        if task_id == "tsk_gone":
            raise NotFound("task.unknown", "no such task")
        self.suspended.add(task_id)
        self.calls.append(("suspend", task_id, actor.id))
        return None

    def revoke(self, task_id: str, actor: Actor, reason: str) -> object:
        self.calls.append(("revoke", task_id, actor.id))
        return None

    def disable(self, workload: str, actor: Actor) -> object:
        self.calls.append(("disable", workload, actor.id))
        return None

    def require_approval(
        self, task_id: str, actor: Actor, rule: str, detector: str, detection: str
    ) -> object:
        if task_id in self.held:
            return None  # held already
        self.held.add(task_id)
        self.calls.append(("require_approval", task_id, actor.id))
        return task_id


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResponseStore]:
    opened = MemoryStores() if request.param == "memory" else SqliteStores(tmp_path / "z.db")
    yield opened
    opened.close()


def detected(
    audit: AuditLog,
    detector: str = "scope_probing",
    severity: str = "medium",
    task: str | None = "tsk_1",
    workload: str | None = AGENT,
) -> int:
    record = audit.record(
        "detection",
        actor=Actor("detector", detector),
        subject=task or workload or "unknown",
        outcome=Outcome.FAILURE,
        reason=f"detection.{detector}",
        details={
            "detector": detector,
            "severity": severity,
            "summary": "test",
            "task_id": task,
            "workload": workload,
            "evidence": [],
            "evidence_total": 0,
        },
    )
    assert record is not None
    return record.seq


def events(store: ResponseStore, kind: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in store.read_events(0, 10_000) if r.kind == kind]


def refuse_post(url: str, body: bytes, sent: Mapping[str, str], timeout: float) -> None:
    raise alerts.DeliveryFailed("http 500")


def responder(
    store: ResponseStore,
    audit: AuditLog,
    *rules: ResponseRule,
    actions: FakeActions | None = None,
    clock: Clock | None = None,
    poster: alerts.Poster = refuse_post,
    webhook: WebhookSettings | None = None,
    view: RiskView | None = None,
) -> Responder:
    settings = ResponseSettings(
        risk=RiskSettings(half_life_seconds=3600),
        webhook=webhook or WebhookSettings(url="http://127.0.0.1:9/hook", backoff_seconds=1),
        rules=rules,
    )
    return Responder(
        store,
        audit,
        settings,
        actions or FakeActions(),
        clock or Clock(),
        poster=poster,
        secret=SECRET,
        view=view,
    )


SUSPEND_PROBERS = ResponseRule(
    name="suspend-probers", detectors=("scope_probing",), actions=("suspend",)
)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("suspend", ("suspend", "tsk_1", "response:r")),
        ("revoke", ("revoke", "tsk_1", "response:r")),
        ("disable", ("disable", AGENT, "response:r")),
        ("require_approval", ("require_approval", "tsk_1", "response:r")),
    ],
)
def test_each_action_is_fired_by_a_detection(
    store: ResponseStore, action: Any, expected: tuple[str, str, str]
) -> None:
    audit, actions = AuditLog(store, Clock()), FakeActions()
    seq = detected(audit)
    rule = ResponseRule(name="r", detectors=("scope_probing",), actions=(action,))
    assert responder(store, audit, rule, actions=actions).step() == 1
    assert actions.calls == [expected]
    (fired,) = events(store, "response")
    assert fired["actor"] == {"type": "system", "id": "response:r"}
    assert fired["reason"] == "response.r"
    assert fired["details"]["actions"] == {action: "done"}
    assert fired["details"]["detection"]["seq"] == seq
    assert fired["details"]["risk"] == {"task": 30, "workload": 30}


def test_a_near_miss_fires_nothing(store: ResponseStore) -> None:
    audit, actions = AuditLog(store, Clock()), FakeActions()
    detected(audit, detector="replay", severity="high", task="tsk_9", workload=None)  # another
    detected(audit, severity="low", workload=None)  # the detector, not severe enough
    rules = (
        SUSPEND_PROBERS,
        ResponseRule(name="severe", min_severity="high", detectors=("scope_probing",),
                     actions=("revoke",)),
        ResponseRule(name="risky", min_risk=90, actions=("disable",)),
    )  # fmt: skip
    assert responder(store, audit, *rules[1:], actions=actions).step() == 2
    assert actions.calls == []
    assert events(store, "response") == []
    audit.record("decision", actor=Actor("workload", AGENT), subject="t", outcome=Outcome.DENIED)
    detected(audit)  # the twin: a medium scope_probing detection
    assert responder(store, audit, *rules, actions=actions).step() == 2
    assert actions.calls == [("suspend", "tsk_1", "response:suspend-probers")]


def test_risk_over_a_threshold_fires_a_rule(store: ResponseStore) -> None:
    """A task's own risk ends it; its workload's risk (raised by other tasks) does not,
    it disables the workload where a rule says so."""
    audit, actions = AuditLog(store, Clock()), FakeActions()
    revoke = ResponseRule(name="risky", min_risk=60, actions=("revoke",))
    disable = ResponseRule(name="risky-agent", min_risk=90, actions=("disable",))
    react = responder(store, audit, revoke, disable, actions=actions)
    detected(audit, task="tsk_1")  # task 30, workload 30
    react.step()
    assert actions.calls == []
    detected(audit, task="tsk_2")  # tsk_2 30, workload 60: not tsk_2's own risk
    react.step()
    assert actions.calls == []
    detected(audit, task="tsk_2")  # tsk_2 60 of its own: revoked; workload 90: disabled
    react.step()
    assert actions.calls == [
        ("revoke", "tsk_2", "response:risky"),
        ("disable", AGENT, "response:risky-agent"),
    ]


def test_a_restart_does_not_repeat_a_response(store: ResponseStore) -> None:
    audit, actions = AuditLog(store, Clock()), FakeActions()
    detected(audit)
    assert responder(store, audit, SUSPEND_PROBERS, actions=actions).step() == 1
    again = responder(store, audit, SUSPEND_PROBERS, actions=actions)  # a new process
    assert again.step() == 1  # reads only the response event it recorded
    assert again.step() == 0
    assert actions.calls == [("suspend", "tsk_1", "response:suspend-probers")]
    assert len(events(store, "response")) == 1
    detected(audit, task="tsk_2")  # a new detection after the restart is responded to
    again.step()
    assert actions.calls[-1] == ("suspend", "tsk_2", "response:suspend-probers")


def test_an_action_already_taken_or_impossible_is_recorded_as_such(store: ResponseStore) -> None:
    audit, actions = AuditLog(store, Clock()), FakeActions()
    actions.suspended.add("tsk_1")  # suspended by hand before the response
    detected(audit)
    detected(audit, task="tsk_gone")
    detected(audit, task=None, workload=None)
    rule = ResponseRule(name="r", detectors=("scope_probing",), actions=("suspend", "disable"))
    responder(store, audit, rule, actions=actions).step()
    outcomes = [e["details"]["actions"] for e in events(store, "response")]
    assert outcomes == [
        {"suspend": "already", "disable": "done"},
        {"suspend": "failed: task.unknown", "disable": "done"},
        {"suspend": "skipped", "disable": "skipped"},
    ]


def test_scores_reach_the_view_and_the_store(store: ResponseStore, tmp_path: Path) -> None:
    clock = Clock()
    audit = AuditLog(store, clock)
    view = RiskView(store, clock, half_life=3600, refresh=60)
    detected(audit, severity="high")
    assert view.facts("tsk_1", AGENT).task == 0
    responder(store, audit, SUSPEND_PROBERS, view=view, clock=clock).step()
    assert view.facts("tsk_1", AGENT).task == 60  # handed over at once
    other = RiskView(store, clock, half_life=3600, refresh=60)  # another process
    assert other.facts("tsk_1", AGENT).workload == 60


def test_a_failing_alert_is_retried_with_backoff_then_recorded_and_listed(
    store: ResponseStore,
) -> None:
    clock = Clock()
    audit, tries = AuditLog(store, clock), []

    def failing(url: str, body: bytes, sent: Mapping[str, str], timeout: float) -> None:
        tries.append(clock.at)
        raise alerts.DeliveryFailed("http 503")

    rule = ResponseRule(name="page", min_severity="medium", actions=("alert",))
    hook = WebhookSettings(url="https://hooks.example/t0ken", max_attempts=3, backoff_seconds=2)
    react = responder(store, audit, rule, clock=clock, poster=failing, webhook=hook)
    detected(audit)
    react.step()  # responded, first attempt
    assert tries == [T0]
    pending, failed = stored_alerts(store)
    assert [a["attempts"] for a in pending] == [1]
    assert failed == []
    clock.at += 1.9
    react.step()  # not due yet (2 s)
    clock.at += 0.1
    react.step()
    clock.at += 3.9
    react.step()  # not due (4 s after the second)
    clock.at += 0.1
    react.step()
    assert [round(t - T0, 1) for t in tries] == [0.0, 2.0, 6.0]
    pending, failed = stored_alerts(store)
    assert pending == []
    assert [(a["rule"], a["attempts"], a["last_error"]) for a in failed] == [
        ("page", 3, "http 503")
    ]
    (recorded,) = events(store, "alert.failed")
    assert recorded["reason"] == "alert.delivery_failed"
    assert "t0ken" not in json.dumps(recorded)  # the URL (and its token) is never recorded
    clock.at += 100
    react.step()
    assert len(tries) == 3  # given up: listed, not retried for ever


def test_a_poster_raising_anything_counts_as_a_failure(store: ResponseStore) -> None:
    audit = AuditLog(store, Clock())

    def broken(url: str, body: bytes, sent: Mapping[str, str], timeout: float) -> None:
        raise RuntimeError("boom")

    rule = ResponseRule(name="page", detectors=("scope_probing",), actions=("alert",))
    hook = WebhookSettings(url="https://hooks.example/", max_attempts=1)
    react = responder(store, audit, rule, poster=broken, webhook=hook)
    detected(audit)
    react.step()
    assert [a["last_error"] for a in stored_alerts(store)[1]] == ["RuntimeError"]
    assert react.failed == 1


class Receiver:
    """A local aiohttp webhook receiver on a thread of its own."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), dict(request.headers)))
        if len(self.received) <= self.fail_first:
            return web.Response(status=503)
        return web.Response(status=204)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self) -> Receiver:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def test_webhook_is_signed_and_retried_against_a_real_server(store: ResponseStore) -> None:
    clock = Clock()
    audit = AuditLog(store, clock)
    rule = ResponseRule(name="page", detectors=("scope_probing",), actions=("alert", "suspend"))
    with Receiver(fail_first=1) as receiver:
        hook = WebhookSettings(url=receiver.url, backoff_seconds=1, timeout_seconds=5)
        react = responder(store, audit, rule, clock=clock, poster=post, webhook=hook)
        seq = detected(audit)
        react.step()  # refused with a 503
        clock.at += 1
        react.step()  # retried: delivered
    assert len(receiver.received) == 2
    body, sent = receiver.received[1]
    assert receiver.received[0][0] == body  # the same alert, the same body
    assert alerts.verify(SECRET, body, sent[alerts.SIGNATURE_HEADER])
    assert not alerts.verify(b"another secret", body, sent[alerts.SIGNATURE_HEADER])
    assert not alerts.verify(SECRET, body + b" ", sent[alerts.SIGNATURE_HEADER])
    alert = json.loads(body)
    assert sent[alerts.ALERT_ID_HEADER] == alert["alert_id"]
    # the id is the rule's and the detection's: sent again after a restart, it is the same
    (detection,) = events(store, "detection")
    named = f"page\0{detection['event_id']}".encode()
    assert alert["alert_id"] == f"alr_{hashlib.sha256(named).hexdigest()[:32]}"
    assert alert["rule"] == "page"
    assert alert["detection"]["seq"] == seq
    assert alert["detection"]["task_id"] == "tsk_1"
    assert SECRET.decode() not in json.dumps([r.body for r in store.read_events(0, 1000)])
    (delivered,) = events(store, "alert.delivered")
    assert delivered["details"]["attempts"] == 2
    assert stored_alerts(store) == ([], [])
    assert react.delivered == 1


def test_an_unreachable_webhook_is_recorded_as_failed(store: ResponseStore) -> None:
    audit = AuditLog(store, Clock())
    rule = ResponseRule(name="page", detectors=("scope_probing",), actions=("alert",))
    with Receiver() as receiver:
        url = receiver.url
    hook = WebhookSettings(url=url, max_attempts=1, timeout_seconds=2)  # nobody listens now
    react = responder(store, audit, rule, poster=post, webhook=hook)
    detected(audit)
    react.step()
    (failed,) = stored_alerts(store)[1]
    assert failed["last_error"] in ("ClientConnectorError", "ClientOSError")
    assert len(events(store, "alert.failed")) == 1


def test_alert_rules_need_the_secret(store: ResponseStore) -> None:
    rule = ResponseRule(name="page", detectors=("x",), actions=("alert",))
    settings = ResponseSettings(webhook=WebhookSettings(url="https://h.example/"), rules=(rule,))
    with pytest.raises(ValueError, match="secret"):
        Responder(store, AuditLog(store, Clock()), settings, FakeActions(), Clock(), poster=post)


def test_load_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZL_TEST_SECRET", "abc")
    assert alerts.load_secret("ZL_TEST_SECRET") == b"abc"
    monkeypatch.setenv("ZL_TEST_SECRET", "")
    with pytest.raises(Exception, match="ZL_TEST_SECRET") as caught:
        alerts.load_secret("ZL_TEST_SECRET")
    assert getattr(caught.value, "reason", None) == "config.response_secret"
    assert "abc" not in str(caught.value)


@pytest.mark.parametrize(
    "state", ["not json", "[]", '{"alerts": "x", "failed": [1, {"id": "a", "body": "b"}]}']
)
def test_stored_alerts_of_an_unreadable_state(store: ResponseStore, state: str) -> None:
    change = AdvanceCursors((CursorAdvance(RESPONSE_CURSOR, 0, 0, state, T0),))
    assert store.write_recorded(change, lambda ok: [], seal)
    pending, failed = stored_alerts(store)
    assert pending == []
    assert failed == ([{"id": "a"}] if "failed" in state else [])


def test_an_unreadable_state_restarts_afresh(store: ResponseStore) -> None:
    change = AdvanceCursors((CursorAdvance(RESPONSE_CURSOR, 0, 0, '{"risk": []}', T0),))
    assert store.write_recorded(change, lambda ok: [], seal)
    audit, actions = AuditLog(store, Clock()), FakeActions()
    detected(audit)
    responder(store, audit, SUSPEND_PROBERS, actions=actions).step()
    assert actions.calls == [("suspend", "tsk_1", "response:suspend-probers")]


def test_two_responders_over_one_store_respond_once(store: ResponseStore) -> None:
    audit, actions = AuditLog(store, Clock()), FakeActions()
    first = responder(store, audit, SUSPEND_PROBERS, actions=actions)
    second = responder(store, audit, SUSPEND_PROBERS, actions=actions)
    assert second.step() == 0  # it knows its cursor: nothing to read yet
    detected(audit)
    assert first.step() == 1
    assert second.step() == 0  # its cursor moved under it: nothing written, reloaded
    assert second.step() == 1  # from the stored cursor: only the first's response event
    assert actions.calls == [("suspend", "tsk_1", "response:suspend-probers")]
    assert len(events(store, "response")) == 1


def test_batches_without_detections_are_written_only_every_so_often(
    store: ResponseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state (its scores) is written with the cursor when a detection changed it,
    else at most every MAX_UNCOMMITTED events; a restart reads those again, finding
    nothing to do."""
    audit = AuditLog(store, Clock())
    for _ in range(3):
        audit.record(
            "decision", actor=Actor("workload", AGENT), subject="t", outcome=Outcome.DENIED
        )
    react = responder(store, audit, SUSPEND_PROBERS)
    assert react.step() == 3
    assert store.get_cursor(RESPONSE_CURSOR) is None  # nothing written
    assert react.step() == 0
    monkeypatch.setattr(response_module, "MAX_UNCOMMITTED", 4)
    audit.record("decision", actor=Actor("workload", AGENT), subject="t", outcome=Outcome.DENIED)
    assert react.step() == 1
    cursor = store.get_cursor(RESPONSE_CURSOR)
    assert cursor is not None
    assert cursor.seq == 4  # four events read since the last write: written


def test_catch_up_reads_the_whole_backlog(store: ResponseStore) -> None:
    audit, actions = AuditLog(store, Clock()), FakeActions()
    for task in ("tsk_1", "tsk_2", "tsk_3"):
        detected(audit, task=task)
    react = Responder(
        store, audit, ResponseSettings(rules=(SUSPEND_PROBERS,)), actions, Clock(),
        poster=refuse_post, batch_size=2,
    )  # fmt: skip
    assert react.catch_up() == 3 + 3  # the detections, then the response events
    assert [call[1] for call in actions.calls] == ["tsk_1", "tsk_2", "tsk_3"]
    assert react.catch_up() == 0


def test_at_most_max_deliveries_alerts_are_posted_per_step(
    store: ResponseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(response_module, "MAX_DELIVERIES", 2)
    audit, posted = AuditLog(store, Clock()), []

    def accept(url: str, body: bytes, sent: Mapping[str, str], timeout: float) -> None:
        posted.append(body)

    rule = ResponseRule(name="page", detectors=("scope_probing",), actions=("alert",))
    react = responder(store, audit, rule, poster=accept)
    for task in ("t1", "t2", "t3"):
        detected(audit, task=task)
    react.step()
    assert len(posted) == 2
    react.step()
    assert len(posted) == 3
    assert stored_alerts(store) == ([], [])


def test_a_full_alert_queue_fails_its_oldest_alert_at_once(
    store: ResponseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook down for long cannot grow the stored state without bound: past the
    queue's size, the oldest alert is failed (recorded, listed), the newest kept."""
    monkeypatch.setattr(response_module, "MAX_QUEUED", 2)
    clock = Clock()
    audit, tries = AuditLog(store, clock), []

    def failing(url: str, body: bytes, sent: Mapping[str, str], timeout: float) -> None:
        tries.append(body)
        raise alerts.DeliveryFailed("http 503")

    rule = ResponseRule(name="page", min_severity="medium", actions=("alert",))
    hook = WebhookSettings(url="https://hooks.example/t", max_attempts=20, backoff_seconds=600)
    react = responder(store, audit, rule, clock=clock, poster=failing, webhook=hook)
    seqs = [detected(audit, task=task) for task in ("tsk_1", "tsk_2")]
    react.step()  # the twin: within the queue's size nothing is dropped
    assert [len(q) for q in stored_alerts(store)] == [2, 0]
    assert events(store, "alert.failed") == []
    seqs.append(detected(audit, task="tsk_3"))
    react.step()
    pending, failed = stored_alerts(store)
    assert [a["detection_seq"] for a in pending] == seqs[1:]
    assert [(a["detection_seq"], a["last_error"]) for a in failed] == [(seqs[0], "queue full")]
    (dropped,) = events(store, "alert.failed")
    assert dropped["details"]["last_error"] == "queue full"
    assert react.fired == 3  # the rule fired three times; the drop is no firing


def test_require_approval_holds_a_task_once_and_needs_its_own_risk(
    store: ResponseStore,
) -> None:
    """A second detection finds the task held already; a detection about no task holds
    nothing; a rule on risk reads the task's own score, not its workload's."""
    audit, actions = AuditLog(store, Clock()), FakeActions()
    hold = ResponseRule(name="hold", detectors=("scope_probing",), actions=("require_approval",))
    react = responder(store, audit, hold, actions=actions)
    detected(audit)
    detected(audit)
    detected(audit, task=None)
    react.step()
    assert [e["details"]["actions"] for e in events(store, "response")] == [
        {"require_approval": "done"},
        {"require_approval": "already"},
        {"require_approval": "skipped"},
    ]
    risky = ResponseRule(name="risky", min_risk=60, actions=("require_approval",))
    others = FakeActions()
    react = responder(store, AuditLog(store, Clock()), risky, actions=others)
    detected(audit, task="tsk_2")  # tsk_2 30, the workload higher: not tsk_2's own
    react.step()
    assert others.calls == []
    detected(audit, task="tsk_2")  # tsk_2 60 of its own
    react.step()
    assert others.calls == [("require_approval", "tsk_2", "response:risky")]


def scores_of(store: ResponseStore, since: int = -1) -> dict[tuple[str, str], tuple[float, int]]:
    return {(s.kind, s.key): (s.value, s.version) for s in store.risk_scores_since(since)}


def test_a_step_writes_only_the_scores_it_changed(store: ResponseStore) -> None:
    """Scores are rows written with the cursor, versioned by it: the second step writes
    tsk_2 and the workload, not tsk_1 again."""
    audit = AuditLog(store, Clock())
    react = responder(store, audit, SUSPEND_PROBERS)
    detected(audit, task="tsk_1")
    react.step()
    first = store.get_cursor(RESPONSE_CURSOR)
    assert first is not None
    assert "risk" not in json.loads(first.state)  # no whole table in the state
    assert scores_of(store) == {
        ("task", "tsk_1"): (30.0, first.seq),
        ("workload", AGENT): (30.0, first.seq),
    }
    detected(audit, task="tsk_2")
    react.step()
    second = store.get_cursor(RESPONSE_CURSOR)
    assert second is not None
    assert second.seq > first.seq
    assert scores_of(store, first.seq) == {
        ("task", "tsk_2"): (30.0, second.seq),
        ("workload", AGENT): (60.0, second.seq),
    }
    # a restart reads them back: tsk_1's next detection adds to its stored score
    actions = FakeActions()
    rule = ResponseRule(name="r", min_risk=60, actions=("revoke",))
    again = responder(store, audit, rule, actions=actions)
    detected(audit, task="tsk_1")
    again.step()
    assert actions.calls == [("revoke", "tsk_1", "response:r")]


def test_forgotten_scores_are_deleted_with_the_next_write(store: ResponseStore) -> None:
    clock = Clock()
    audit = AuditLog(store, clock)
    react = responder(store, audit, SUSPEND_PROBERS, clock=clock)
    detected(audit, task="tsk_1", workload=None)
    react.step()
    clock.at += 10 * 3600  # 30 / 2**10 < 0.5: forgotten
    detected(audit, task="tsk_2", workload=None)
    react.step()
    assert set(scores_of(store)) == {("task", "tsk_2")}


def test_scores_are_not_written_when_the_step_is_not(
    store: ResponseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scores go in the write of the cursor and the response events: a step whose
    events cannot be recorded stores none of them (a crash there loses nothing), and
    its next try scores each detection once."""
    audit = AuditLog(store, Clock())
    detected(audit)
    react = responder(store, audit, SUSPEND_PROBERS)

    def failing_seal(event: dict[str, object], seq: int, prev: str) -> AuditRecord:
        raise ValueError("cannot seal")

    monkeypatch.setattr(response_module, "seal", failing_seal)
    with pytest.raises(Unavailable):
        react.step()
    assert scores_of(store) == {}
    assert store.get_cursor(RESPONSE_CURSOR) is None
    monkeypatch.setattr(response_module, "seal", seal)
    react.step()
    assert scores_of(store)[("task", "tsk_1")][0] == 30.0  # once, not twice
    assert len(events(store, "response")) == 1


def test_a_whole_table_in_an_old_state_is_moved_into_rows_once(store: ResponseStore) -> None:
    """A home written before the rows keeps its scores in the cursor's state: the first
    load moves them into rows (with its alerts kept), and they go on from there."""
    old = {
        "risk": {"tasks": {"tsk_1": [40.0, T0]}, "workloads": {AGENT: [50.0, T0]}},
        "alerts": [],
        "failed": [{"id": "alr_1", "rule": "r", "attempts": 3, "last_error": "x"}],
    }
    clock = Clock()
    audit = AuditLog(store, clock)
    for _ in range(7):  # what that responder had read
        audit.record(
            "decision", actor=Actor("workload", AGENT), subject="t", outcome=Outcome.DENIED
        )
    change = AdvanceCursors((CursorAdvance(RESPONSE_CURSOR, 0, 7, json.dumps(old), T0),))
    assert store.write_recorded(change, lambda ok: [], seal)
    decider = RiskView(store, clock, half_life=3600, refresh=60)
    assert decider.facts("tsk_1", AGENT) == RiskFacts(40, 50)  # read from the old state once
    react = responder(store, audit, SUSPEND_PROBERS, clock=clock)
    assert react.step() == 0
    cursor = store.get_cursor(RESPONSE_CURSOR)
    assert cursor is not None
    assert cursor.seq == 7
    state = json.loads(cursor.state)
    assert "risk" not in state
    assert state["failed"] == old["failed"]
    assert scores_of(store) == {("task", "tsk_1"): (40.0, 7), ("workload", AGENT): (50.0, 7)}
    detected(audit, task="tsk_1")
    react.step()
    assert scores_of(store, 7)[("task", "tsk_1")][0] == 70.0
    clock.at += 60
    # then the rows written since (70 and 80, a minute decayed)
    assert decider.facts("tsk_1", AGENT) == RiskFacts(69, 79)
    assert scores_of(store, -1).keys() == {("task", "tsk_1"), ("workload", AGENT)}


def test_an_old_table_moved_by_another_responder_first_is_read_from_its_rows() -> None:
    """Two responders loading an old home at once: the one whose move comes second finds
    the cursor moved, writes nothing, and loads what the first wrote."""
    store = MemoryStores()
    old = json.dumps({"risk": {"tasks": {"tsk_1": [40.0, T0]}, "workloads": {}}})
    stale = AdvanceCursors((CursorAdvance(RESPONSE_CURSOR, 0, 0, old, T0),))
    assert store.write_recorded(stale, lambda ok: [], seal)
    seen = store.get_cursor(RESPONSE_CURSOR)
    audit = AuditLog(store, Clock())
    responder(store, audit, SUSPEND_PROBERS).step()  # the first: moved into rows
    assert not json.loads(store.get_cursor(RESPONSE_CURSOR).state).get("risk")  # type: ignore[union-attr]
    detected(audit, task="tsk_1")
    first = responder(store, audit, SUSPEND_PROBERS)
    first.step()  # tsk_1 at 70, the cursor past the detection
    calls = iter([seen])
    original = store.get_cursor
    store.get_cursor = lambda detector: next(calls, None) or original(detector)  # type: ignore[method-assign]
    second = responder(store, audit, SUSPEND_PROBERS)
    assert second.step() == 1  # read from the stored cursor: the first's response event
    assert second._scores.task("tsk_1", T0) == 70
    assert scores_of(store)[("task", "tsk_1")][0] == 70.0
