"""The audit chain in SQLite: appending sealed events, reading them back.

An append reads the chain's head inside the batch's transaction, so events appended by
earlier ops of the same batch are already there and the chain links through them.
"""

from __future__ import annotations

import sqlite3

from zerolane.store.ports import GENESIS_HASH, Sealer
from zerolane.store.records import AuditRecord
from zerolane.store.sqlite.connection import first_row
from zerolane.store.sqlite.group_commit import WriteOp
from zerolane.store.sqlite.tables import AUDIT_EVENTS

_COLUMNS = AUDIT_EVENTS.columns_sql

READ_EVENTS = (
    f"SELECT {_COLUMNS} FROM audit_events WHERE seq > :a "  # noqa: S608
    "ORDER BY seq LIMIT :n"
)
LAST_EVENT = f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT 1"  # noqa: S608
_HEAD = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_INSERT = AUDIT_EVENTS.insert()


def records(rows: list[sqlite3.Row]) -> list[AuditRecord]:
    """The records of rows of :data:`READ_EVENTS`, built by position (the detectors
    read the log in bulk): its columns are the record's fields in order
    (:attr:`~zerolane.store.sqlite.tables.Table.columns`), none converted."""
    return [AuditRecord(*row) for row in rows]


def append_op(events: list[dict[str, object]], seal: Sealer) -> WriteOp[list[AuditRecord]]:
    """The write that seals ``events`` onto the chain's head and inserts them."""

    def op(conn: sqlite3.Connection) -> list[AuditRecord]:
        head = first_row(conn, _HEAD)
        seq, prev_hash = (head["seq"], head["hash"]) if head else (0, GENESIS_HASH)
        sealed: list[AuditRecord] = []
        for unsealed in events:
            seq += 1
            record = seal(unsealed, seq, prev_hash)
            sealed.append(record)
            prev_hash = record.hash
        conn.executemany(_INSERT, [AUDIT_EVENTS.values(r) for r in sealed])
        return sealed

    return op
