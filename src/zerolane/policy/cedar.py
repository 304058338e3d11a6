"""The Cedar policy decision point: :class:`CedarEngine` over a policy directory.

The loaded set is one immutable :class:`~zerolane.policy.loader.Snapshot` held in a
single attribute: ``decide()`` reads it once, ``reload()`` replaces it with one
assignment, so a decision always sees one whole set, and a refused reload leaves the
previous set deciding. ``watch()`` follows the folder and loads a change only once its
files have held still for :data:`SETTLE` seconds: a file still being written, whose
first half may parse (a ``permit`` before the ``forbid`` that narrows it), is not loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from zerolane.policy.engine import PolicyLoadError, PolicyRequest, PolicyResult
from zerolane.policy.loader import Reading, Snapshot, parse, read_directory, stamps
from zerolane.policy.schema_upgrade import SCHEMA_OUTDATED, schema_state

WORKLOAD_TYPE = "Zerolane::Workload"
ACTION_TYPE = "Zerolane::Action"
RESOURCE_TYPES = {"Resource": "Zerolane::Resource", "Playbook": "Zerolane::Playbook"}
NO_ENTITIES = cedarpy.Entities.from_json_str("[]")  # all facts travel in the context
_ALLOW = cedarpy.Decision.Allow

ReloadCallback = Callable[[bool, str], None]
logger = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds between two looks at the folder
SETTLE = 1.0  # seconds the files must hold still before a change is loaded


@dataclass(frozen=True, slots=True)
class _Look:
    """One look at the policy folder: what was read, or why nothing usable was.

    ``key`` is equal for two looks only when they saw the same files with the same
    sizes, mtimes, inodes and content; it is None when a file changed during the read.
    """

    key: object
    reading: Reading | None
    error: PolicyLoadError | None


def _look(directory: Path) -> _Look:
    try:
        reading = read_directory(directory)
    except PolicyLoadError as err:
        if err.reason == "policy.changing":
            return _Look(None, None, err)
        return _Look(("refused", stamps(directory), err.reason, err.message), None, err)
    return _Look((reading.stamps, reading.version), reading, None)


class CedarEngine:
    """A :class:`~zerolane.policy.engine.PolicyEngine` over ``*.cedar`` files and a schema.

    Construction loads the directory and raises
    :class:`~zerolane.policy.engine.PolicyLoadError` if it is refused.

    Cedar checks each request against the schema before evaluating it. With
    ``built_requests`` (the decider's engine: every request comes from
    :mod:`zerolane.policy.context`, whose shapes the tests check against the shipped
    schema) and a set whose schema is the shipped one byte for byte, that check is
    left out: it cost more than the evaluation itself (~0.1 ms of ~0.35 per decision).
    The policies are still strictly validated against the schema when loaded, and an
    evaluation error still denies. Any other schema, or requests written by hand
    (``zerolane decide``, ``zerolane policy test``), are checked every time.
    """

    def __init__(self, directory: Path, *, built_requests: bool = False) -> None:
        self._directory = directory
        self._built_requests = built_requests
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._watcher: threading.Thread | None = None
        first = _look(directory)
        if first.reading is None:
            raise first.error or PolicyLoadError("policy.unreadable", [f"{directory}"])
        self._snapshot = parse(first.reading)
        self._seen = first.key  # the files the deciding (or last refused) set came from
        self._generation = 0  # bumped whenever _seen changes
        #: the policy version last looked at for an outdated schema, and the advice
        self._advice: tuple[str, str | None] = ("", None)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def version(self) -> str:
        return self._snapshot.version

    @property
    def snapshot(self) -> Snapshot:
        """The set deciding right now (immutable)."""
        return self._snapshot

    def decide(self, request: PolicyRequest) -> PolicyResult:
        """Allow only when Cedar says Allow and reported no error; never raises."""
        snapshot = self._snapshot
        context = request.context
        resource_type = RESOURCE_TYPES.get(request.resource_type)
        if resource_type is None:
            return PolicyResult(False, (), (f"unknown resource type {request.resource_type!r}",))
        asked: dict[str, object] = {
            "principal": {"type": WORKLOAD_TYPE, "id": request.principal},
            "action": {"type": ACTION_TYPE, "id": request.action},
            "resource": {"type": resource_type, "id": request.resource},
            "context": context if type(context) is dict else dict(context),
        }
        schema = None if self._built_requests and snapshot.shipped_schema else snapshot.schema
        result = _evaluate(asked, snapshot.policies, schema)
        if result.errors:
            return self._explained(result, snapshot)
        ids = result.policy_ids
        if result.allowed or not ids:  # (no forbid named: nothing more to tell)
            return result
        if snapshot.without_approval is not None and snapshot.approval_ids.issuperset(ids):
            # denied by approval policies alone: an approval only counts when nothing
            # else stands in the way, so decide again without them
            unless = _evaluate(asked, snapshot.without_approval, schema)
            result = PolicyResult(False, ids, (), approval=True) if unless.allowed else unless
        # a safety rule among the forbids that matched (Cedar names every one of them):
        # no shadow mode relaxes this deny, whatever the evaluation without approvals said
        never = snapshot.shadow_never
        if never and not never.isdisjoint(ids):
            return dataclasses.replace(result, shadow_never=True)
        return result

    def _explained(self, result: PolicyResult, snapshot: Snapshot) -> PolicyResult:
        """An erring result, with the reason when the folder's schema is outdated (an
        earlier shipped one, or one without ``context.risk``): ``policy.schema_outdated``
        and what to run. Looked at once per policy version, and logged then."""
        version, advice = self._advice
        if version != snapshot.version:
            try:
                advice = schema_state(self._directory).advice
            except OSError:  # only a hint: the result stands
                advice = None
            self._advice = (snapshot.version, advice)
            if advice is not None:
                logger.warning("every decision fails closed: %s", advice)
        if advice is None:
            return result
        return dataclasses.replace(
            result, errors=(*result.errors, advice), reasons=(SCHEMA_OUTDATED,)
        )

    def reload(self) -> str:
        """Load the directory now and swap it in; on refusal raise, keeping the old set.

        For an explicit reload (SIGHUP, the admin API): the files are read once, as
        they are; a read that overlaps a write is refused (``policy.changing``).
        """
        with self._lock:
            look = _look(self._directory)
            if look.reading is None:
                raise look.error or PolicyLoadError("policy.unreadable", [f"{self._directory}"])
            snapshot = parse(look.reading)
            self._swap(snapshot, look.key)
            return snapshot.version

    def _swap(self, snapshot: Snapshot | None, key: object) -> None:
        if snapshot is not None:
            self._snapshot = snapshot
        self._seen = key
        self._generation += 1

    def watch(
        self,
        interval: float = POLL_INTERVAL,
        on_reload: ReloadCallback | None = None,
        settle: float = SETTLE,
    ) -> None:
        """Look at the directory every ``interval`` seconds in a daemon thread; load a
        change once the files have held still for ``settle`` seconds.

        A change is loaded only when two looks ``settle`` seconds apart saw the same
        files (names, sizes, mtimes, inodes and content) and neither overlapped a
        write, so a file still being written is not loaded, even when its first half
        parses (a ``permit`` written before the ``forbid`` that narrows it).
        ``on_reload(ok, version_or_error)`` is called after each attempt.
        """
        if self._watcher is not None:
            raise RuntimeError("already watching")
        stop = threading.Event()
        self._stop = stop
        self._watcher = threading.Thread(
            target=self._poll,
            args=(interval, settle, on_reload, stop),
            name="zerolane-policy-watch",
            daemon=True,
        )
        self._watcher.start()

    def stop(self) -> None:
        """Stop watching (no-op when not watching)."""
        if self._stop is not None and self._watcher is not None:
            self._stop.set()
            self._watcher.join(timeout=10)
        self._stop = self._watcher = None

    def _poll(
        self,
        interval: float,
        settle: float,
        on_reload: ReloadCallback | None,
        stop: threading.Event,
    ) -> None:
        while not stop.wait(interval):
            generation = self._generation
            look = _look(self._directory)
            if look.key == self._seen:
                continue
            while True:  # until two looks `settle` apart agree: the files hold still
                if stop.wait(settle):
                    return
                again = _look(self._directory)
                if again.key is not None and again.key == look.key:
                    break
                look = again
            outcome = self._apply(look, generation)
            if outcome is None:
                continue
            ok, message = outcome
            if not ok:
                logger.warning("policy reload refused, the previous set stays active: %s", message)
            if on_reload is not None:
                try:
                    on_reload(ok, message)
                except Exception:
                    logger.exception("policy reload callback failed")

    def _apply(self, look: _Look, generation: int) -> tuple[bool, str] | None:
        """Swap in a settled look; None when there is nothing to report."""
        with self._lock:
            if generation != self._generation or look.key == self._seen:
                return None  # reloaded meanwhile (SIGHUP, admin API), or back as it was
            if look.reading is None:
                self._swap(None, look.key)
                err = look.error
                return False, f"{err.reason}: {err.message}" if err else "policy.unreadable"
            try:
                snapshot = parse(look.reading)
            except PolicyLoadError as err:
                self._swap(None, look.key)
                return False, f"{err.reason}: {err.message}"
            except Exception as err:  # a refusal, never a half-applied set
                self._swap(None, look.key)
                return False, f"{type(err).__name__}: {err}"
            self._swap(snapshot, look.key)
            return True, snapshot.version


def _evaluate(
    asked: dict[str, object], policies: cedarpy.PolicySet, schema: cedarpy.Schema | None
) -> PolicyResult:
    """One Cedar evaluation; never raises (an error is the answer, never an allow)."""
    try:
        result = cedarpy.is_authorized(asked, policies, NO_ENTITIES, schema)
        diagnostics = result.diagnostics
        errors = diagnostics.errors
        names = diagnostics.id_annotations_by_reason
        ids = tuple(sorted(names.get(r, r) for r in diagnostics.reasons))
        allowed = result.decision is _ALLOW
    except Exception as err:  # fail closed: the error is the answer, never an allow
        return PolicyResult(False, (), (f"{type(err).__name__}: {err}",))
    if errors:
        return PolicyResult(False, ids, tuple(errors))
    return PolicyResult(allowed, ids, ())
