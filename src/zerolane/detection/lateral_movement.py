"""Lateral movement: a task reaching a destination, or delegating into a trust domain,
that neither its playbook nor its workload has reached before.

Reads allowed ``decision`` events (``details.destination``), successful
``task.delegate`` events (the trust domain of ``details.delegate``) and ``task.opened``
events (the playbook of each task, and the opener's trust domain). Each playbook and
each workload has a profile: when it was first seen, how many such events it had, and
the destinations and trust domains it reached (the ``max_items`` most recent). An event
fires when what it reaches is in neither the workload's profile nor its task's
playbook's (the workload's alone when the task's playbook is not known), once both
have learned: ``min_history`` events over ``learning_seconds``. Evidence: that event.
At most ``max_profiles`` profiles are kept (the least recently used forgotten first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zerolane.detection.recent import Recent, TaskPlaybooks
from zerolane.detection.seen import Detection, Evidence, Seen
from zerolane.settings.detection import LateralMovementSettings

NAME = "lateral_movement"


@dataclass(slots=True)
class Profile:
    """What one playbook or workload reached: ``items`` oldest first."""

    first: float
    count: int = 0
    items: dict[str, None] = field(default_factory=dict)


def trust_domain(spiffe_id: object) -> str | None:
    if not isinstance(spiffe_id, str) or not spiffe_id.startswith("spiffe://"):
        return None
    domain = spiffe_id.removeprefix("spiffe://").partition("/")[0].lower()
    return domain or None


class LateralMovementDetector:
    name = NAME

    def __init__(self, settings: LateralMovementSettings) -> None:
        self._settings = settings
        self._playbooks = TaskPlaybooks(settings.max_tasks)
        self._profiles: Recent[Profile] = Recent(settings.max_profiles)

    def observe(self, event: Seen) -> list[Detection]:
        kind = event.kind
        if kind == "decision":
            pass  # the playbooks learn from the other two kinds only
        elif kind in ("task.delegate", "task.opened"):
            self._playbooks.observe(event)
        else:
            return []
        workload = event.workload
        if workload is None:
            return []
        reached = self._reached(event)
        if reached is None:
            return []
        playbook = self._playbooks.of(event.task_id)
        now = event.time
        profiles = [self._profile(f"workload:{workload}", now)]
        if playbook:
            profiles.append(self._profile(f"playbook:{playbook}", now))
        new = True
        for profile in profiles:
            new = new and reached not in profile.items
        learned = new and all(self._learned(p, now) for p in profiles)
        known = len(profiles[0].items)
        for profile in profiles:
            self._remember(profile, reached)
        if not learned:  # what it reached was known, or the profiles still learn
            return []
        what, _, value = reached.partition(":")
        return [
            Detection(
                detector=NAME,
                severity=self._settings.severity,
                summary=f"{what.replace('_', ' ')} {value} is new to "
                + (f"playbook {playbook} and " if playbook else "")
                + f"workload {workload}",
                task_id=event.task_id,
                workload=workload,
                evidence=(Evidence(event.seq, event.event_id),),
                facts={
                    "reached": {"kind": what, "value": value},
                    "playbook": playbook,
                    "known": known,  # what the workload had reached (at most max_items)
                    "min_history": self._settings.min_history,
                    "learning_seconds": self._settings.learning_seconds,
                },
            )
        ]

    @staticmethod
    def _reached(event: Seen) -> str | None:
        """What ``event`` reaches (``destination:<host>``, ``trust_domain:<td>``)."""
        if event.outcome != "success":
            return None
        if event.kind == "decision":
            destination = _text(event.details.get("destination")).lower()
            return f"destination:{destination}" if destination else None
        domain = trust_domain(
            event.details.get("delegate") if event.kind == "task.delegate" else event.workload
        )
        return f"trust_domain:{domain}" if domain else None

    def _profile(self, key: str, now: float) -> Profile:
        profile = self._profiles.touch(key)
        if profile is None:
            profile = Profile(first=now)
            self._profiles.put(key, profile)
        return profile

    def _learned(self, profile: Profile, now: float) -> bool:
        return (
            profile.count >= self._settings.min_history
            and now - profile.first >= self._settings.learning_seconds
        )

    def _remember(self, profile: Profile, reached: str) -> None:
        profile.count += 1
        profile.items.pop(reached, None)
        profile.items[reached] = None
        if len(profile.items) > self._settings.max_items:
            del profile.items[next(iter(profile.items))]

    def state(self) -> dict[str, Any]:
        return {
            "tasks": self._playbooks.state(),
            "profiles": {k: [p.first, p.count, list(p.items)] for k, p in self._profiles.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self._playbooks.restore(state.get("tasks", {}))
        self._profiles = Recent(self._settings.max_profiles)
        for key, (first, count, items) in state.get("profiles", {}).items():
            profile = Profile(float(first), int(count), {str(i): None for i in items})
            self._profiles.put(str(key), profile)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
