"""Opening a backend from the store URL in the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerolane.errors import InvalidInput
from zerolane.store.memory import MemoryStores
from zerolane.store.open import open_stores
from zerolane.store.sqlite import SqliteStores
from zerolane.store.sqlite.migrations import LATEST


def test_memory_url() -> None:
    stores = open_stores("memory://")
    assert isinstance(stores, MemoryStores)
    assert stores.schema_version() == LATEST


def test_relative_sqlite_path_is_taken_from_base(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    opened = open_stores("sqlite:///data/z.db", base=tmp_path)
    try:
        assert isinstance(opened, SqliteStores)
        assert opened.path == tmp_path / "data" / "z.db"
        assert opened.path.exists()
    finally:
        opened.close()


def test_absolute_sqlite_path_ignores_base(tmp_path: Path) -> None:
    target = tmp_path / "abs.db"
    opened = open_stores(f"sqlite:///{target}", base=tmp_path / "elsewhere")
    try:
        assert isinstance(opened, SqliteStores)
        assert opened.path == target
        assert target.exists()
    finally:
        opened.close()


def test_relative_sqlite_path_without_base_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    opened = open_stores("sqlite:///z.db")
    try:
        assert (tmp_path / "z.db").exists()
    finally:
        opened.close()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "memory:",
        "memory:///",
        "MEMORY://",
        "sqlite://z.db",
        "sqlite:z.db",
        "postgresql:/db.example/zerolane",
        "mysql://db.example/zerolane",
        "redis://localhost",
        "file:///tmp/z.db",
        "z.db",
    ],
)
def test_unsupported_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        open_stores(url)
    assert info.value.reason == "store.url"
