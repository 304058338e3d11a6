"""Group commit: writes to SQLite's one write connection commit in batches.

SQLite has one writer at a time, and with ``synchronous=FULL`` every commit waits for an
``fsync``. Callers therefore hand their write to :class:`GroupCommitWriter` as a small
function of the connection (an *op*) and wait for it. Whoever waits and finds no batch
being committed becomes the *leader*: it takes whatever is queued (at most
``max_batch`` ops; it never waits for more, so a lone write pays no added latency),
opens one ``BEGIN IMMEDIATE`` transaction, runs each op inside its own ``SAVEPOINT`` and
commits once: one ``fsync`` for the batch. Writes queued meanwhile wait for that commit
and form the next batch, led by one of their callers. A lone write thus commits on its
caller's own thread, without a hand-off to another thread and back (which cost more
CPU than SQLite's work for a decision's write); a background thread commits the writes
nobody waits for (queued with ``wake=True``, e.g. the audit log's ``async`` mode) and,
within :data:`POLL_SECONDS`, any left behind.

- A write is acknowledged only after its batch committed: no future resolves before the
  ``COMMIT`` returned.
- An op that raises is rolled back to its savepoint; the others in the batch are not
  affected, and the caller gets the op's own exception (once the batch committed).
- When ``BEGIN`` or ``COMMIT`` fails, nothing of the batch is durable: every op of it
  fails with :class:`~zerolane.errors.Unavailable` (callers fail closed).
- Ops run in submission order, so later ops see what earlier ones wrote (the audit
  chain's head is read inside the batch's transaction): batches are taken from the
  queue's head and committed under one lock.
- A write may name the row it changes (a task id): :meth:`GroupCommitWriter.settle`
  lets a read of that row first wait for the writes to it already queued, so a
  compare-and-set loop re-reads the value its competitor just wrote instead of a
  snapshot from before the batch (which would make it lose again).
- :meth:`GroupCommitWriter.close` commits what is already queued, then stops the
  thread; writes submitted after it are refused.

Lock order (a lock is only ever taken while holding the ones before it, never the
other way round, so no two threads can wait for each other):

1. ``_admit`` (a submit against :meth:`~GroupCommitWriter.close`) and ``_leading`` (the
   batch being committed; held by its leader, or the background thread, from taking
   the batch to resolving its futures) are the outer locks, and are never held together.
2. ``_cv`` (the queue) and the fence's condition (:class:`_KeyFence`) are taken under
   either of them, one at a time, and nothing is acquired while holding them: the
   background thread lets go of ``_cv`` before it takes ``_leading``.
3. Under ``_leading``, inside the transaction: SQLite's own write lock (``BEGIN
   IMMEDIATE``, waiting at most the busy timeout for another process), then whatever
   an op takes (the spent proofs' purge clock) and a future's done-callbacks take (the
   store's lost-events counter). Those are leaves: an op never submits or waits for a
   write (it would wait for its own batch).

Ops take none of their callers' locks, so a caller may hold its own (the decider's
per-task locks) while it queues a write, or even while it waits for or leads a batch.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from zerolane.errors import Unavailable

T = TypeVar("T")

#: A write: runs on the writer's connection inside the batch's transaction.
WriteOp = Callable[[sqlite3.Connection], T]

DEFAULT_MAX_BATCH = 256
#: how long a caller waits for its batch before failing closed (the store's busy
#: timeout, waiting for another process's write lock, is 10 s per attempt)
DEFAULT_WAIT_SECONDS = 60.0
#: how often the background thread looks for queued writes nobody leads
POLL_SECONDS = 0.05

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending(Generic[T]):
    op: WriteOp[T]
    future: Future[T]
    key: str | None


@dataclass(slots=True)
class _Writes:
    queued: int = 0
    done: int = 0


class _KeyFence:
    """Counts the queued and finished writes of each key, so that a read of a key can
    wait for the writes to it that were queued before the read (not for later ones)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._keys: dict[str, _Writes] = {}

    def queued(self, key: str) -> None:
        with self._cond:
            self._keys.setdefault(key, _Writes()).queued += 1

    def finished(self, key: str) -> None:
        with self._cond:
            writes = self._keys[key]
            writes.done += 1
            if writes.done == writes.queued:
                del self._keys[key]
            self._cond.notify_all()

    def wait(self, key: str, timeout: float) -> bool:
        with self._cond:
            writes = self._keys.get(key)
            if writes is None:
                return True
            target = writes.queued
            return self._cond.wait_for(lambda: writes.done >= target, timeout)


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters since the writer started (for tests, benchmarks and operators)."""

    batches: int
    ops: int
    failed_commits: int
    largest_batch: int


class GroupCommitWriter:
    """Runs write ops on one connection, a transaction (and one commit) per batch."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        name: str = "zerolane-sqlite-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._connect = connect
        self._max_batch = max_batch
        self._wait = wait_seconds
        self._items: deque[_Pending[Any]] = deque()
        # the locks, in their order (module doc): _admit | _leading, then _cv | _fence
        self._cv = threading.Condition()  # guards _items, _urgent, _stopping
        self._urgent = False  # a write nobody waits for was queued: the thread commits it
        self._stopping = False
        #: held while a batch is taken and committed (by a leader or the thread); it
        #: also guards the connection and the counters
        self._leading = threading.Lock()
        self._closing = False
        self._admit = threading.Lock()  # a submit and close() never interleave
        self._conn: sqlite3.Connection | None = None
        self._fence = _KeyFence()
        self._batches = self._ops = self._failed_commits = self._largest = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # callers
    def submit(self, op: WriteOp[T], *, key: str | None = None, wake: bool = False) -> Future[T]:
        """Queue ``op``; the future resolves once its batch committed (or failed).

        The caller then waits with :meth:`wait` (which may commit the batch itself);
        ``wake=True`` is for a write nobody will wait for: the background thread
        commits it. ``key`` names the row the op writes (a task id), for :meth:`settle`.
        """
        future: Future[T] = Future()
        with self._admit:
            if self._closing:
                raise Unavailable("store.closed", "the store is closed")
            if key is not None:
                self._fence.queued(key)
            with self._cv:
                self._items.append(_Pending(op, future, key))
        if wake:
            self.wake()
        return future

    def run(self, op: WriteOp[T], *, key: str | None = None) -> T:
        """Run ``op`` in the next batch and return its result (or raise its error)."""
        return self.wait(self.submit(op, key=key))

    def wait(self, future: Future[T]) -> T:
        """The result of a submitted op once its batch committed (or its error);
        ``Unavailable`` (``store.timeout``) after ``wait_seconds``.

        While the op is still queued, the caller commits the queue's next batch itself
        as soon as no other batch is being committed (it leads)."""
        deadline = time.monotonic() + self._wait
        while not future.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._leading.acquire(timeout=remaining):
                raise Unavailable(
                    "store.timeout", f"the write did not commit within {self._wait:.0f} s"
                )
            try:
                if not future.done():
                    self._lead()
            finally:
                self._leading.release()
        return future.result()

    async def wait_async(self, future: Future[T]) -> T:
        """:meth:`wait` for an event loop: the background thread commits the queue (the
        loop never blocks on a commit) and the loop is woken when the future is done."""
        import asyncio  # here: a process that never awaits a write (the CLI) skips it

        self.wake()
        try:  # shielded: a cancelled or timed-out wait leaves the write to its batch
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self._wait)
        except TimeoutError:
            raise Unavailable(
                "store.timeout", f"the write did not commit within {self._wait:.0f} s"
            ) from None

    def wake(self) -> None:
        """Have the background thread commit what is queued now."""
        with self._cv:
            self._urgent = True
            self._cv.notify()

    def settle(self, key: str) -> None:
        """Wait until the writes of ``key`` queued so far have committed or failed.

        A read that follows then sees them (read-your-writes across this process's
        threads). It waits for those writes only, never for ones queued later, and at
        most ``wait_seconds``: then the read goes ahead on what is committed.
        """
        self._fence.wait(key, self._wait)

    def stats(self) -> WriterStats:
        return WriterStats(self._batches, self._ops, self._failed_commits, self._largest)

    def close(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        with self._admit:
            self._closing = True
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    # batches
    def _lead(self) -> None:
        """Take the queue's next batch and commit it (``_leading`` is held). A write
        whose future was cancelled before its batch (nobody waits for it) is dropped."""
        with self._cv:
            count = min(len(self._items), self._max_batch)
            taken = [self._items.popleft() for _ in range(count)]
        batch = self._live(taken)
        if batch:
            self._commit_batch(batch)

    def _live(self, taken: list[_Pending[Any]]) -> list[_Pending[Any]]:
        """The writes someone still waits for (marked running: no longer cancellable);
        a cancelled one is dropped, and its row no longer holds back reads."""
        live = []
        for pending in taken:
            if pending.future.set_running_or_notify_cancel():
                live.append(pending)
            elif pending.key is not None:
                self._fence.finished(pending.key)
        return live

    def _queued(self) -> bool:
        with self._cv:
            return bool(self._items)

    # the background thread
    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._urgent or self._stopping, POLL_SECONDS)
                    self._urgent = False
                    stopping = self._stopping
                while self._queued():
                    with self._leading:
                        self._lead()
                if stopping:
                    return
        finally:
            with self._admit:
                self._closing = True
            with self._leading:
                self._refuse_queued()
                self._disconnect()

    def _refuse_queued(self) -> None:
        """Fail what is still queued when the thread ends early (never after a close())."""
        with self._cv:
            left = list(self._items)
            self._items.clear()
        for item in self._live(left):
            self._resolve(item, False, Unavailable("store.closed", "the store is closed"))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.warning("closing the write connection failed", exc_info=True)

    def _commit_batch(self, batch: list[_Pending[Any]]) -> None:
        self._batches += 1
        self._ops += len(batch)
        self._largest = max(self._largest, len(batch))
        try:
            outcomes = self._execute(batch)
        except BaseException as err:
            # BEGIN, a savepoint or COMMIT failed: nothing of this batch is durable
            self._failed_commits += 1
            self._abandon()
            log.error("a batch of %d writes could not be committed: %r", len(batch), err)
            for pending in batch:
                failure = Unavailable("store.write", "the database could not be written")
                failure.__cause__ = err
                self._resolve(pending, False, failure)
            if not isinstance(err, Exception):
                raise
            return
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            self._resolve(pending, ok, value)

    def _resolve(self, pending: _Pending[Any], ok: bool, value: Any) -> None:
        if pending.key is not None:  # before the caller wakes: its next read sees it
            self._fence.finished(pending.key)
        if ok:
            pending.future.set_result(value)
        else:
            pending.future.set_exception(value)

    def _execute(self, batch: list[_Pending[Any]]) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction; raise if it could not be committed."""
        conn = self._connection()
        # the connection is in autocommit mode (isolation_level None): the driver
        # begins nothing of its own, the transaction and savepoints are ours
        conn.execute("BEGIN IMMEDIATE")
        outcomes: list[tuple[bool, Any]] = []
        for pending in batch:
            conn.execute("SAVEPOINT op")
            try:
                result = pending.op(conn)
            except Exception as err:
                # undo this op only; if even that fails, the transaction is gone and
                # the exception ends the whole batch
                conn.execute("ROLLBACK TO SAVEPOINT op")
                conn.execute("RELEASE SAVEPOINT op")
                outcomes.append((False, err))
            else:
                conn.execute("RELEASE SAVEPOINT op")
                outcomes.append((True, result))
        self._commit(conn)
        return outcomes

    @staticmethod
    def _commit(conn: sqlite3.Connection) -> None:
        """COMMIT the batch."""
        conn.execute("COMMIT")

    def _abandon(self) -> None:
        """Roll back what is left of a failed batch; reconnect next time if that fails."""
        conn = self._conn
        if conn is None:
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception:
            log.warning("rolling back a failed batch failed; reconnecting", exc_info=True)
            self._disconnect()
