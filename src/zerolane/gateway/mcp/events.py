"""The SSE streams the gateway answers agents with, kept so an agent can resume them.

When a request's answer is streamed (something came before it, or the agent prefers
SSE), the stream opens with a priming event (an id and empty data, as the 2025-11-25
transport has servers do; not for older agents) and every event carries an id
``<stream>:<n>``. The stream's events are kept in an :class:`EventLog` for the session
while it runs and :data:`KEEP_SECONDS` after it ended, at most :data:`MAX_EVENTS` of
them and :data:`MAX_BYTES`; the request goes on when the agent's connection drops (a
disconnect is not a cancellation), and the agent resumes the stream with a GET carrying
``Last-Event-ID``: the events after that id are sent again, then the rest as they
come. An id the session does not know (another session's, one
dropped from the log, a made-up one) resumes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import anyio

#: events, and bytes of them, kept per stream (the oldest are dropped beyond; resuming
#: before them fails)
MAX_EVENTS = 1024
MAX_BYTES = 8 * 1024 * 1024
#: streams kept per session (the oldest ended ones are dropped first)
MAX_STREAMS = 64
#: how long a stream that ended stays resumable
KEEP_SECONDS = 60.0
#: the reconnection time the priming event asks of an agent whose stream dropped
RETRY_MS = 1000


def message_event(event_id: str, data: str) -> bytes:
    """An event carrying one message (``data``: its JSON, one line)."""
    return f"id: {event_id}\nevent: message\ndata: {data}\n\n".encode()


def priming_event(event_id: str) -> bytes:
    """An event with an id and empty data (a point to resume from, not a message) and
    the reconnection time to wait before resuming."""
    return f"id: {event_id}\nretry: {RETRY_MS}\ndata: \n\n".encode()


class EventLog:
    """The events of one SSE stream to the agent, numbered from 1 (0: the priming)."""

    def __init__(self) -> None:
        self.id = secrets.token_urlsafe(12)
        self._events: list[tuple[int, str]] = []  # (number, the message's JSON)
        self._bytes = 0
        self._next = 1
        self.ended_at: float | None = None
        self._changed = anyio.Event()

    def event_id(self, number: int) -> str:
        return f"{self.id}:{number}"

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def append(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"))
        self._events.append((self._next, data))
        self._bytes += len(data)
        self._next += 1
        while len(self._events) > 1 and (len(self._events) > MAX_EVENTS or self._bytes > MAX_BYTES):
            self._bytes -= len(self._events.pop(0)[1])
        self._wake()

    def end(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def after(self, number: int) -> list[tuple[int, str]] | None:
        """The events after ``number``; None when some of them were dropped."""
        if self._events and number + 1 < self._events[0][0]:
            return None
        return [(n, data) for n, data in self._events if n > number]

    def waiter(self) -> anyio.Event:
        """An event set by the next append or the end (take it before checking)."""
        return self._changed


class StreamLogs:
    """One session's resumable streams by id."""

    def __init__(self) -> None:
        self._logs: dict[str, EventLog] = {}

    def open(self) -> EventLog:
        self._prune()
        log = EventLog()
        self._logs[log.id] = log
        return log

    def _prune(self) -> None:
        now = time.monotonic()
        for key, log in list(self._logs.items()):
            if log.ended_at is not None and now - log.ended_at > KEEP_SECONDS:
                del self._logs[key]
        ended = sorted(
            (log.ended_at, key) for key, log in self._logs.items() if log.ended_at is not None
        )
        while len(self._logs) >= MAX_STREAMS and ended:
            del self._logs[ended.pop(0)[1]]

    def find(self, last_event_id: str) -> tuple[EventLog, int] | None:
        """The stream and the event number ``last_event_id`` names; None if unknown."""
        stream, _, number = last_event_id.rpartition(":")
        log = self._logs.get(stream)
        if log is None or not number.isdigit() or len(number) > 12:
            return None
        return log, int(number)

    def end_all(self) -> None:
        for log in self._logs.values():
            log.end()
