"""Open a backend from a store URL: ``memory://``, ``sqlite:///path/to.db`` or
``postgresql://user@host:5432/dbname`` (libpq's URI, ``postgres://`` too)."""

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
    if url.startswith(("postgresql://", "postgres://")):
        from zerolane.store.postgres import PostgresStores

        return PostgresStores(url)
    # never echo a URL that may carry a password: its scheme is enough to say what is wrong
    scheme = url.split("://", 1)[0] + "://" if "://" in url else "(none)"
    raise InvalidInput(
        "store.url",
        f"unsupported store URL scheme {scheme} (memory://, sqlite:///PATH, postgresql://...)",
    )
