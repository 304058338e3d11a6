"""The Cedar policy decision point: :class:`CedarEngine` over a policy directory.

The loaded set is one immutable :class:`~zerolane.policy.loader.Snapshot` held in a
single attribute: ``decide()`` reads it once, ``reload()`` replaces it with one
assignment, so a decision always sees one whole set, and a refused reload leaves the
previous set deciding.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import cedarpy

from zerolane.policy.engine import PolicyLoadError, PolicyRequest, PolicyResult
from zerolane.policy.loader import POLICY_SUFFIX, SCHEMA_NAME, Snapshot, load_snapshot

WORKLOAD_TYPE = "Zerolane::Workload"
ACTION_TYPE = "Zerolane::Action"
RESOURCE_TYPES = {"Resource": "Zerolane::Resource", "Playbook": "Zerolane::Playbook"}
NO_ENTITIES = cedarpy.Entities.from_json_str("[]")  # all facts travel in the context
_ALLOW = cedarpy.Decision.Allow

ReloadCallback = Callable[[bool, str], None]
Fingerprint = tuple[tuple[str, int, int], ...]
logger = logging.getLogger(__name__)


def fingerprint(directory: Path) -> Fingerprint:
    """Names, mtimes and sizes of the files a load reads (empty if unreadable)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return ()
    found = []
    for entry in entries:
        if entry.name == SCHEMA_NAME or entry.name.endswith(POLICY_SUFFIX):
            try:
                stat = entry.stat()
            except OSError:
                continue
            found.append((entry.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


class CedarEngine:
    """A :class:`~zerolane.policy.engine.PolicyEngine` over ``*.cedar`` files and a schema.

    Construction loads the directory and raises
    :class:`~zerolane.policy.engine.PolicyLoadError` if it is refused.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._watcher: threading.Thread | None = None
        self._fingerprint = fingerprint(directory)
        self._snapshot = load_snapshot(directory)

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
        try:
            result = cedarpy.is_authorized(
                {
                    "principal": {"type": WORKLOAD_TYPE, "id": request.principal},
                    "action": {"type": ACTION_TYPE, "id": request.action},
                    "resource": {"type": resource_type, "id": request.resource},
                    "context": context if type(context) is dict else dict(context),
                },
                snapshot.policies,
                NO_ENTITIES,
                snapshot.schema,
            )
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

    def reload(self) -> str:
        """Load the directory again and swap it in; on refusal raise, keeping the old set."""
        with self._lock:
            seen = fingerprint(self._directory)
            snapshot = load_snapshot(self._directory)
            self._snapshot = snapshot
            self._fingerprint = seen
            return snapshot.version

    def watch(self, interval: float = 1.0, on_reload: ReloadCallback | None = None) -> None:
        """Poll the directory in a daemon thread; reload when a file changes.

        ``on_reload(ok, version_or_error)`` is called after each attempt.
        """
        if self._watcher is not None:
            raise RuntimeError("already watching")
        stop = threading.Event()
        self._stop = stop
        self._watcher = threading.Thread(
            target=self._poll,
            args=(interval, on_reload, stop),
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
        self, interval: float, on_reload: ReloadCallback | None, stop: threading.Event
    ) -> None:
        seen = self._fingerprint
        while not stop.wait(interval):
            current = fingerprint(self._directory)
            if current == seen:
                continue
            seen = current
            try:
                ok, message = True, self.reload()
                seen = self._fingerprint
            except PolicyLoadError as err:
                ok, message = False, f"{err.reason}: {err.message}"
            except Exception as err:
                ok, message = False, f"{type(err).__name__}: {err}"
            if not ok:
                logger.warning("policy reload refused, the previous set stays active: %s", message)
            if on_reload is not None:
                try:
                    on_reload(ok, message)
                except Exception:
                    logger.exception("policy reload callback failed")
