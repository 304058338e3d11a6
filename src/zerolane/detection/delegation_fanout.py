"""Delegation fan-out: one task handing out many children, or a chain of delegations
grown deep, in a short time.

Reads the successful ``task.delegate`` events (subject: the child; ``details.parent_id``:
its parent). Fires when one parent gets ``children`` children within
``window_seconds`` (evidence: their delegations), and when a delegation completes a
chain of ``depth`` delegations all made within ``window_seconds`` (evidence: the
chain's delegations, from the top). The task a detection names is the parent, or the
top of the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zerolane.detection.detector import Hit, Windows
from zerolane.detection.seen import Detection, Seen
from zerolane.settings.detection import DelegationFanoutSettings

NAME = "delegation_fanout"


class DelegationFanoutDetector:
    name = NAME

    def __init__(self, settings: DelegationFanoutSettings) -> None:
        self._settings = settings
        self._children = Windows(settings.window_seconds)
        #: child task id -> its delegation, tagged with its parent's id (in the window)
        self._links: dict[str, Hit] = {}
        self._latest = float("-inf")

    def observe(self, event: Seen) -> list[Detection]:
        parent = event.details.get("parent_id")
        child = event.task_id
        if event.kind != "task.delegate" or event.outcome != "success" or not child:
            return []
        if not isinstance(parent, str) or not parent:
            return []
        hit = Hit.of(event, parent)
        self._latest = max(self._latest, event.time)
        self._links[child] = hit
        found = [d for d in (self._fan_out(parent, hit, event), self._chain(child, event)) if d]
        return found

    def _fan_out(self, parent: str, hit: Hit, event: Seen) -> Detection | None:
        hits = self._children.add(parent, hit)
        if len(hits) < self._settings.children:
            return None
        self._children.clear(parent)
        return Detection(
            detector=NAME,
            severity=self._settings.severity,
            summary=f"{len(hits)} children delegated from one task",
            task_id=parent,
            workload=event.workload,
            evidence=tuple(h.evidence for h in hits),
            facts={
                "pattern": "children",
                "count": len(hits),
                "threshold": self._settings.children,
                "window_seconds": self._settings.window_seconds,
            },
        )

    def _chain(self, child: str, event: Seen) -> Detection | None:
        """The chain of recent delegations ending in ``child``, when it is exactly
        ``depth`` long (a longer one fired when it was that long)."""
        cutoff = event.time - self._settings.window_seconds
        chain: list[Hit] = []
        tasks = [child]
        link = self._links.get(child)
        while link is not None and link.time >= cutoff and len(chain) <= self._settings.depth:
            chain.append(link)
            tasks.append(link.tag)
            link = self._links.get(link.tag)
        if len(chain) != self._settings.depth:
            return None
        tasks.reverse()
        return Detection(
            detector=NAME,
            severity=self._settings.severity,
            summary=f"a chain of {len(chain)} delegations",
            task_id=tasks[0],
            workload=event.workload,
            evidence=tuple(h.evidence for h in reversed(chain)),
            facts={
                "pattern": "depth",
                "chain": tasks,
                "count": len(chain),
                "threshold": self._settings.depth,
                "window_seconds": self._settings.window_seconds,
            },
        )

    def state(self) -> dict[str, Any]:
        cutoff = self._latest - self._settings.window_seconds
        links = {
            child: [h.time, h.seq, h.event_id, h.tag]
            for child, h in self._links.items()
            if h.time >= cutoff
        }
        return {"children": self._children.state(), "links": links}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._children.restore(state.get("children", {}))
        links = {
            str(child): Hit(float(t), int(seq), str(event_id), str(tag))
            for child, (t, seq, event_id, tag) in state.get("links", {}).items()
        }
        self._links = links
        self._latest = max([float("-inf"), *(h.time for h in links.values())])
