"""The audit chain in PostgreSQL: one chain, however many processes append to it.

An append takes the lock of the chain's head (:data:`.locks.AUDIT_HEAD`, a
transaction-level advisory lock) inside the transaction of the write it records, then
reads the head: the lock is held until that transaction commits or rolls back, and a
statement run after taking it sees every append committed before. So appends from any
number of connections and processes follow one another, each linking to the one
before it, and ``zerolane audit verify`` checks one unbroken chain (``seq`` 1, 2, 3...).
The primary key on ``seq`` refuses a second event at the same place, should anything
ever append without the lock: that write fails rather than forking the chain.
"""

from __future__ import annotations

from zerolane.store.ports import GENESIS_HASH, Sealer
from zerolane.store.postgres import locks
from zerolane.store.postgres.connection import Conn, first_row
from zerolane.store.postgres.rows import insert
from zerolane.store.records import AuditRecord
from zerolane.store.sqlite.tables import AUDIT_EVENTS

_COLUMNS = AUDIT_EVENTS.columns_sql

READ_EVENTS = (
    f"SELECT {_COLUMNS} FROM audit_events WHERE seq > %(a)s "  # noqa: S608
    "ORDER BY seq LIMIT %(n)s"
)
LAST_EVENT = f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT 1"  # noqa: S608
_HEAD = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_INSERT = insert(AUDIT_EVENTS)


def append(conn: Conn, events: list[dict[str, object]], seal: Sealer) -> list[AuditRecord]:
    """Seal ``events`` onto the chain's head and insert them, in the caller's
    transaction (the head stays locked until it ends)."""
    locks.lock(conn, locks.AUDIT_HEAD)
    head = first_row(conn, _HEAD)
    seq, prev_hash = (int(head["seq"]), str(head["hash"])) if head else (0, GENESIS_HASH)
    sealed: list[AuditRecord] = []
    for unsealed in events:
        seq += 1
        sealed_record = seal(unsealed, seq, prev_hash)
        sealed.append(sealed_record)
        prev_hash = sealed_record.hash
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT, [AUDIT_EVENTS.values(r) for r in sealed])
    return sealed
