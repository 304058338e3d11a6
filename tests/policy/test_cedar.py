"""CedarEngine: fails closed, swaps whole sets on reload, keeps the old set on refusal."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import cedarpy
import pytest

from tests.policy import factories as f
from tests.policy.conftest import PERMIT, write_set
from zerolane.policy import loader
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import request_policy_request
from zerolane.policy.engine import PolicyLoadError, PolicyRequest
from zerolane.policy.loader import load_snapshot
from zerolane.types import TaskState

OVERFLOW = (
    '@id("deny.level")\n'
    "forbid (principal, action, resource) when { context.task.level * 1000000000000 > 0 };\n"
)
CTX: dict[str, object] = {"now": 1, "task": {"state": "active", "level": 1}}


def _ask(
    context: Mapping[str, object] | None = None, resource_type: str = "Resource"
) -> PolicyRequest:
    return PolicyRequest("spiffe://example.org/a", "request", resource_type, "db/x", context or CTX)


def test_evaluation_error_in_a_forbid_cannot_become_an_allow(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT + OVERFLOW}))
    huge = {"now": 1, "task": {"state": "active", "level": 10**9}}
    # Cedar itself skips the erroring forbid and answers Allow...
    raw = cedarpy.is_authorized(
        {
            "principal": {"type": "Zerolane::Workload", "id": "spiffe://example.org/a"},
            "action": {"type": "Zerolane::Action", "id": "request"},
            "resource": {"type": "Zerolane::Resource", "id": "db/x"},
            "context": huge,
        },
        engine.snapshot.policies,
        cedarpy.Entities.from_json_str("[]"),
        engine.snapshot.schema,
    )
    assert raw.allowed
    assert raw.diagnostics.errors
    # ...the engine denies and says why.
    result = engine.decide(_ask(huge))
    assert not result.allowed
    assert any("overflow" in e for e in result.errors)
    # the twin: the same forbid evaluating cleanly to false lets the permit through
    assert engine.decide(_ask({"now": 1, "task": {"state": "active", "level": 0}})).allowed


def test_context_that_does_not_fit_the_schema_is_denied(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT}))
    assert engine.decide(_ask()).allowed
    for bad in ({"now": "soon", "task": CTX["task"]}, {"now": 1}, {**CTX, "extra": 1}):
        result = engine.decide(_ask(bad))
        assert not result.allowed
        assert result.errors


def test_exceptions_are_denials_not_raised(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT}))
    result = engine.decide(_ask({"now": object(), "task": CTX["task"]}))
    assert not result.allowed
    assert result.errors
    assert result.errors[0].startswith("TypeError")
    unknown = engine.decide(_ask(resource_type="User"))
    assert not unknown.allowed
    assert "unknown resource type" in unknown.errors[0]
    undeclared = engine.decide(_ask(resource_type="Playbook"))  # not in the tiny schema
    assert not undeclared.allowed
    assert undeclared.errors


def test_mapping_context_is_accepted(tmp_path: Path) -> None:
    engine = CedarEngine(write_set(tmp_path / "p", {"a.cedar": PERMIT}))
    assert engine.decide(_ask(MappingProxyType(CTX))).allowed


def test_policy_ids_are_the_at_ids_sorted(default_engine: CedarEngine) -> None:
    task = f.task(state=TaskState.SUSPENDED, calls_used=10)
    result = default_engine.decide(request_policy_request(f.AGENT, task, f.request(), f.NOW))
    assert result.policy_ids == ("task.budget_exhausted", "task.inactive")
    assert not result.allowed
    assert result.errors == ()


def test_refused_construction(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError):
        CedarEngine(write_set(tmp_path / "p", {"a.cedar": "permit (principal, action, resource);"}))


def _allowed(engine: CedarEngine) -> bool:
    return engine.decide(request_policy_request(f.AGENT, f.task(), f.request(), f.NOW)).allowed


def test_refused_reload_keeps_the_old_set_deciding(policy_dir: Path) -> None:
    engine = CedarEngine(policy_dir)
    before = engine.version
    assert _allowed(engine)
    bad = '@id("bad")\nforbid (principal, action, resource) when { context.task.state > 1 };\n'
    (policy_dir / "zz.cedar").write_text(bad)
    with pytest.raises(PolicyLoadError) as caught:
        engine.reload()
    assert caught.value.reason == "policy.invalid"
    assert "zz.cedar:1:1: [bad]" in caught.value.message
    assert engine.version == before
    assert _allowed(engine)  # a forbid that errored at evaluation would have been skipped anyway
    good = '@id("deny.all")\nforbid (principal, action, resource);\n'
    (policy_dir / "zz.cedar").write_text(good)
    assert engine.reload() == engine.version != before
    result = engine.decide(request_policy_request(f.AGENT, f.task(), f.request(), f.NOW))
    assert not result.allowed
    assert result.policy_ids == ("deny.all",)


def test_watch_picks_up_changes(policy_dir: Path) -> None:
    engine = CedarEngine(policy_dir)
    before = engine.version
    events: queue.Queue[tuple[bool, str]] = queue.Queue()
    engine.watch(interval=0.02, on_reload=lambda ok, message: events.put((ok, message)))
    try:
        (policy_dir / "zz.cedar").write_text(
            '@id("deny.all")\nforbid (principal, action, resource);\n'
        )
        ok, version = events.get(timeout=10)
        assert ok
        assert version == engine.version != before
        assert not _allowed(engine)
        (policy_dir / "zz.cedar").write_text("permit (principal, action, resource);\n")
        ok, error = events.get(timeout=10)
        assert not ok
        assert error.startswith("policy.missing_id")
        assert engine.version == version
        assert not _allowed(engine)
        (policy_dir / "zz.cedar").unlink()
        ok, version = events.get(timeout=10)
        assert ok
        assert version == before
        assert _allowed(engine)
        with pytest.raises(RuntimeError):
            engine.watch()
    finally:
        engine.stop()
    engine.stop()  # idempotent


def test_watch_survives_a_failing_callback(
    policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = CedarEngine(policy_dir)
    calls: list[bool] = []

    def explode(ok: bool, message: str) -> None:
        calls.append(ok)
        raise RuntimeError("audit sink down")

    engine.watch(interval=0.02, on_reload=explode)
    try:
        for n in range(2):
            (policy_dir / "zz.cedar").write_text(
                f'@id("d{n}")\nforbid (principal, action, resource);\n' + " " * n
            )
            deadline = time.monotonic() + 10
            while len(calls) < n + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert calls == [True, True]
    finally:
        engine.stop()
    assert "callback failed" in caplog.text


ONLY_LEVEL_0 = (
    '@id("base")\npermit (principal, action, resource) when { context.task.level == 0 };\n'
)
REQUESTS_PERMIT = '@id("requests.allow")\npermit (principal, action, resource);\n'
REQUESTS_FULL = REQUESTS_PERMIT + (
    '@id("requests.deny_level_1")\n'
    "forbid (principal, action, resource) when { context.task.level == 1 };\n"
)
LEVEL_1: dict[str, object] = {"now": 1, "task": {"state": "active", "level": 1}}


class _Sampler:
    """Decides a level-1 request in a loop; remembers every version and allow it saw."""

    def __init__(self, engine: CedarEngine) -> None:
        self.engine = engine
        self.versions: set[str] = set()
        self.allowed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.versions.add(self.engine.version)
            self.allowed += self.engine.decide(_ask(LEVEL_1)).allowed
            time.sleep(0.001)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_watch_never_loads_a_half_written_file(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "p", {"base.cedar": ONLY_LEVEL_0})
    base = {"base.cedar": ONLY_LEVEL_0}
    partial = load_snapshot(write_set(tmp_path / "v1", base | {"requests.cedar": REQUESTS_PERMIT}))
    full = load_snapshot(write_set(tmp_path / "v2", base | {"requests.cedar": REQUESTS_FULL}))
    engine = CedarEngine(folder)
    assert not engine.decide(_ask(LEVEL_1)).allowed
    events: queue.Queue[tuple[bool, str]] = queue.Queue()
    engine.watch(interval=0.01, settle=0.4, on_reload=lambda ok, m: events.put((ok, m)))
    try:
        with _Sampler(engine) as sampler, (folder / "requests.cedar").open("w") as out:
            out.write(REQUESTS_PERMIT)  # the permit is on disk, the forbid not yet
            out.flush()
            time.sleep(0.2)  # a slow writer, pausing for less than the settle time
            out.write(REQUESTS_FULL[len(REQUESTS_PERMIT) :])
            out.close()
            ok, version = events.get(timeout=5)
    finally:
        engine.stop()
    assert (ok, version) == (True, full.version)
    assert events.empty()  # one reload, of the whole file
    assert partial.version not in sampler.versions
    assert sampler.allowed == 0  # no level-1 request was ever allowed
    assert engine.version == full.version
    assert not engine.decide(_ask(LEVEL_1)).allowed
    assert engine.decide(_ask(CTX | {"task": {"state": "active", "level": 2}})).allowed


def test_watch_loads_an_atomic_replacement_within_settle_and_interval(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "p", {"base.cedar": ONLY_LEVEL_0})
    full = load_snapshot(
        write_set(tmp_path / "v2", {"base.cedar": ONLY_LEVEL_0, "requests.cedar": REQUESTS_FULL})
    )
    engine = CedarEngine(folder)
    events: queue.Queue[tuple[bool, str]] = queue.Queue()
    engine.watch(interval=0.05, settle=0.2, on_reload=lambda ok, m: events.put((ok, m)))
    try:
        temporary = folder / ".requests.cedar.tmp"  # not *.cedar: never read
        temporary.write_text(REQUESTS_FULL)
        start = time.monotonic()
        os.replace(temporary, folder / "requests.cedar")
        ok, version = events.get(timeout=5)
        elapsed = time.monotonic() - start
    finally:
        engine.stop()
    assert (ok, version) == (True, full.version)
    assert elapsed < 0.05 + 2 * 0.2 + 0.5  # a look, the settle wait, and slack for a busy CI
    assert not engine.decide(_ask(LEVEL_1)).allowed


def test_explicit_reload_refuses_a_read_that_overlaps_a_write(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = CedarEngine(policy_dir)
    before = engine.version
    real = loader._read

    def read(path: Path) -> str:
        (policy_dir / "zz.cedar").write_text(
            '@id("deny.all")\nforbid (principal, action, resource);\n'
        )
        return real(path)

    monkeypatch.setattr(loader, "_read", read)
    with pytest.raises(PolicyLoadError) as caught:
        engine.reload()
    assert caught.value.reason == "policy.changing"
    assert engine.version == before
    assert _allowed(engine)
    monkeypatch.setattr(loader, "_read", real)
    assert engine.reload() != before  # the twin: the finished file loads
    assert not _allowed(engine)


def test_built_requests_skip_the_check_only_for_the_shipped_schema(policy_dir: Path) -> None:
    """The decider's engine leaves Cedar's per-request schema check out for the shipped
    schema (the context builder is tested against it) and decides the same; a request
    that is off the schema still fails closed on evaluation; any other schema is
    checked on every request."""
    checking = CedarEngine(policy_dir)
    built = CedarEngine(policy_dir, built_requests=True)
    assert built.snapshot.shipped_schema
    assert checking.snapshot.shipped_schema
    asks = [
        request_policy_request(f.AGENT, f.task(), f.request(), f.NOW),
        request_policy_request(f.AGENT, f.task(state=TaskState.SUSPENDED), f.request(), f.NOW),
        request_policy_request(f.AGENT, f.task(), f.request(action="delete"), f.NOW),
    ]
    assert [built.decide(a) for a in asks] == [checking.decide(a) for a in asks]
    assert [r.allowed for r in (built.decide(a) for a in asks)] == [True, False, False]
    # off the schema: the checking engine refuses the request, the other one's
    # evaluation errors on the missing attribute; both deny and say why
    good = asks[0]
    task = {k: v for k, v in dict(good.context)["task"].items() if k != "state"}  # type: ignore[attr-defined]
    broken = PolicyRequest(
        good.principal,
        good.action,
        good.resource_type,
        good.resource,
        {**good.context, "task": task},
    )
    for engine in (checking, built):
        result = engine.decide(broken)
        assert not result.allowed
        assert result.errors
    # a schema edited by hand (one more comment) is no longer the shipped one: checked
    schema = policy_dir / loader.SCHEMA_NAME
    schema.write_text(schema.read_text() + "// edited here\n")
    edited = CedarEngine(policy_dir, built_requests=True)
    assert not edited.snapshot.shipped_schema
    assert edited.decide(good).allowed  # the twin
    extra = PolicyRequest(
        good.principal, good.action, good.resource_type, good.resource, {**good.context, "x": 1}
    )
    assert built.decide(extra).allowed  # unchecked: an unknown attribute changes nothing
    refused = edited.decide(extra)
    assert not refused.allowed
    assert refused.errors
