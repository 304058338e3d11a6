"""Copy the audit log out, in order, by sequence number (``zerolane audit export``).

:func:`export` reads the log through the store port (``read_events(after_seq, limit)``)
from a starting sequence number, converts each event (to OCSF, or as stored) and hands
it on as one JSON line; with ``follow`` it polls for new events until told to stop.
The position is the sequence number of the last event written, so nothing is skipped
or written twice across polls, and a later run given ``--after`` that number goes on
exactly where this one stopped.

The chain numbers events 1, 2, 3 ... without holes. An export never steps over one: a
read that finds the next number missing waits for it (a writer of a store that numbers
before it commits may still be committing it) and fails with ``audit.sequence_gap``
after ``gap_grace`` seconds, rather than skip an event.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from zerolane.errors import Unavailable
from zerolane.store.ports import AuditStore
from zerolane.store.records import AuditRecord

#: events read from the store at a time
PAGE = 1000
#: how long a missing sequence number is waited for before the export fails (seconds)
GAP_GRACE = 5.0

Convert = Callable[[AuditRecord], Mapping[str, Any]]


def line_of(record: AuditRecord, convert: Convert) -> str:
    """One event as a JSON line (keys sorted: the same event is always the same line)."""
    try:
        event = convert(record)
    except ValueError as err:  # a body that is not JSON, a time that is not RFC 3339
        raise Unavailable(
            "audit.unreadable", f"audit event {record.seq} could not be read: {err}"
        ) from err
    return json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n"


def export(
    store: AuditStore,
    write: Callable[[str], object],
    convert: Convert,
    *,
    after: int = 0,
    follow: bool = False,
    poll: float = 0.5,
    stop: threading.Event | None = None,
    page: int = PAGE,
    gap_grace: float = GAP_GRACE,
) -> int:
    """Write every event after sequence number ``after`` through ``write``, one JSON line
    each, in order; with ``follow``, keep polling every ``poll`` seconds until ``stop``
    is set. Returns the sequence number of the last event written (``after`` if none)."""
    stop = stop or threading.Event()
    gap_since: float | None = None
    while not stop.is_set():
        batch = store.read_events(after, page)
        written = 0
        for record in batch:
            if record.seq != after + 1:
                break  # a hole: never stepped over (see the module doc)
            write(line_of(record, convert))
            after, written = record.seq, written + 1
        if written < len(batch):
            gap_since = gap_since if gap_since is not None else time.monotonic()
            if time.monotonic() - gap_since >= gap_grace:
                raise Unavailable(
                    "audit.sequence_gap",
                    f"audit event {after + 1} is missing (the next one stored is "
                    f"{batch[written].seq}); exported up to {after}",
                )
        else:
            gap_since = None
        if written == page:
            continue  # more may be waiting: read on at once
        if gap_since is None and not follow:
            break
        stop.wait(poll)
    return after
