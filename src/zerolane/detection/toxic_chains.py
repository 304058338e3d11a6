"""Toxic tool chains: one task making the steps of a dangerous sequence in order, e.g.
a read of confidential data and then a write to an outside destination.

Reads ``decision`` events of a known task that name an ``action``. A chain
(``[detection.toxic_chains] rules``, and the ``[[rules]]`` of its ``file``) is a list
of steps, each matching ``details.action``, ``method``, ``tool`` (or
``upstream_tool``), a least ``sensitivity``, ``destination_internal`` and the
decision. Fires when one task's events match every step in order, the first within
``window_seconds`` of the last. Evidence: one event per step, the latest start. After
firing the chain starts again from its first step.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerolane.detection.detector import Hit
from zerolane.detection.recent import Recent
from zerolane.detection.seen import Detection, Seen
from zerolane.errors import InvalidInput
from zerolane.settings.detection import ChainFile, ChainRule, ChainStep, ToxicChainsSettings
from zerolane.settings.validate import validate
from zerolane.types import Sensitivity

NAME = "toxic_chains"
#: sensitivity by label; a decision without one (or an unknown one) is public
LEVELS = {s.label: s for s in Sensitivity}
#: the shapes of request whose matching steps are remembered (then forgotten at once)
MEMO = 4096
#: a chain's progress: for each step, the latest partial chain matched through it
Progress = list[tuple[Hit, ...] | None]


def load_rules(settings: ToxicChainsSettings, base: Path | None = None) -> tuple[ChainRule, ...]:
    """The chains of ``settings``: its ``rules``, then those of its ``file`` (relative
    to ``base``, the home). A missing or invalid file, or a name given twice, is
    refused (``config.detection``)."""
    rules = settings.rules
    if settings.file:
        path = Path(settings.file)
        path = base / path if base is not None and not path.is_absolute() else path
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise InvalidInput(
                "config.detection", f"detection.toxic_chains.file {path}: {err}"
            ) from None
        rules = rules + validate(ChainFile, doc, source=str(path)).rules
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput("config.detection", f"toxic chains named twice: {', '.join(twice)}")
    return rules


def _globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@dataclass(frozen=True, slots=True)
class Shape:
    """What the steps match of a decision event, read once per event."""

    outcome: str
    action: str
    method: str
    tools: tuple[str, ...]  # ``tool`` and ``upstream_tool``, those given
    level: Sensitivity
    internal: bool

    @classmethod
    def of(cls, event: Seen) -> Shape:
        details = event.details
        tools = tuple(
            t for t in (_text(details.get("tool")), _text(details.get("upstream_tool"))) if t
        )
        return cls(
            event.outcome,
            _text(details.get("action")),
            _text(details.get("method")),
            tools,
            LEVELS.get(_text(details.get("sensitivity")), Sensitivity.PUBLIC),
            details.get("destination_internal") is True,  # unknown is outside
        )


class Step:
    """One :class:`ChainStep`, compiled."""

    def __init__(self, step: ChainStep) -> None:
        self._actions = _globs(step.actions)
        self._methods = _globs(step.methods)
        self._tools = _globs(step.tools)
        self._least = Sensitivity.parse(step.min_sensitivity)
        self._destination = step.destination
        self._outcomes = {"allow": ("success",), "deny": ("denied",)}.get(
            step.decision, ("success", "denied")
        )

    def matches(self, shape: Shape) -> bool:
        if shape.outcome not in self._outcomes or shape.level < self._least:
            return False
        if not _matches(self._actions, (shape.action,)):
            return False
        if not _matches(self._methods, (shape.method,)):
            return False
        if not _matches(self._tools, shape.tools):
            return False
        if self._destination == "any":
            return True
        return shape.internal == (self._destination == "internal")


class ToxicChainsDetector:
    name = NAME

    def __init__(self, settings: ToxicChainsSettings, rules: Sequence[ChainRule]) -> None:
        self._settings = settings
        self._rules = [(rule.name, [Step(s) for s in rule.steps]) for rule in rules]
        self._tasks: Recent[dict[str, Progress]] = Recent(settings.max_tasks)
        self._latest = float("-inf")
        #: the steps each shape of request matches, per chain (only those it matches),
        #: by the raw members the shape is made of
        self._memo: dict[tuple[object, ...], list[tuple[str, list[Step], list[int]]]] = {}

    def observe(self, event: Seen) -> list[Detection]:
        task = event.task_id
        details = event.details
        if event.kind != "decision" or not task or "action" not in details:
            return []
        # the members a shape is made of, as they are: it is worked out once per new
        # combination of them (equal members give equal shapes)
        key = (
            event.outcome,
            details.get("action"),
            details.get("method"),
            details.get("tool"),
            details.get("upstream_tool"),
            details.get("sensitivity"),
            details.get("destination_internal") is True,
        )
        try:
            matched, remember = self._memo.get(key), True
        except TypeError:  # an unhashable member (a list...): not remembered
            matched, remember = None, False
        if matched is None:  # a new shape of request: match it once
            shape = Shape.of(event)
            matched = [
                (name, steps, [i for i, step in enumerate(steps) if step.matches(shape)])
                for name, steps in self._rules
                if any(step.matches(shape) for step in steps)
            ]
            if remember:
                if len(self._memo) >= MEMO:
                    self._memo.clear()
                self._memo[key] = matched
        if not matched:
            return []
        self._latest = max(self._latest, event.time)
        chains = self._tasks.touch(task)
        if chains is None:
            chains = {}
            self._tasks.put(task, chains)
        hit = Hit.of(event)
        cutoff = event.time - self._settings.window_seconds
        detections = []
        for name, steps, found in matched:
            progress = chains.setdefault(name, [None] * len(steps))
            for i in reversed(found):  # an event is one step of a chain, never two
                before = progress[i - 1] if i else ()
                if before is None or (before and before[0].time < cutoff):
                    continue
                chain = (*before, hit)
                if i < len(steps) - 1:
                    progress[i] = chain
                    continue
                progress[:] = [None] * len(steps)
                detections.append(self._detection(name, chain, event))
        return detections

    def _detection(self, name: str, chain: tuple[Hit, ...], event: Seen) -> Detection:
        return Detection(
            detector=NAME,
            severity=self._settings.severity,
            summary=f"toxic chain {name}: {len(chain)} steps in {event.time - chain[0].time:.0f} s",
            task_id=event.task_id,
            workload=event.workload,
            evidence=tuple(h.evidence for h in chain),
            facts={
                "chain": name,
                "count": len(chain),
                "window_seconds": self._settings.window_seconds,
            },
        )

    def state(self) -> dict[str, Any]:
        cutoff = self._latest - self._settings.window_seconds
        kept: dict[str, Any] = {}
        for task, chains in self._tasks.items():
            live = {
                name: [
                    [[h.time, h.seq, h.event_id] for h in c] if c and c[0].time >= cutoff else None
                    for c in progress
                ]
                for name, progress in chains.items()
                if any(c and c[0].time >= cutoff for c in progress)
            }
            if live:
                kept[task] = live
        return {"tasks": kept}

    def restore(self, state: Mapping[str, Any]) -> None:
        lengths = {name: len(steps) for name, steps in self._rules}
        self._tasks = Recent(self._settings.max_tasks)
        for task, chains in state.get("tasks", {}).items():
            restored: dict[str, Progress] = {}
            for name, progress in chains.items():
                if lengths.get(name) != len(progress):
                    continue  # a chain since changed or removed: its progress is void
                restored[name] = [
                    tuple(Hit(float(t), int(s), str(e)) for t, s, e in c) if c else None
                    for c in progress
                ]
                self._latest = max([self._latest, *(c[0].time for c in restored[name] if c)])
            self._tasks.put(str(task), restored)


def _matches(pattern: re.Pattern[str] | None, texts: Sequence[str]) -> bool:
    """True when no pattern is given, or one of ``texts`` matches it."""
    return pattern is None or any(pattern.match(text) for text in texts if text)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
