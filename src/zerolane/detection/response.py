"""Automatic response: the ``detection`` events of the audit log, read by sequence
number from a stored cursor (``response``, beside the detectors'), scored
(:mod:`zerolane.detection.risk`) and matched against ``[[response.rules]]``.

A step reads the events after the cursor, and for each detection, in order: adds its
weight to its task's and workload's risk, then takes the actions of every rule it
matches (``require_approval`` holds the task: each of its requests then needs a human
approval until an admin releases it; ``suspend`` the task and its subtree, ``revoke``
it and its descendants, ``disable`` the workload, each through the lifecycle with the
actor ``system/response:<rule>``, each audited there; ``alert`` queues a signed webhook
post). Then one write (:class:`~zerolane.store.changes.AdvanceCursors`) moves the
cursor past them, with the queued alerts as its state, the risk scores the step
changed (rows of the store, :mod:`zerolane.detection.risk`; the forgotten ones deleted)
and a ``response`` event per rule fired. A restart resumes after the cursor: nothing is
responded to twice. A crash between an action and that write repeats the action once
(a suspension or revocation already made is refused by the store, so it changes
nothing; it is recorded as ``already``).

Queued alerts are posted after the write, due ones each step: a failure waits
``backoff_seconds`` doubled per attempt; after ``max_attempts`` it is recorded as an
``alert.failed`` event and kept in the cursor's state (the last :data:`MAX_FAILED`),
listed by ``zerolane alerts list``. A delivery is ``alert.delivered``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor, rfc3339
from zerolane.audit.log import AuditLog
from zerolane.detection import alerts
from zerolane.detection.risk import RESPONSE_CURSOR, RiskScores, RiskStore, RiskView
from zerolane.detection.seen import DETECTION, Seen
from zerolane.errors import ZerolaneError
from zerolane.settings.response import ResponseRule, ResponseSettings
from zerolane.store.changes import AdvanceCursors, CursorAdvance
from zerolane.store.ports import AuditStore, DetectorCursorStore, RecordedWrites
from zerolane.types import Clock, Outcome

log = logging.getLogger(__name__)

#: failed alerts kept in the state for ``zerolane alerts list`` (all are in the log)
MAX_FAILED = 1000
#: a batch with no detection changes nothing and is not written; the cursor is written
#: at least every this many events, so a restart reads again at most this many (and
#: finds nothing)
MAX_UNCOMMITTED = 10_000
#: alerts posted per step at most (each may wait ``timeout_seconds``)
MAX_DELIVERIES = 10
#: the longest wait between two attempts of one alert (seconds)
MAX_ALERT_BACKOFF = 3600.0
#: alerts waiting at most (a webhook down for long): one more fails the oldest at once
#: (``alert.failed``, ``queue full``), so the state written at each step stays bounded
MAX_QUEUED = 1000


class ResponseStore(AuditStore, RiskStore, RecordedWrites, Protocol):
    """What the responder needs of a backend: the log, the cursors, the risk scores,
    recorded writes."""


class Actions(Protocol):
    """What a response can do (the deployment's lifecycle and registry)."""

    def suspend(self, task_id: str, actor: Actor, reason: str) -> object: ...

    def revoke(self, task_id: str, actor: Actor, reason: str) -> object: ...

    def disable(self, workload: str, actor: Actor) -> object: ...

    def require_approval(
        self, task_id: str, actor: Actor, rule: str, detector: str, detection: str
    ) -> object:
        """Hold the task (:mod:`zerolane.tasks.holds`); None when it is held already."""
        ...


class _Already(Exception):
    """The action was taken before (the task is held already)."""


def rule_actor(rule: ResponseRule) -> Actor:
    """The actor of a rule's automatic actions."""
    return Actor("system", f"response:{rule.name}")


class Responder:
    """Responds to detections (see the module doc)."""

    def __init__(
        self,
        store: ResponseStore,
        audit: AuditLog,
        settings: ResponseSettings,
        actions: Actions,
        clock: Clock,
        *,
        poster: alerts.Poster,
        secret: bytes | None = None,
        view: RiskView | None = None,
        batch_size: int = 500,
    ) -> None:
        """``poster``: posts an alert; ``secret``: the webhook's HMAC key (needed when a
        rule alerts); ``view``: the deciders' risk, handed each committed score."""
        if secret is None and any("alert" in r.actions for r in settings.rules):
            raise ValueError("alert rules need the webhook secret")
        self._store = store
        self._audit = audit
        self._settings = settings
        self._actions = actions
        self._clock = clock
        self._secret = secret or b""
        self._view = view
        self._post = poster
        self._batch = batch_size
        self._lock = threading.Lock()
        self._seq: int | None = None  # where it has read to; None: load from the store
        self._stored = 0  # the cursor as stored (its compare-and-set expects it)
        self._scores = RiskScores(settings.risk.half_life_seconds)
        self._pending: list[dict[str, Any]] = []
        self._failed: list[dict[str, Any]] = []
        self._dropped: list[dict[str, object]] = []  # alert.failed events of a full queue
        #: rules fired, and alerts delivered / failed, by this responder
        self.fired = 0
        self.delivered = 0
        self.failed = 0

    @property
    def queued(self) -> int:
        """Alerts waiting for their next attempt (as of this responder's last step)."""
        return len(self._pending)

    # state
    def _load(self) -> int:
        cursor = self._store.get_cursor(RESPONSE_CURSOR)
        now = self._clock.now()
        self._scores = RiskScores(self._settings.risk.half_life_seconds)
        state: dict[str, Any] = {}
        legacy = False  # the scores are still in the state (written before the rows)
        if cursor is not None:
            try:
                state = json.loads(cursor.state)
                legacy = "risk" in state
                if legacy:
                    self._scores.restore(state["risk"])
            except (ValueError, TypeError, KeyError, AttributeError):
                log.error("the stored state of the responder is unreadable: afresh")
                state = {}
                self._scores = RiskScores(self._settings.risk.half_life_seconds)
        pending, failed = state.get("alerts", []), state.get("failed", [])
        self._pending = list(pending) if isinstance(pending, list) else []
        self._failed = list(failed) if isinstance(failed, list) else []
        self._stored = cursor.seq if cursor is not None else 0
        if legacy:  # moved into rows at once, in one write (a crash: moved next time)
            self._scores.mark_all_changed()
            if not self._write(self._stored, [], now):
                return self._load()  # another responder moved it
            log.info("moved the responder's risk scores from its state into rows")
        self._scores.merge(self._store.risk_scores_since(-1))
        return self._stored

    def _state(self) -> str:
        state = {"alerts": self._pending, "failed": self._failed[-MAX_FAILED:]}
        return json.dumps(state, separators=(",", ":"))

    def _write(self, last: int, events: list[dict[str, object]], now: float) -> bool:
        """Move the stored cursor to ``last`` with the state, the scores changed (as of
        version ``last``) and ``events``, in one write; False when it moved elsewhere."""
        change = AdvanceCursors(
            (CursorAdvance(RESPONSE_CURSOR, self._stored, last, self._state(), now),),
            scores=self._scores.rows(last),
            forget_before=now,
        )
        return self._store.write_recorded(change, lambda ok: events if ok else [], seal)

    def _commit(self, last: int, events: list[dict[str, object]]) -> bool:
        if not self._write(last, events, self._clock.now()):
            log.info("the responder's cursor moved elsewhere; reloading it")
            self._seq = None
            return False
        self._seq = self._stored = last
        if self._view is not None:
            self._view.put(self._scores, last)
        return True

    # steps
    def step(self) -> int:
        """Respond to one batch of the log, then post the alerts due; events read."""
        with self._lock:
            start = self._seq if self._seq is not None else self._load()
            self._seq = None  # until committed, the store is the truth
            records = self._store.read_events(start, self._batch)
            if records:
                last = records[-1].seq
                found = [record for record in records if record.kind == DETECTION]
                events: list[dict[str, object]] = []
                fired = 0
                for record in found:
                    responses = self._respond(Seen.of(record))
                    fired += len(responses)
                    events += responses + self._dropped  # the queue's overflow with them
                    self._dropped.clear()
                if found or last - self._stored >= MAX_UNCOMMITTED:
                    if not self._commit(last, events):
                        return 0
                    self.fired += fired
                else:  # nothing changed: no write (see MAX_UNCOMMITTED)
                    self._seq = last
            else:
                self._seq = start
            self._deliver_due()
            return len(records)

    def catch_up(self) -> int:
        """Step until a batch comes back short (the log read to its end); events read.
        The detection thread runs this after each of its steps, so a responder behind
        (a home with a long log) does not wait a poll interval per batch."""
        total = 0
        while (read := self.step()) > 0:
            total += read
            if read < self._batch:
                break
        return total

    def _respond(self, seen: Seen) -> list[dict[str, object]]:
        """Score one detection and take the actions of the rules it matches; the
        ``response`` event of each."""
        details = seen.details
        detector, severity = str(details.get("detector", "")), str(details.get("severity", ""))
        task_id = details.get("task_id") if isinstance(details.get("task_id"), str) else None
        workload = details.get("workload") if isinstance(details.get("workload"), str) else None
        task_id, workload = task_id or None, workload or None
        self._scores.add(task_id, workload, self._settings.risk.weight(severity), seen.time)
        risk = {
            "task": self._scores.task(task_id, seen.time) if task_id else 0,
            "workload": self._scores.workload(workload, seen.time) if workload else 0,
        }
        events: list[dict[str, object]] = []
        for rule in self._settings.rules:
            if not rule.matches(detector, severity, _risk_of(rule, risk)):
                continue
            done: dict[str, str] = {}
            for action in rule.actions:
                done[action] = self._act(rule, action, seen, task_id, workload, risk)
            events.append(
                self._audit.event(
                    "response",
                    rule_actor(rule),
                    seen.subject,
                    Outcome.SUCCESS,
                    f"response.{rule.name}",
                    {
                        "rule": rule.name,
                        "detection": {"seq": seen.seq, "event_id": seen.event_id},
                        "detector": detector,
                        "severity": severity,
                        "task_id": task_id,
                        "workload": workload,
                        "risk": risk,
                        "actions": done,
                    },
                ).unsealed()
            )
        return events

    def _act(
        self,
        rule: ResponseRule,
        action: str,
        seen: Seen,
        task_id: str | None,
        workload: str | None,
        risk: dict[str, int],
    ) -> str:
        """Take one action; what became of it: ``done``, ``queued`` (an alert),
        ``already``, ``skipped`` (nothing to act on) or ``failed: <reason>``."""
        actor, reason = rule_actor(rule), f"detection.{seen.details.get('detector', '')}"
        run: Callable[[], object]
        if action == "alert":
            self._queue_alert(rule, seen, task_id, workload, risk)
            return "queued"
        if action == "disable":
            if workload is None:
                return "skipped"
            name = workload
            run = lambda: self._actions.disable(name, actor)  # noqa: E731
        elif action == "require_approval":
            if task_id is None:
                return "skipped"
            held, detector = task_id, str(seen.details.get("detector", ""))

            def run() -> object:
                placed = self._actions.require_approval(
                    held, actor, rule.name, detector, seen.event_id
                )
                if placed is None:
                    raise _Already()
                return placed

        else:
            if task_id is None:
                return "skipped"
            act = self._actions.suspend if action == "suspend" else self._actions.revoke
            task = task_id
            run = lambda: act(task, actor, reason)  # noqa: E731
        try:
            run()
        except _Already:
            return "already"
        except ZerolaneError as err:
            if err.reason in ("task.already_suspended", "task.ended", "workload.disabled"):
                return "already"
            log.warning("rule %s could not %s: %s", rule.name, action, err.reason)
            return f"failed: {err.reason}"
        return "done"

    # alerts
    def _queue_alert(
        self,
        rule: ResponseRule,
        seen: Seen,
        task_id: str | None,
        workload: str | None,
        risk: dict[str, int],
    ) -> None:
        # one id per rule and detection: a receiver drops a delivery it already has
        # (a restart between a delivery and the write of its cursor sends it again)
        named = f"{rule.name}\0{seen.event_id}".encode()
        alert_id = f"alr_{hashlib.sha256(named).hexdigest()[:32]}"
        body = {
            "alert_id": alert_id,
            "time": rfc3339(self._clock.now()),
            "rule": rule.name,
            "detection": {
                "seq": seen.seq,
                "event_id": seen.event_id,
                "detector": seen.details.get("detector"),
                "severity": seen.details.get("severity"),
                "summary": seen.details.get("summary"),
                "task_id": task_id,
                "workload": workload,
            },
            "risk": risk,
            "actions": list(rule.actions),
        }
        if len(self._pending) >= MAX_QUEUED:
            oldest = self._pending.pop(0)
            oldest["last_error"] = "queue full"
            self._fail(oldest, self._clock.now())
            self._dropped.append(self._alert_event("alert.failed", oldest, Outcome.FAILURE))
        self._pending.append(
            {
                "id": alert_id,
                "rule": rule.name,
                "detection_seq": seen.seq,
                "body": json.dumps(body, separators=(",", ":"), sort_keys=True),
                "attempts": 0,
                "next_at": 0.0,
                "last_error": "",
            }
        )

    def _deliver_due(self) -> None:
        """Post the alerts due (under the lock, after a committed step); record each
        outcome with the state in one write."""
        if self._seq is None or not self._pending:
            return
        now = self._clock.now()
        due = [a for a in self._pending if float(a.get("next_at", 0.0)) <= now]
        due = due[:MAX_DELIVERIES]  # the rest next step: the detectors' thread waits on these
        if not due:
            return
        events: list[dict[str, object]] = []
        webhook = self._settings.webhook
        for alert in due:
            body = str(alert["body"]).encode()
            try:
                self._post(
                    webhook.url,
                    body,
                    alerts.headers(self._secret, str(alert["id"]), body),
                    webhook.timeout_seconds,
                )
            except alerts.DeliveryFailed as err:
                error = str(err)
            except Exception as err:  # a poster that raised anything else: still counted
                error = type(err).__name__
            else:
                error = ""
            alert["attempts"] = int(alert["attempts"]) + 1
            if not error:
                self._pending.remove(alert)
                self.delivered += 1
                events.append(self._alert_event("alert.delivered", alert, Outcome.SUCCESS))
                continue
            alert["last_error"] = error
            if alert["attempts"] >= webhook.max_attempts:
                self._pending.remove(alert)
                self._fail(alert, now)
                events.append(self._alert_event("alert.failed", alert, Outcome.FAILURE))
            else:
                pause = webhook.backoff_seconds * 2 ** (int(alert["attempts"]) - 1)
                alert["next_at"] = now + min(pause, MAX_ALERT_BACKOFF)
        self._commit(self._seq, events)

    def _fail(self, alert: dict[str, Any], now: float) -> None:
        """Keep ``alert`` (out of the queue) as failed, for ``zerolane alerts list``."""
        self._failed.append({**{k: v for k, v in alert.items() if k != "body"}, "at": now})
        self.failed += 1
        log.error(
            "alert %s failed after %d attempt(s): %s",
            alert["id"],
            alert["attempts"],
            alert["last_error"],
        )

    def _alert_event(self, kind: str, alert: dict[str, Any], outcome: Outcome) -> dict[str, object]:
        details = {
            "alert_id": alert["id"],
            "rule": alert["rule"],
            "detection_seq": alert["detection_seq"],
            "attempts": alert["attempts"],
            "last_error": alert["last_error"],
        }
        reason = "ok" if outcome is Outcome.SUCCESS else "alert.delivery_failed"
        return self._audit.event(
            kind, Actor("system", f"response:{alert['rule']}"), str(alert["id"]), outcome, reason,
            details,
        ).unsealed()  # fmt: skip


def stored_alerts(
    cursors: DetectorCursorStore,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The alerts queued and those that failed (the last :data:`MAX_FAILED`), as the
    responder's cursor holds them, bodies left out (``zerolane alerts list``)."""
    cursor = cursors.get_cursor(RESPONSE_CURSOR)
    try:
        state = json.loads(cursor.state) if cursor is not None else {}
    except ValueError:
        state = {}
    state = state if isinstance(state, dict) else {}
    return _bodiless(state.get("alerts", [])), _bodiless(state.get("failed", []))


def _bodiless(alerts: Any) -> list[dict[str, Any]]:
    if not isinstance(alerts, list):
        return []
    return [{k: v for k, v in a.items() if k != "body"} for a in alerts if isinstance(a, dict)]


def _risk_of(rule: ResponseRule, risk: dict[str, int]) -> int:
    """The risk a rule's ``min_risk`` is read against: the workload's for a rule that
    disables the workload, the task's for one that suspends, revokes or holds the task
    (a workload's score, raised by its other tasks or by a thief's refused proofs, never
    ends nor holds a task that did nothing itself), the higher of both for one that only
    alerts."""
    if "disable" in rule.actions:
        return risk["workload"]
    if any(action in rule.actions for action in ("suspend", "revoke", "require_approval")):
        return risk["task"]
    return max(risk.values())
