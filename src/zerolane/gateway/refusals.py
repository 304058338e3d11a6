"""The gateways' refusals made before any decision, audited at a bounded rate.

A request an enforcement point refuses before it can be decided (no or malformed
credentials, an unmapped route, a Host, Origin or media type it does not serve, a body
too large...) has no decision event; it is recorded here as a ``gateway.refused``
event, so probing of unmapped paths or floods of credential-less requests are visible
in the log and to the detectors.

A flood must not fill the disk nor slow the request path, so:

- each (listener, reason, client address) has a token bucket: ``per_second`` events
  refill it, up to ``burst``; a refusal finding it empty is not written but counted,
  and the next event written for that key carries the count (``suppressed``), so
  nothing is silently lost;
- all keys together share one more bucket (``total_per_second``, holding one
  second's worth, at least ``burst``), so many client addresses cannot multiply the
  rate; a refusal it stops is counted under its own key as above;
- a key the table (:data:`MAX_KEYS`, least recently refused first) forgets while it
  still holds a count hands it to the next event written for any key
  (``suppressed_elsewhere``);
- events are written by one worker thread, never by the caller:
  :meth:`RefusalAudit.refused` only takes a lock and counts. At most
  :data:`MAX_PENDING` wait to be written; beyond, a refusal is counted as suppressed.
  An event the log cannot store is logged and counted (:attr:`RefusalAudit.lost`):
  the request is refused anyway.

Never recorded: a token, a proof, a header, the query string (:func:`audit_refusal`
hands over the access line's safe path: raw, no query, bounded and escaped).

Other listeners' refusals go through the same buckets as events of their own
(``event_of``: the control plane's OAuth endpoints record ``oauth.sign_in`` and
``oauth.client_registered`` refused, :mod:`zerolane.server.oauth_server`), with the
same details and the same count of what was not written.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from zerolane.audit.events import Actor, Event
from zerolane.audit.log import AuditLog
from zerolane.errors import ZerolaneError
from zerolane.gateway.access_log import Scope, note_of, safe_path
from zerolane.types import Clock, Outcome

log = logging.getLogger(__name__)

KIND = "gateway.refused"
#: keys (listener, reason, client) whose buckets are remembered at once
MAX_KEYS = 4096
#: events handed to the writer and not yet written, at most
MAX_PENDING = 1024
#: the longest path and client address recorded
MAX_TEXT = 512

#: builds a refusal's event from the details this module gives it (its listener, method,
#: path, client, status and the counts of refusals not written)
EventOf = Callable[[dict[str, object]], Event]


@dataclass(frozen=True, slots=True)
class RefusalRates:
    """How many refusal events are written: per key and for all keys together."""

    #: events per second per (listener, reason, client)
    per_second: float = 1.0
    #: events a key may write at once (its bucket's size)
    burst: int = 20
    #: events per second of every key together (its bucket holds one second's worth, at
    #: least ``burst``)
    total_per_second: float = 50.0


class _Bucket:
    __slots__ = ("at", "suppressed", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at
        self.suppressed = 0

    def refill(self, now: float, rate: float, size: float) -> bool:
        """Refill for the time since the last refill (none if the clock went back);
        whether a token is there to take."""
        self.tokens = min(size, self.tokens + max(0.0, now - self.at) * rate)
        self.at = max(self.at, now)
        return self.tokens >= 1.0


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


class RefusalAudit:
    """Records ``gateway.refused`` events into ``audit`` at the rates of ``rates``."""

    def __init__(self, audit: AuditLog, clock: Clock, rates: RefusalRates | None = None) -> None:
        self._audit = audit
        self._clock = clock
        self.rates = rates or RefusalRates()
        self._lock = threading.Lock()
        self._buckets: OrderedDict[tuple[str, str, str], _Bucket] = OrderedDict()
        now = clock.now()
        self._total_size = float(max(self.rates.burst, self.rates.total_per_second))
        self._total = _Bucket(self._total_size, now)
        self._elsewhere = 0
        self._pending = 0
        self._writer: ThreadPoolExecutor | None = None
        #: refusals not written (counted, carried by a later event)
        self.suppressed = 0
        #: events handed to the writer that the log could not store
        self.lost = 0

    def refused(
        self,
        *,
        listener: str,
        reason: str,
        method: str,
        path: str,
        client: str,
        status: int | None = None,
        task_id: str | None = None,
        workload: str | None = None,
        event_of: EventOf | None = None,
    ) -> bool:
        """Count one refusal and, when its buckets allow, have its event written (off
        this thread); True when it will be written. Never blocks on the log. The event
        is ``gateway.refused`` by the workload about the task, if known, or the one
        ``event_of`` builds from the details."""
        key = (listener, reason, client)
        rates = self.rates
        with self._lock:
            now = self._clock.now()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(rates.burst), now)
                self._forget_oldest()
            else:
                self._buckets.move_to_end(key)
            own = bucket.refill(now, rates.per_second, rates.burst)
            total = self._total.refill(now, rates.total_per_second, self._total_size)
            if not (own and total) or self._pending >= MAX_PENDING:
                bucket.suppressed += 1
                self.suppressed += 1
                return False
            bucket.tokens -= 1.0
            self._total.tokens -= 1.0
            suppressed, bucket.suppressed = bucket.suppressed, 0
            elsewhere, self._elsewhere = self._elsewhere, 0
            self._pending += 1
            writer = self._writer
            if writer is None:
                writer = self._writer = ThreadPoolExecutor(1, thread_name_prefix="zl-refusals")
        details: dict[str, object] = {
            "listener": listener,
            "method": method[:16],
            "path": _bounded(path),
            "client": _bounded(client),
            "status": status,
            "suppressed": suppressed,
        }
        if elsewhere:
            details["suppressed_elsewhere"] = elsewhere
        if task_id is not None:
            details["task_id"] = task_id
        if workload is not None:
            details["workload"] = workload
        try:
            if event_of is not None:
                event = event_of(details)
            else:
                event = self._audit.event(
                    KIND,
                    Actor("workload", workload or "unauthenticated"),
                    task_id or "unknown",
                    Outcome.DENIED,
                    reason,
                    details,
                )
        except Exception:  # never built: not pending, and lost with what it carried
            with self._lock:
                self._pending -= 1
                self.lost += 1 + suppressed + elsewhere
            raise
        writer.submit(self._write, event, suppressed + elsewhere)
        return True

    def _forget_oldest(self) -> None:
        """Forget the least recently refused key when too many are held (its count, if
        any, goes to the next event written)."""
        if len(self._buckets) > MAX_KEYS:
            _, oldest = self._buckets.popitem(last=False)
            self._elsewhere += oldest.suppressed

    def _write(self, event: Event, carried: int) -> None:
        try:
            self._audit.record_all([event])
        except ZerolaneError as err:
            with self._lock:
                self.lost += 1 + carried
            log.warning("a refusal (%s) could not be audited: %s", event.reason, err.reason)
        finally:
            with self._lock:
                self._pending -= 1

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event handed over so far is written (tests, shutdown)."""
        with self._lock:
            writer = self._writer
        if writer is not None:
            done: Future[None] = writer.submit(lambda: None)
            done.result(timeout)

    def close(self) -> None:
        """Write what is pending, then stop the writer."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)


def audit_refusal(
    refusals: RefusalAudit | None,
    scope: Scope,
    *,
    listener: str,
    reason: str,
    status: int,
    task_id: str | None = None,
    event_of: EventOf | None = None,
) -> None:
    """Count ``scope``'s refusal (and have it audited when its rate allows); never
    raises into the request path (the request is refused whatever happens here). The
    task is ``task_id``, else the one the access note names, if any; ``event_of``:
    see :meth:`RefusalAudit.refused`."""
    if refusals is None:
        return
    client = scope.get("client")
    address = str(client[0]) if isinstance(client, list | tuple) and client else "-"
    note = note_of(scope)
    try:
        refusals.refused(
            listener=listener,
            reason=reason,
            method=str(scope.get("method", "-")),
            path=safe_path(scope),
            client=address,
            status=status,
            task_id=task_id or (note.task_id if note is not None else None),
            event_of=event_of,
        )
    except Exception as err:  # a bug here must not turn a refusal into a 500
        log.warning("the refusal %s could not be counted: %s", reason, type(err).__name__)
