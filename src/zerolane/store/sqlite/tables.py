"""One mapping per table, by column name: a stored row <-> its record.

A :class:`Table` names its table and the record a row of it becomes; its columns are the
record's fields, by name (a record's field and its column always share a name), and a
column whose stored form differs from the field (JSON text for a tuple, an enum's value)
has a converter each way. Every statement lists its columns: an ``INSERT`` names the
columns it fills (:meth:`Table.insert`), a ``SELECT`` or ``RETURNING`` the columns it
reads (:attr:`Table.columns_sql`), and a row becomes a record by looking each column up
by name (:meth:`Table.from_row`). A migration that adds a column, or a table whose
columns are in another order, shifts nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from zerolane.store.changes import RiskScore
from zerolane.store.records import (
    AdminCredential,
    ApprovalRecord,
    ApprovalStatus,
    AuditRecord,
    DetectorCursor,
    EnforcementPoint,
    FederatedBundle,
    JoinToken,
    LeaseRecord,
    LeaseState,
    PlaybookRecord,
    TaskHold,
    TaskRecord,
    Workload,
)
from zerolane.types import TaskState, WorkloadStatus

R = TypeVar("R")
Convert = Callable[[Any], Any]


def _json_list(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


def _tuple_of_json(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _value(member: Any) -> Any:
    return member.value


@dataclass(frozen=True)
class Table(Generic[R]):
    """The mapping of one table to one record type (see the module doc)."""

    name: str
    record_type: type[R]
    #: field value -> stored value, for the columns not stored as they are
    to_column: Mapping[str, Convert] = field(default_factory=dict)
    #: stored value -> field value, for the same columns
    from_column: Mapping[str, Convert] = field(default_factory=dict)
    columns: tuple[str, ...] = field(init=False)
    #: ``a, b, c``: the column list of a ``SELECT`` or ``RETURNING`` clause
    columns_sql: str = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(f.name for f in fields(self.record_type))  # type: ignore[arg-type]
        unknown = (set(self.to_column) | set(self.from_column)) - set(names)
        if unknown:  # pragma: no cover - a mapping that names no field is a bug here
            raise ValueError(f"{self.name}: no field named {sorted(unknown)}")
        object.__setattr__(self, "columns", names)
        object.__setattr__(self, "columns_sql", ", ".join(names))

    def insert(self, tail: str = "") -> str:
        """``INSERT INTO name (columns) VALUES (:columns)`` and ``tail`` (an ``ON
        CONFLICT`` clause); its parameters are :meth:`values`."""
        placeholders = ", ".join(f":{c}" for c in self.columns)
        # names from this module's constants and the records' fields, never from input
        sql = f"INSERT INTO {self.name} ({self.columns_sql}) VALUES ({placeholders})"  # noqa: S608
        return sql + tail

    def values(self, record: R) -> dict[str, Any]:
        """The parameters of :meth:`insert` for ``record``: one per column, by name."""
        values = {c: getattr(record, c) for c in self.columns}
        for column, convert in self.to_column.items():
            values[column] = convert(values[column])
        return values

    def from_row(self, row: sqlite3.Row) -> R:
        """The record of ``row`` (a ``SELECT`` or ``RETURNING`` of :attr:`columns_sql`),
        each field read from its column by name."""
        values = {c: row[c] for c in self.columns}
        for column, convert in self.from_column.items():
            values[column] = convert(values[column])
        return self.record_type(**values)

    def from_row_or_none(self, row: sqlite3.Row | None) -> R | None:
        return self.from_row(row) if row is not None else None


WORKLOADS = Table(
    "workloads",
    Workload,
    to_column={"selectors": _json_list, "status": _value},
    from_column={"selectors": _tuple_of_json, "status": WorkloadStatus},
)
JOIN_TOKENS = Table("join_tokens", JoinToken)
FEDERATED_BUNDLES = Table("federated_bundles", FederatedBundle)
ADMIN_CREDENTIALS = Table("admin_credentials", AdminCredential)
AUDIT_EVENTS = Table("audit_events", AuditRecord)
PLAYBOOKS = Table("playbooks", PlaybookRecord)
TASKS = Table(
    "tasks",
    TaskRecord,
    to_column={"audience": _json_list, "state": _value},
    from_column={"audience": _tuple_of_json, "state": TaskState},
)
LEASES = Table(
    "leases", LeaseRecord, to_column={"state": _value}, from_column={"state": LeaseState}
)
ENFORCEMENT_POINTS = Table(
    "enforcement_points",
    EnforcementPoint,
    to_column={"urls": _json_list},
    from_column={"urls": _tuple_of_json},
)
DETECTOR_CURSORS = Table("detector_cursors", DetectorCursor)
RISK_SCORES = Table("risk_scores", RiskScore)
APPROVALS = Table(
    "approvals",
    ApprovalRecord,
    to_column={"policies": _json_list, "status": _value},
    from_column={"policies": _tuple_of_json, "status": ApprovalStatus},
)
TASK_HOLDS = Table("task_holds", TaskHold)
