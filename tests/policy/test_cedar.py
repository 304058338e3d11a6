"""CedarEngine: fails closed, swaps whole sets on reload, keeps the old set on refusal."""

from __future__ import annotations

import queue
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import cedarpy
import pytest

from tests.policy import factories as f
from tests.policy.conftest import PERMIT, write_set
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import request_policy_request
from zerolane.policy.engine import PolicyLoadError, PolicyRequest
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
    assert "zz.cedar [bad]" in caught.value.message
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
