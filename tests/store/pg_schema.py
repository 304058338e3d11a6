"""A PostgreSQL store in a schema of its own on the machine's shared server.

The shared server (127.0.0.1:5432, database ``test``, trust auth; ``.ci/run`` starts
it) is used by other suites too: each store here lives in a fresh schema
``zl_test_<random>`` (its connections' ``search_path``) that :meth:`SchemaStores.close`
drops, so tests are isolated and leave the database as they found it. Its absence is
a failure, never a skip.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from zerolane.store.postgres import PostgresStores

SHARED_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the shared server, or a failed test."""
    try:
        return psycopg.connect(SHARED_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is needed by the store tests (.ci/run starts it): {err}")


def new_schema() -> str:
    """A new empty schema's name (drop it with :func:`drop_schema`)."""
    name = f"zl_test_{secrets.token_hex(6)}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return name


def drop_schema(name: str) -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def conninfo(schema: str) -> str:
    """The conninfo of a store working in ``schema``."""
    return f"{SHARED_URL}?options=-csearch_path%3D{schema}"


class SchemaStores(PostgresStores):
    """A store in its own schema; closing it drops the schema."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        try:
            super().__init__(conninfo(schema))
        except BaseException:
            drop_schema(schema)
            raise

    def close(self) -> None:
        super().close()
        drop_schema(self.schema)


def fresh_store(_tmp: Path | None = None) -> SchemaStores:
    """A store in a new schema (the conformance suite's ``postgresql`` backend)."""
    return SchemaStores(new_schema())
