"""PostgreSQL backend (scale-out): every store port on one database, shared by any
number of zerolane processes and replicas.

How this backend speaks to its database, in one place each:

- the driver: psycopg 3, every connection made by :func:`.connection.connect`
  (autocommit, rows as dicts) and reused through :class:`.connection.Pool`; no SQL
  toolkit or ORM in between;
- the statements: plain SQL with named ``%(name)s`` parameters and explicit column
  lists, kept with the tables they touch (:mod:`.tasks`, :mod:`.audit`,
  :mod:`.approvals`, :mod:`.change_writes`, :mod:`.proofs`, :mod:`.stores`);
- the schema and rows: the SQLite backend's tables and migrations (portable DDL,
  :mod:`.migrations`) and its row mapping by column name (:mod:`.rows`);
- concurrency: compare-and-set ``UPDATE``s, ``ON CONFLICT`` inserts and advisory
  locks taken in one order (:mod:`.locks`): the audit chain stays one chain with many
  writers (:mod:`.audit`); a decision is committed on a writer thread, the caller
  handed a pending write (:mod:`.decision_writer`);
- errors: a unique constraint violated is ``Conflict`` with the write's own reason
  (``task.exists``...), any other driver error ``Unavailable`` (``store.read``,
  ``store.write``, ``audit.write``, ``store.open``).
"""

from zerolane.store.postgres.stores import PostgresStores

__all__ = ["PostgresStores"]
