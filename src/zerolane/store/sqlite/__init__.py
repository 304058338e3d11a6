"""SQLite backend (embedded default): WAL, group-committed writes, full fsync.

Writes go through one writer (:mod:`.group_commit`): each write method hands it a small
function of the connection, the writer runs the queued ones back to back in one
``BEGIN IMMEDIATE`` transaction (each inside its own savepoint) and commits once, so a
batch of concurrent writes shares one ``fsync``. A method returns only after its
batch committed. Reads run on pooled connections without taking the write lock: WAL
gives each read a consistent snapshot alongside the writer.

How this backend speaks to its database, in one place each:

- the driver: the standard library's ``sqlite3``, every connection made by
  :func:`.connection.connect` (autocommit mode, WAL, ``synchronous=FULL``, busy
  timeout, foreign keys); no SQL toolkit or ORM in between;
- the statements: plain SQL with named parameters and explicit column lists, kept
  with the tables they touch (:mod:`.tasks`, :mod:`.audit`, :mod:`.change_writes`,
  :mod:`.leases`, :mod:`.enforcement_points`, :mod:`.proofs`);
- rows and records: one mapping per table, by column name (:mod:`.tables`);
- the schema: versioned migrations (:mod:`.migrations`), applied on open;
- errors: a unique constraint violated is ``Conflict`` with the write's own reason
  (``task.exists``...), any other driver error ``Unavailable`` (``store.read``,
  ``store.write``, ``audit.write``, ``store.open``).

The PostgreSQL backend will speak psycopg 3 the same way, with its own statements
(SQLite's and PostgreSQL's dialects differ in placeholders and locking) over the same
ports and conformance suite.
"""

from zerolane.store.sqlite.stores import SqliteStores

__all__ = ["SqliteStores"]
