"""Rapid privilege reuse: one credential used at a rate unlike its own, from a source
it was never used from, or for a second task.

A credential is a task token (``details.token_id`` of a ``decision``, else the
decision's task), or a downstream grant: its lease (``details.lease_id``, or the
subject of a successful ``grant.*`` event) and its broker's handle. Issuance
(``task.opened``, ``task.delegate``, ``task.token_renewed``) names a token's task and
key (``jkt``). Fires when:

- ``rate``: a token's decisions in one window of ``window_seconds`` reach ``min_uses``
  and ``factor`` times its baseline (an exponentially weighted mean of its past
  windows, empty ones included), once it is ``learning_windows`` windows old; once per
  window. Evidence: the window's last ``EVIDENCE`` uses (its count is in ``count``).
- ``source``: a use names a source (a ``sources`` member: ``jkt`` and ``proof_jkt``
  are keys, ``presented_x5t`` a certificate, ``client_address`` an address) of a kind
  this credential was used with, but a value it was never used with. Evidence: its
  first use with a value of that kind still remembered, and this one.
- ``tasks``: a credential seen for another task than its first. Evidence: its first
  event and this one.

At most ``max_credentials`` credentials are remembered (the least recently used
forgotten first), each with at most ``max_sources`` source values.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zerolane.detection.detector import Hit
from zerolane.detection.recent import Recent
from zerolane.detection.seen import Detection, Evidence, Seen
from zerolane.settings.detection import PrivilegeReuseSettings

NAME = "privilege_reuse"
#: the weight of the last window in a credential's baseline
ALPHA = 0.25
#: the uses of its window a credential keeps, as a rate detection's evidence (its state
#: is stored at every step of the runner: kept small)
EVIDENCE = 20
#: the events that issue a token, naming its task and key
ISSUED = ("task.opened", "task.delegate", "task.token_renewed")


@dataclass(slots=True)
class Credential:
    """What one credential's uses looked like."""

    first: Hit
    task: str | None
    window: int = 0  # the index of its current window (time // window_seconds)
    count: int = 0  # its uses in the current window
    baseline: float = 0.0
    windows: int = 0  # windows of history before the current one
    fired: bool = False  # the rate fired in the current window
    hits: deque[Hit] = field(default_factory=lambda: deque(maxlen=EVIDENCE))
    sources: dict[str, Hit] = field(default_factory=dict)
    tasks: dict[str, None] = field(default_factory=dict)  # the other tasks it fired for

    def as_json(self) -> list[Any]:
        """As JSON: a hit is a named tuple, encoded as ``[time, seq, event_id, tag]``
        (:meth:`of_json` reads the first three)."""
        return [
            self.first,
            self.task,
            [self.window, self.count, self.baseline, self.windows, self.fired],
            list(self.hits),
            dict(self.sources),
            list(self.tasks),
        ]

    @classmethod
    def of_json(cls, value: list[Any]) -> Credential:
        def hit(h: list[Any]) -> Hit:
            return Hit(float(h[0]), int(h[1]), str(h[2]))

        first, task, (window, count, baseline, windows, fired), hits, sources, tasks = value
        return cls(
            hit(first),
            None if task is None else str(task),
            int(window),
            int(count),
            float(baseline),
            int(windows),
            bool(fired),
            deque((hit(h) for h in hits), maxlen=EVIDENCE),
            {str(k): hit(h) for k, h in sources.items()},
            {str(t): None for t in tasks},
        )


