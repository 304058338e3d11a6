"""The backends every store conformance test runs against.

A new backend is one more entry in ``BACKENDS``: a factory that opens a fresh, empty
instance in the test's temporary folder (PostgreSQL: in a schema of its own on the
machine's server, dropped when the store is closed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.store.pg_schema import fresh_store
from tests.store.reordered import reordered_store
from zerolane.store.memory import MemoryStores
from zerolane.store.ports import Stores
from zerolane.store.sqlite import SqliteStores

BACKENDS: dict[str, Callable[[Path], Stores]] = {
    "memory": lambda _tmp: MemoryStores(),
    "sqlite": lambda tmp: SqliteStores(tmp / "z.db"),
    # columns in another order and one more: rows map to records by name
    "sqlite-reordered": lambda tmp: reordered_store(tmp / "z.db"),
    # the shared PostgreSQL server, a fresh schema per test (dropped when closed)
    "postgresql": fresh_store,
}


@pytest.fixture(params=sorted(BACKENDS))
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    opened = BACKENDS[request.param](tmp_path)
    try:
        yield opened
    finally:
        opened.close()
