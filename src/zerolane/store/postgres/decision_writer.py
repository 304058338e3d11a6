"""The thread that commits decisions, so a decider never waits for PostgreSQL.

:meth:`~zerolane.store.postgres.stores.PostgresStores.commit_decision` hands its write
(a function of no arguments that runs the write's transaction) to
:class:`DecisionWriter` and returns at once with a :class:`PendingWrite` on it: the
gateway's event loop goes on while the write commits.

- One thread runs the writes one at a time, in the order they were handed over (FIFO):
  the writes of one task commit in that order, as the decision core expects (a
  request decided behind a handed-over write has its compare-and-set queued behind
  it). Each write is its own transaction; the price is that this process commits its
  decisions one after another (each a few statements, a round trip each), as the
  audit chain's head lock already makes every process's appends do.
- A write is resolved only after its transaction committed, or failed (rolled back):
  its result, or its own exception (``ProofReplayed``, ``Unavailable`` with the
  write's reason...).
- Each write names its task: :meth:`DecisionWriter.settle` lets a read of that task
  first wait for the writes to it handed over before the read (never later ones).
- :meth:`DecisionWriter.close` refuses new writes, commits those already handed over,
  then stops the thread: nothing handed over is dropped. Should the thread end any
  other way, what is left fails with ``Unavailable`` (``store.closed``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from zerolane.errors import Unavailable

T = TypeVar("T")

#: how long a caller waits for its write before failing closed (a write that meets a
#: lock held by another process waits for it)
DEFAULT_WAIT_SECONDS = 60.0

log = logging.getLogger(__name__)


def closed() -> Unavailable:
    return Unavailable("store.closed", "the store is closed")


class PendingWrite(Generic[T]):
    """A write handed to the :class:`DecisionWriter` (see ``ports.PendingWrite``)."""

    __slots__ = ("_future", "_wait")

    def __init__(self, future: futures.Future[T], wait_seconds: float) -> None:
        self._future = future
        self._wait = wait_seconds

    def result(self) -> T:
        """Wait (this thread) until the write committed or failed: its result or error;
        ``Unavailable`` (``store.timeout``) after the writer's wait."""
        futures.wait([self._future], timeout=self._wait)
        if not self._future.done():
            raise self._timeout()
        return self._future.result()

    async def result_async(self) -> T:
        """:meth:`result` for an event loop: awaited, the loop is never blocked. A
        cancelled or timed-out wait leaves the write to the writer (it still commits)."""
        waiting = asyncio.wrap_future(self._future)
        await asyncio.wait({waiting}, timeout=self._wait)  # never cancels `waiting`
        if not waiting.done():
            raise self._timeout()
        return waiting.result()

    def _timeout(self) -> Unavailable:
        return Unavailable("store.timeout", f"the write did not commit within {self._wait:.0f} s")


@dataclass(slots=True)
class _Job(Generic[T]):
    run: Callable[[], T]
    key: str
    future: futures.Future[T] = field(default_factory=futures.Future)


@dataclass(slots=True)
class _Writes:
    queued: int = 0
    done: int = 0


class DecisionWriter:
    """Runs handed-over writes on a thread of its own, one at a time, first in first
    out (see the module doc)."""

    def __init__(
        self,
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        name: str = "zerolane-postgres-decisions",
    ) -> None:
        self._wait = wait_seconds
        self._cond = threading.Condition()  # guards _jobs, _keys and _closing
        self._jobs: deque[_Job[Any]] = deque()
        self._keys: dict[str, _Writes] = {}  # the writes of each task not yet done
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: str, run: Callable[[], T]) -> PendingWrite[T]:
        """Queue ``run`` (a write of task ``key``); raises ``Unavailable``
        (``store.closed``) once :meth:`close` was called."""
        job: _Job[T] = _Job(run, key)
        with self._cond:
            if self._closing:
                raise closed()
            self._keys.setdefault(key, _Writes()).queued += 1
            self._jobs.append(job)
            self._cond.notify_all()
        return PendingWrite(job.future, self._wait)

    def settle(self, key: str) -> None:
        """Wait until the writes of ``key`` handed over so far committed or failed (at
        most the writer's wait: then the read goes ahead on what is committed)."""
        with self._cond:
            writes = self._keys.get(key)
            if writes is None:
                return
            target = writes.queued
            self._cond.wait_for(lambda: writes.done >= target, self._wait)

    def close(self) -> None:
        """Refuse new writes, commit those handed over, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: bool(self._jobs) or self._closing)
                    if not self._jobs:
                        return  # closing, and every write handed over is done
                    job = self._jobs[0]  # left queued while it runs: see _refuse_left
                if not self._run(job):
                    return
        finally:
            self._refuse_left()

    def _run(self, job: _Job[Any]) -> bool:
        """Run ``job`` and resolve it; False when the thread must end (an exception that
        is no error: ``KeyboardInterrupt``, ``SystemExit``)."""
        try:
            value = job.run()
        except BaseException as err:
            self._resolve(job, err)
            if not isinstance(err, Exception):
                log.error("the decision writer stopped: %r", err)
                return False
        else:
            self._resolve(job, None, value)
        return True

    def _resolve(self, job: _Job[Any], error: BaseException | None, value: Any = None) -> None:
        with self._cond:  # before the caller wakes: its next read of the task sees it
            self._jobs.popleft()
            writes = self._keys[job.key]
            writes.done += 1
            if writes.done == writes.queued:
                del self._keys[job.key]
            self._cond.notify_all()
        if error is None:
            job.future.set_result(value)
        elif isinstance(error, Exception):
            job.future.set_exception(error)
        else:  # the thread is ending (KeyboardInterrupt...): the write's fate is unknown
            failure = closed()
            failure.__cause__ = error
            job.future.set_exception(failure)

    def _refuse_left(self) -> None:
        """Fail what is still queued when the thread ends early (never after close())."""
        with self._cond:
            self._closing = True
            left = list(self._jobs)
            self._jobs.clear()
            self._keys.clear()
            self._cond.notify_all()
        for job in left:
            job.future.set_exception(closed())
