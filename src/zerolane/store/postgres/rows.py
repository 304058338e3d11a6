"""Rows and records: the tables and their mapping are the SQLite backend's
(:mod:`zerolane.store.sqlite.tables`: one record type per table, every column named
after its field); here only the placeholders differ (``%(name)s``) and a row is a dict."""

from __future__ import annotations

from typing import Any, TypeVar

from psycopg.rows import DictRow

from zerolane.store.sqlite.tables import Table

R = TypeVar("R")


def insert(table: Table[R], tail: str = "") -> str:
    """``INSERT INTO name (columns) VALUES (%(columns)s)`` and ``tail``; its parameters
    are ``table.values(record)``."""
    placeholders = ", ".join(f"%({c})s" for c in table.columns)
    # names from the table mapping and the records' fields, never from input
    return f"INSERT INTO {table.name} ({table.columns_sql}) VALUES ({placeholders}){tail}"  # noqa: S608


def record(table: Table[R], row: DictRow) -> R:
    """The record of ``row`` (a ``SELECT`` or ``RETURNING`` of ``table.columns_sql``)."""
    values: dict[str, Any] = {c: row[c] for c in table.columns}
    for column, convert in table.from_column.items():
        values[column] = convert(values[column])
    return table.record_type(**values)


def record_or_none(table: Table[R], row: DictRow | None) -> R | None:
    return record(table, row) if row is not None else None
