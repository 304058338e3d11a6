"""Detection and automatic response, in one process, over SQLite.

    .venv/bin/python bench/detection.py [--events 20000] [--triggers 30] [--requests 500]
    .venv/bin/python bench/detection.py --risk-only

Rows:
  events/s            every detector (``[detection]`` defaults) and the responder
                      catching up on ``--events`` recorded events: a mix of allowed
                      requests, denials on distinct resources (probing), replays and
                      delegations over 1000 tasks; wall clock and CPU time of the
                      process (the box is shared: CPU time is the steadier one)
  live tasks          the same with the events spread over 10 .. 100,000 tasks (at least
                      one event each), and the size of the detectors' stored state
  decision on / off   wall microseconds per ``Decider.decide`` (sync, one task), with the
                      detection thread running (poll 0.01 s) and without, same process
  trigger -> denied   from recording a replay of a task (the event a gateway would write)
                      to that task's next request denied ``task.suspended`` by the rule
                      ``detectors = ["replay"], actions = ["suspend"]`` (p50 / p99)
  risk growth         with 10 .. 100,000 tasks scored (stored as rows): a decider's
                      risk read (us), the responder's write of a step with one
                      detection (ms) and another process's decider reading the rows
                      that step wrote (ms); ``--risk-only``: these rows alone
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gateway import AUDIENCE, DESTINATION, PATH, make_home  # noqa: E402

URL = f"http://gw.bench.local{PATH}"
AGENT = "spiffe://bench.example/agents/reader"
RESPONSE = """
[detection]
poll_interval = 0.01