class PrivilegeReuseDetector:
    name = NAME

    def __init__(self, settings: PrivilegeReuseSettings) -> None:
        self._settings = settings
        self._credentials: Recent[Credential] = Recent(settings.max_credentials)
        #: per credential unchanged since the last :meth:`state_text`, its JSON member
        self._texts: dict[str, str] = {}
        self._sources = tuple(settings.sources.items())

    def observe(self, event: Seen) -> list[Detection]:
        details = event.details
        task = event.task_id
        found: list[Detection] = []
        if event.kind == "decision":
            token = _text(details.get("token_id"))
            key = f"token:{token}" if token else f"task:{task}" if task else None
            if key is not None:
                found += self._use(key, event, task, rate=True)
            lease = _text(details.get("lease_id"))
            if lease:
                found += self._use(f"lease:{lease}", event, task)
        elif event.kind in ISSUED and event.outcome == "success":
            token = _text(details.get("token_id"))
            if token:
                found += self._use(f"token:{token}", event, task)
        elif event.kind.startswith("grant.") and event.outcome == "success":
            task = _text(details.get("task_id")) or None  # the subject is the lease
            found += self._use(f"lease:{event.subject}", event, task)
            broker, handle = _text(details.get("broker")), _text(details.get("handle"))
            if broker and handle:
                found += self._use(f"handle:{broker}/{handle}", event, task)
        return found

    def _use(
        self, key: str, event: Seen, task: str | None, *, rate: bool = False
    ) -> list[Detection]:
        hit = Hit.of(event)
        self._texts.pop(key, None)  # it changes
        credential = self._credentials.touch(key)
        if credential is None:
            credential = Credential(first=hit, task=task)
            self._credentials.put(key, credential)
        found = (
            self._tasks(key, credential, task, hit, event),
            self._source(key, credential, hit, event),
            self._rate(key, credential, hit, event) if rate else None,
        )
        return [d for d in found if d is not None]

    def _tasks(
        self, key: str, credential: Credential, task: str | None, hit: Hit, event: Seen
    ) -> Detection | None:
        if credential.task is None:
            credential.task = task
        if task is None or task == credential.task or key.startswith("task:"):
            return None
        if task in credential.tasks or len(credential.tasks) >= self._settings.max_sources:
            return None
        credential.tasks[task] = None
        return self._detection(
            event,
            "tasks",
            f"{_kind(key)} of task {credential.task} seen for task {task}",
            (credential.first, hit),
            credential=key,
            tasks=[credential.task, task],
        )

    def _source(self, key: str, credential: Credential, hit: Hit, event: Seen) -> Detection | None:
        details = event.details
        new = [
            source
            for member, kind in self._sources
            if (value := details.get(member))
            and isinstance(value, str)
            and (source := f"{kind}={value}") not in credential.sources
        ]
        if not new:
            return None
        names = {s.partition("=")[0]: h for s, h in reversed(credential.sources.items())}
        known = [s for s in new if s.partition("=")[0] in names]
        for source in new:
            credential.sources[source] = hit
            if len(credential.sources) > self._settings.max_sources:
                del credential.sources[next(iter(credential.sources))]
        if not known:
            return None
        name = known[0].partition("=")[0]
        before = names[name]  # the first use with a value of it still remembered
        return self._detection(
            event,
            "source",
            f"{_kind(key)} used from a new {name}",
            (before, hit),
            credential=key,
            sources=known,
        )

    def _rate(self, key: str, credential: Credential, hit: Hit, event: Seen) -> Detection | None:
        settings = self._settings
        window = math.floor(event.time / settings.window_seconds)
        if credential.count == 0:
            credential.window = window
        elif window > credential.window:  # close the window, and the empty ones since
            gap = window - credential.window
            credential.baseline = ALPHA * credential.count + (1 - ALPHA) * credential.baseline
            credential.baseline *= (1 - ALPHA) ** min(gap - 1, 1000)
            credential.windows = min(credential.windows + gap, 1_000_000)
            credential.window, credential.count, credential.fired = window, 0, False
            credential.hits.clear()
        credential.count += 1
        credential.hits.append(hit)
        threshold = max(settings.min_uses, settings.factor * credential.baseline)
        if (
            credential.fired
            or credential.windows < settings.learning_windows
            or credential.count < threshold
        ):
            return None
        credential.fired = True
        return self._detection(
            event,
            "rate",
            f"{_kind(key)} used {credential.count} times in {settings.window_seconds} s"
            f" (baseline {credential.baseline:.1f})",
            tuple(credential.hits),
            credential=key,
            count=credential.count,
            baseline=round(credential.baseline, 3),
            factor=settings.factor,
            threshold=settings.min_uses,
            window_seconds=settings.window_seconds,
        )

    def _detection(
        self, event: Seen, pattern: str, summary: str, hits: tuple[Hit, ...], **facts: object
    ) -> Detection:
        return Detection(
            detector=NAME,
            severity=self._settings.severity,
            summary=summary,
            task_id=event.task_id,
            workload=event.workload,
            evidence=tuple(Evidence(h.seq, h.event_id) for h in hits),
            facts={"pattern": pattern, **facts},
        )

    def state(self) -> dict[str, Any]:
        return {"credentials": {k: c.as_json() for k, c in self._credentials.items()}}

    def state_text(self) -> str:
        """:meth:`state` as JSON text, encoding again only the credentials used since
        the last call (the runner writes it about once a second; it holds up to
        ``max_credentials`` credentials, most of them unchanged)."""
        texts: dict[str, str] = {}
        for key, credential in self._credentials.items():
            text = self._texts.get(key)
            if text is None:
                encoded = json.dumps(credential.as_json(), separators=(",", ":"))
                text = f"{json.dumps(key)}:{encoded}"
            texts[key] = text
        self._texts = texts  # the forgotten ones left out
        return '{"credentials":{' + ",".join(texts.values()) + "}}"

    def restore(self, state: Mapping[str, Any]) -> None:
        self._texts = {}
        self._credentials = Recent(self._settings.max_credentials)
        for key, value in state.get("credentials", {}).items():
            self._credentials.put(str(key), Credential.of_json(value))


def _kind(key: str) -> str:
    kind, _, value = key.partition(":")
    return f"{kind} {value}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
