"""Open a backend from a store URL: ``memory://`` or ``sqlite:///path/to.db``."""

from __future__ import annotations

from pathlib import Path

from zerolane.errors import InvalidInput
from zerolane.store.ports import Stores


def open_stores(url: str, *, base: Path | None = None) -> Stores:
    """Open the backend ``url`` names; a relative SQLite path is taken from ``base``."""
    if url == "memory://":
        from zerolane.store.memory import MemoryStores

        return MemoryStores()
    if url.startswith("sqlite:///"):
        from zerolane.store.sqlite import SqliteStores

        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute() and base is not None:
            path = base / path
        return SqliteStores(path)
    raise InvalidInput("store.url", f"unsupported store URL {url!r} (memory://, sqlite:///PATH)")