[[response.rules]]
name = "stop-replays"
detectors = ["replay"]
actions = ["suspend"]
"""


def _event(kind: str, task: str, reason: str, details: dict[str, Any]) -> dict[str, Any]:
    from zerolane.audit.events import Actor, Event
    from zerolane.types import Outcome

    outcome = Outcome.SUCCESS if reason == "ok" else Outcome.DENIED
    return Event(
        kind, Actor("workload", AGENT), task, outcome, reason, time.time(), details
    ).unsealed()


class Rates:
    """What :func:`events_per_second` measured."""

    def __init__(self, wall: float, cpu: float, detectors: float, found: int, state: int):
        self.wall, self.cpu, self.detectors, self.found, self.state = (
            wall, cpu, detectors, found, state
        )  # fmt: skip


def events_per_second(count: int, tasks: int = 1000) -> Rates:
    """Events per second through every detector and the responder (wall clock and CPU
    time), through the detectors alone (wall); detections found; bytes of state stored."""
    from zerolane.audit.chain import seal
    from zerolane.audit.log import AuditLog
    from zerolane.detection.detectors import build_detectors
    from zerolane.detection.response import Responder
    from zerolane.detection.runner import DetectionRunner
    from zerolane.settings.detection import DetectionSettings
    from zerolane.settings.response import ResponseSettings
    from zerolane.store.sqlite import SqliteStores
    from zerolane.types import SystemClock

    class NoActions:
        def suspend(self, *_: object) -> None: ...
        def revoke(self, *_: object) -> None: ...
        def disable(self, *_: object) -> None: ...
        def require_approval(self, *_: object) -> None: ...

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStores(Path(tmp) / "z.db")
        batch: list[dict[str, Any]] = []
        for i in range(count):
            task = f"tsk_{i % tasks}"
            kind, reason = "decision", "ok"
            details: dict[str, Any] = {"decision": "allow", "action": "read",
                                       "resource": f"reports/{i % 7}", "method": "GET",
                                       "destination": DESTINATION, "sensitivity": 1}  # fmt: skip
            if i % 10 == 1:  # a denial on a resource of its own: probing
                reason = "scope.resource"
                details = {**details, "decision": "deny", "reasons": [reason],
                           "resource": f"secret/{i}"}  # fmt: skip
            elif i % 50 == 2:
                reason = "dpop.replayed"
                details = {"decision": "deny", "reasons": [reason]}
            elif i % 25 == 3:
                kind, details = "task.delegated", {"parent_id": task, "depth": 1}
            batch.append(_event(kind, task, reason, details))
            if len(batch) == 1000:
                store.append_events(batch, seal)
                batch = []
        if batch:
            store.append_events(batch, seal)
        clock = SystemClock()
        audit = AuditLog(store, clock)
        runner = DetectionRunner(store, audit, build_detectors(DetectionSettings()), clock)
        responder = Responder(
            store, audit, ResponseSettings(), NoActions(), clock, poster=lambda *_: None
        )
        start, cpu = time.perf_counter(), time.process_time()
        runner.catch_up()
        detectors = time.perf_counter() - start
        while responder.step():
            pass
        spent, cpu = time.perf_counter() - start, time.process_time() - cpu
        found = runner.recorded
        state = sum(len(c.state) for c in store.list_cursors())
        store.close()
    return Rates(count / spent, count / cpu, count / detectors, found, state)


def decisions_and_triggers(requests: int, triggers: int) -> dict[str, Any]:
    """Decision wall time with the detection thread on and off; trigger -> denied."""
    from cryptography.hazmat.primitives import serialization

    from zerolane.audit.events import Actor
    from zerolane.config import CONFIG_NAME
    from zerolane.server.deployment import Deployment
    from zerolane.tasks.decisions import DecideInput
    from zerolane.tokens.rfc9449 import make_proof
    from zerolane.types import Outcome

    request = DecideInput(
        "GET",
        URL,
        action="read",
        resource="reports/q3",
        destination=DESTINATION,
        sensitivity="internal",
        audience=AUDIENCE,
    )
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp), [], 0, triggers + 1)
        with (home.path / CONFIG_NAME).open("a") as config:
            config.write(RESPONSE)
        key = serialization.load_pem_private_key(home.key_pem.encode(), None)
        deployment = Deployment.open(home.path)
        try:
            decider, token = deployment.decider, home.tokens[0]

            def decide(task_token: str) -> Any:
                proof = make_proof(key, method="GET", url=URL, access_token=task_token)  # type: ignore[arg-type]
                return decider.decide(task_token, proof, request)

            def per_decision() -> float:
                proofs = [make_proof(key, method="GET", url=URL, access_token=token)  # type: ignore[arg-type]
                          for _ in range(requests)]  # fmt: skip
                start = time.perf_counter()
                for proof in proofs:
                    assert decider.decide(token, proof, request).allowed
                return (time.perf_counter() - start) / requests * 1e6

            for _ in range(64):
                decide(token)
            off = [per_decision()]
            deployment.detection.start()
            on = [per_decision()]
            deployment.detection.stop()
            off.append(per_decision())
            deployment.detection.start()
            on.append(per_decision())
            delays: list[float] = []
            for task_token, task_id in zip(
                home.tokens[1 : triggers + 1], home.task_ids[1 : triggers + 1], strict=True
            ):
                assert decide(task_token).allowed
                start = time.perf_counter()
                deployment.audit.record(
                    "decision",
                    actor=Actor("workload", AGENT),
                    subject=task_id,
                    outcome=Outcome.DENIED,
                    reason="dpop.replayed",
                    details={"decision": "deny", "reasons": ["dpop.replayed"]},
                )
                while True:
                    decision = decide(task_token)
                    if not decision.allowed:
                        break
                    time.sleep(0.001)
                delays.append((time.perf_counter() - start) * 1e3)
                assert decision.reasons == ("task.suspended",), decision.reasons
            deployment.detection.stop()
        finally:
            deployment.close()
    delays.sort()
    return {
        "on": statistics.median(on),
        "off": statistics.median(off),
        "p50": statistics.median(delays),
        "p99": delays[min(len(delays) - 1, round(0.99 * (len(delays) - 1)))],
    }


def risk_growth(sizes: list[int]) -> list[tuple[int, float, float, float]]:
    """Per number of scored tasks: a decider's risk read (us), the responder's write of
    a step with one detection (ms: its cursor and the two scores it changed, as rows)
    and a decider's re-read after that step (ms: the rows written since its last read)."""
    from zerolane.audit.chain import seal
    from zerolane.detection.risk import RESPONSE_CURSOR, RiskScores, RiskView
    from zerolane.store.changes import AdvanceCursors, CursorAdvance
    from zerolane.store.sqlite import SqliteStores
    from zerolane.types import SystemClock

    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStores(Path(tmp) / "z.db")
            now = time.time()
            scores = RiskScores(3600)
            for i in range(size):
                scores.add(f"tsk_{i}", f"spiffe://bench.example/w{i % 100}", 30, now)
            first = CursorAdvance(RESPONSE_CURSOR, 0, 1, "{}", now)
            stored = AdvanceCursors((first,), scores.rows(1), now)
            assert store.write_recorded(stored, lambda ok: [], seal)
            view = RiskView(store, SystemClock(), half_life=3600, refresh=1.0)
            view.put(scores, 10**9)
            n = 50_000
            start = time.perf_counter()
            for i in range(n):
                view.facts(f"tsk_{i % size}", "spiffe://bench.example/w1")
            read_us = (time.perf_counter() - start) / n * 1e6
            reader = RiskView(store, SystemClock(), half_life=3600, refresh=1.0)
            reader._reload(time.time())  # a decider of another process, caught up
            commits, commit_s, reread_s = 5, 0.0, 0.0
            for seq in range(1, commits + 1):
                scores.add(f"tsk_{seq}", "spiffe://bench.example/w1", 30, time.time())
                start = time.perf_counter()
                advance = CursorAdvance(RESPONSE_CURSOR, seq, seq + 1, "{}", now)
                step = AdvanceCursors((advance,), scores.rows(seq + 1), time.time())
                assert store.write_recorded(step, lambda ok: [], seal)
                commit_s += time.perf_counter() - start
                reader._next = 0.0  # its refresh interval over
                start = time.perf_counter()
                reader.facts("tsk_1", "spiffe://bench.example/w1")
                reread_s += time.perf_counter() - start
            store.close()
        rows.append((size, read_us, commit_s / commits * 1e3, reread_s / commits * 1e3))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--triggers", type=int, default=30)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--risk-only", action="store_true", help="the risk growth rows only")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.risk_only:
        risk_rows()
        return
    rates = events_per_second(args.events)
    print(f"events/s through all detectors + responder: {rates.wall:,.0f} wall, "
          f"{rates.cpu:,.0f} per CPU second; detectors alone {rates.detectors:,.0f} wall "
          f"({rates.found} detections)")  # fmt: skip
    print("live tasks | events | events/s wall | per CPU s | detections | state stored KB")
    for tasks in (10, 1000, 100_000):
        count = max(args.events, tasks)
        r = events_per_second(count, tasks)
        print(f"{tasks:>10,} | {count:>6,} | {r.wall:>13,.0f} | {r.cpu:>9,.0f} | "
              f"{r.found:>10} | {r.state / 1024:>15,.0f}")  # fmt: skip
    timed = decisions_and_triggers(args.requests, args.triggers)
    ratio = timed["on"] / timed["off"]
    print(f"decision wall us: detectors on {timed['on']:.0f}, off {timed['off']:.0f}, "
          f"ratio {ratio:.2f}x")  # fmt: skip
    print(f"trigger -> next request denied task.suspended: p50 {timed['p50']:.1f} ms, "
          f"p99 {timed['p99']:.1f} ms ({args.triggers} triggers)")  # fmt: skip
    risk_rows()


def risk_rows() -> None:
    rows = risk_growth([10, 1000, 100_000])
    print("scored tasks | risk read us | ratio | responder step write ms | ratio | "
          "decider re-read ms | ratio")  # fmt: skip
    for size, read_us, commit_ms, reread_ms in rows:
        print(f"{size:>12,} | {read_us:>12.2f} | {read_us / rows[0][1]:>5.2f}x | "
              f"{commit_ms:>23.2f} | {commit_ms / rows[0][2]:>5.1f}x | "
              f"{reread_ms:>18.3f} | {reread_ms / rows[0][3]:>5.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
