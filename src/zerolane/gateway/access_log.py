"""One access line per request, at every listener, written once the answer is sent.

:class:`AccessLog` is a raw ASGI middleware: it puts an :class:`AccessNote` in the
request's ``scope["state"]`` (under :data:`STATE_KEY`), lets the app answer, and then
logs one line on the ``zerolane.access`` logger with the time (the record's, RFC 3339
UTC), the listener, the method, the path, the status, the task id, the decision
(``allow``, ``deny`` or ``none``), the reason id and the latency in milliseconds. The
enforcement points fill the note where they decide (:func:`record_decision`), refuse
before any decision (:func:`record_refusal`) or fail (:func:`record_error`).

Never in the line: the query string (it may carry secrets), a fragment, the
userinfo of an absolute-form target, a header, a token, a proof. The path is the raw
path (undecoded, no query), its control characters escaped
and its length bounded, so a request cannot forge a line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from zerolane.logs import ACCESS_FIELDS
from zerolane.tasks.decisions import Decision

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGGER_NAME = "zerolane.access"
STATE_KEY = "zerolane.access"
MAX_PATH = 512
_access = logging.getLogger(LOGGER_NAME)
_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x22, 0x5C)}


class AccessNote:
    """What the app says about one request: its decision, task and reason id."""

    __slots__ = ("decision", "reason", "task_id")

    def __init__(self) -> None:
        self.decision = "none"
        self.task_id: str | None = None
        self.reason: str | None = None


def note_of(scope: Scope) -> AccessNote | None:
    """The request's note (``None`` when no :class:`AccessLog` is in front)."""
    state = scope.get("state")
    note = state.get(STATE_KEY) if isinstance(state, dict) else None
    return note if isinstance(note, AccessNote) else None


def record_decision(scope: Scope, decision: Decision) -> None:
    """A decision was made: allow, deny or shadow, its task and its first reason (a
    shadow allow's: the first it would have been denied for)."""
    note = note_of(scope)
    if note is not None:
        note.decision = decision.outcome
        note.task_id = decision.task_id or note.task_id
        if decision.shadow is not None:
            note.reason = decision.shadow.reasons[0]
        elif not decision.allowed:
            note.reason = decision.reasons[0] if decision.reasons else "decision.deny"


def record_refusal(scope: Scope, reason: str, task_id: str | None = None) -> None:
    """The request was refused without a decision allowing it (bad input, no credentials,
    an unmapped route, a failed check): a deny with its reason id."""
    note = note_of(scope)
    if note is not None:
        note.decision = "deny"
        note.reason = reason
        if task_id:
            note.task_id = task_id


def record_task(scope: Scope, task_id: str) -> None:
    """The request was made by ``task_id`` (verified), with no decision of its own."""
    note = note_of(scope)
    if note is not None:
        note.task_id = task_id


def record_error(scope: Scope, reason: str) -> None:
    """The request failed with ``reason`` (its decision, if any, stays as recorded)."""
    note = note_of(scope)
    if note is not None:
        note.reason = reason


def safe_path(scope: Scope) -> str:
    """The request's raw path without its query, fragment or userinfo, printable and
    bounded."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        path = raw.split(b"?", 1)[0].split(b"#", 1)[0].decode("latin-1")
    else:
        path = str(scope.get("path", ""))
    if not path.startswith("/"):  # an absolute-form target, as a raw-target server hands it
        scheme, sep, rest = path.partition("://")
        authority, slash, tail = rest.partition("/")
        if sep and "@" in authority:  # its userinfo may be a password
            path = f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{tail}"
    if len(path) > MAX_PATH:
        path = path[:MAX_PATH] + "..."
    if not path.isprintable() or '"' in path or "\\" in path:
        path = path.translate(_UNSAFE)
        path = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in path)
    return path


class AccessLog:
    """ASGI middleware writing one access line per HTTP request of ``listener``."""

    def __init__(self, app: ASGIApp, listener: str) -> None:
        self.app = app
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        note = AccessNote()
        state = scope.get("state")
        if not isinstance(state, dict):
            state = scope["state"] = {}
        state[STATE_KEY] = note
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if status == 0:
                status, note.reason = 500, note.reason or "server.error"
            raise
        finally:
            self._write(scope, status, note, (time.perf_counter() - started) * 1000)

    def _write(self, scope: Scope, status: int, note: AccessNote, millis: float) -> None:
        method = str(scope.get("method", "-"))[:16]
        path = safe_path(scope)
        fields = {
            "listener": self.listener,
            "method": method,
            "path": path,
            "status": status or None,  # None: the client left before any answer
            "task": note.task_id,
            "decision": note.decision,
            "reason": note.reason,
            "latency_ms": round(millis, 3),
        }
        # made here, not by ``info()``: no caller lookup (stack walk) on every request
        record = _access.makeRecord(
            LOGGER_NAME,
            logging.INFO,
            __file__,
            0,
            '%s "%s %s" %s %s task=%s reason=%s %.1fms',
            (
                self.listener,
                method,
                path,
                status or "-",
                note.decision,
                note.task_id or "-",
                note.reason or "-",
                millis,
            ),
            None,
            extra={ACCESS_FIELDS: fields},
        )
        _access.handle(record)
