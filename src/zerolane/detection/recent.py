"""Bounded memories for detectors: a map of at most N keys that forgets the least
recently used first, and the playbook of each recent task."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from zerolane.detection.seen import Seen

V = TypeVar("V")


class Recent(Generic[V]):
    """At most ``limit`` keys; storing a key beyond that forgets the least recently
    stored or touched one. Insertion order is recency order (oldest first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: dict[str, V] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> V | None:
        return self._items.get(key)

    def touch(self, key: str) -> V | None:
        """The value of ``key``, made the most recent."""
        value = self._items.pop(key, None)
        if value is not None:
            self._items[key] = value
        return value

    def put(self, key: str, value: V) -> None:
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.limit:
            del self._items[next(iter(self._items))]

    def items(self) -> Iterator[tuple[str, V]]:
        """Oldest first."""
        return iter(self._items.items())


class TaskPlaybooks:
    """The playbook of the last ``limit`` tasks opened or delegated: ``task.opened``
    names it, a ``task.delegate`` child has its parent's."""

    def __init__(self, limit: int) -> None:
        self._tasks: Recent[str] = Recent(limit)

    def observe(self, event: Seen) -> None:
        if event.outcome != "success" or not event.task_id:
            return
        if event.kind == "task.opened":
            playbook = event.details.get("playbook")
            if isinstance(playbook, str) and playbook:
                self._tasks.put(event.task_id, playbook)
        elif event.kind == "task.delegate":
            parent = event.details.get("parent_id")
            playbook = self._tasks.get(parent) if isinstance(parent, str) else None
            if playbook is not None:
                self._tasks.put(event.task_id, playbook)

    def of(self, task_id: str | None) -> str | None:
        return self._tasks.get(task_id) if task_id else None

    def state(self) -> dict[str, str]:
        return dict(self._tasks.items())

    def restore(self, state: Mapping[str, Any]) -> None:
        self._tasks = Recent(self._tasks.limit)
        for task, playbook in state.items():
            self._tasks.put(str(task), str(playbook))
