"""Scheduled control testing: ``zerolane up`` probes its own deployment every
``[probe] every`` (docs/probe.md).

Each run is recorded as a ``probe.run`` audit event (the counts, the scenarios that
failed or were inconclusive); each ``fail`` also as a ``detection`` of detector
``probe``, severity high, so the ``[[response.rules]]`` that alert on detections alert
on it through the same webhook. A run that cannot start (a bad probe file, no
credential) is a ``probe.run`` with outcome failure and its reason, one that crashes a
``probe.run`` ``probe.error`` with the error's type: never silent.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from zerolane.audit.events import Actor
from zerolane.errors import ZerolaneError
from zerolane.types import Outcome

if TYPE_CHECKING:
    from zerolane.probe.report import Report
    from zerolane.server.deployment import Deployment
    from zerolane.settings.probe import ProbeSchedule

log = logging.getLogger("zerolane.probe")
PROBE_ACTOR = Actor("system", "probe")
#: the detector name a scheduled probe's failures are recorded under
DETECTOR = "probe"


class ScheduledProbe:
    """Runs the probe of ``schedule`` against the deployment every ``schedule.every``
    seconds, in a thread of its own."""

    def __init__(self, deployment: Deployment, schedule: ProbeSchedule, control_plane: str) -> None:
        if schedule.every is None:
            raise ValueError("the probe has no schedule ([probe] every)")
        self._deployment = deployment
        self._schedule = schedule
        self._every = schedule.every
        self._control_plane = control_plane
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: runs made, and the last report (None before the first or after a run that failed)
        self.runs = 0
        self.last: Report | None = None

    @property
    def file(self) -> Path:
        return self._deployment.home / self._schedule.file

    def run_once(self) -> Report | None:
        """One probe run, recorded; its report (None when it could not run)."""
        from zerolane.cli.probe import probe_with_file

        started = time.monotonic()
        self.runs += 1
        try:
            report = probe_with_file(
                self.file,
                only=self._schedule.only,
                deployment=self._deployment,
                control_plane=self._control_plane,
            )
        except ZerolaneError as err:
            self.last = None
            self._deployment.audit.record(
                "probe.run",
                actor=PROBE_ACTOR,
                subject=str(self.file),
                outcome=Outcome.FAILURE,
                reason=err.reason,
                details={"error": err.message, "file": str(self.file)},
            )
            log.warning("scheduled probe could not run: %s: %s", err.reason, err.message)
            return None
        except Exception as err:  # a crash is recorded too (its type only: a message
            # could quote what the run held), never left as the last run's outcome
            self.last = None
            self._deployment.audit.record(
                "probe.run",
                actor=PROBE_ACTOR,
                subject=str(self.file),
                outcome=Outcome.FAILURE,
                reason="probe.error",
                details={"error": type(err).__name__, "file": str(self.file)},
            )
            log.error("scheduled probe failed: %s", type(err).__name__)
            return None
        self.last = report
        self._record(report, (time.monotonic() - started) * 1000)
        return report

    def _record(self, report: Report, elapsed_ms: float) -> None:
        from zerolane.probe.model import Outcome as ProbeOutcome

        audit = self._deployment.audit
        failed = [r.scenario for r in report.results if r.outcome is ProbeOutcome.FAIL]
        inconclusive = [
            r.scenario for r in report.results if r.outcome is ProbeOutcome.INCONCLUSIVE
        ]
        events = [
            audit.event(
                "probe.run",
                PROBE_ACTOR,
                report.target,
                Outcome.FAILURE if failed else Outcome.SUCCESS,
                "probe.fail" if failed else "probe.pass",
                {
                    "target": report.target,
                    "file": str(self.file),
                    "counts": report.counts(),
                    "failed": failed,
                    "inconclusive": inconclusive,
                    "duration_ms": round(elapsed_ms),
                },
            )
        ]
        for result in report.results:
            if result.outcome is not ProbeOutcome.FAIL:
                continue
            events.append(
                audit.event(
                    "detection",
                    Actor("detector", DETECTOR),
                    report.target,
                    Outcome.FAILURE,
                    f"detection.{DETECTOR}",
                    {
                        "detector": DETECTOR,
                        "severity": "high",
                        "summary": f"probe scenario {result.scenario} failed: {result.reason}",
                        "task_id": None,
                        "workload": None,
                        "evidence": [],
                        "evidence_total": 0,
                        "scenario": result.scenario,
                        "target": report.target,
                    },
                )
            )
        audit.record_all(events)

    def _loop(self) -> None:
        wait = float(self._schedule.first_after)
        while not self._stop.wait(wait):
            try:
                self.run_once()
            except Exception:  # a bug must not end the schedule: logged, tried again
                log.exception("scheduled probe failed")
            wait = float(self._every)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="zerolane-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
