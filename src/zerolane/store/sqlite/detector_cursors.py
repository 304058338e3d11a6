"""SQLite detector cursors (migration 7) and the responder's risk scores (migration 10,
written with its cursor), composed into
:class:`zerolane.store.sqlite.SqliteStores` (a mixin over its ``_read``). Cursors move
only through ``write_recorded`` (:class:`~zerolane.store.changes.AdvanceCursors`), in
the transaction that appends the detections they found."""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from zerolane.store.changes import AdvanceCursors, RiskScore
from zerolane.store.records import DetectorCursor
from zerolane.store.sqlite.tables import DETECTOR_CURSORS, RISK_SCORES

_COLUMNS = DETECTOR_CURSORS.columns_sql
_GET = f"SELECT {_COLUMNS} FROM detector_cursors WHERE detector = :d"  # noqa: S608
_LIST = f"SELECT {_COLUMNS} FROM detector_cursors ORDER BY detector"  # noqa: S608
_SEQ = "SELECT seq FROM detector_cursors WHERE detector = :d"
_PUT = DETECTOR_CURSORS.insert(
    " ON CONFLICT (detector) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
    "updated_at = excluded.updated_at"
)
_PUT_SCORE = RISK_SCORES.insert(
    " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, at = excluded.at, "
    "forget_at = excluded.forget_at, version = excluded.version"
)
_FORGET = "DELETE FROM risk_scores WHERE forget_at < :before"
_SCORES_SINCE = (
    f"SELECT {RISK_SCORES.columns_sql} FROM risk_scores "  # noqa: S608
    "WHERE version > :v ORDER BY version"
)


def advance(conn: sqlite3.Connection, change: AdvanceCursors) -> bool:
    """Check every cursor is where its advance expects it, then write them all; False
    (nothing written) when one is not."""
    for step in change.advances:
        row = conn.execute(_SEQ, {"d": step.detector}).fetchone()
        if (int(row["seq"]) if row is not None else 0) != step.expected_seq:
            return False
    conn.executemany(_PUT, [DETECTOR_CURSORS.values(step.cursor()) for step in change.advances])
    if change.scores:
        conn.executemany(_PUT_SCORE, [RISK_SCORES.values(score) for score in change.scores])
    if change.forget_before is not None:
        conn.execute(_FORGET, {"before": change.forget_before})
    return True


class _Backend(Protocol):
    def _read(self, sql: str, **params: Any) -> list[sqlite3.Row]: ...


class SqliteDetectorCursors:
    def get_cursor(self: _Backend, detector: str) -> DetectorCursor | None:
        rows = self._read(_GET, d=detector)
        return DETECTOR_CURSORS.from_row(rows[0]) if rows else None

    def list_cursors(self: _Backend) -> list[DetectorCursor]:
        return [DETECTOR_CURSORS.from_row(row) for row in self._read(_LIST)]

    def risk_scores_since(self: _Backend, version: int) -> list[RiskScore]:
        return [RISK_SCORES.from_row(row) for row in self._read(_SCORES_SINCE, v=version)]
