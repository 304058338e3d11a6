"""The playbook registry: versions, audit of every apply (refusals too), lookups."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.audit.conftest import NOW, FixedClock
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, NotFound, Unavailable
from zerolane.store.memory import MemoryStores
from zerolane.store.records import PlaybookRecord
from zerolane.tasks import playbook_registry as playbook_registry_module
from zerolane.tasks.playbook_registry import PlaybookRegistry
from zerolane.tasks.playbooks import Openers, Playbook, playbook_to_json
from zerolane.types import Sensitivity

ADMIN = Actor("admin", "test")
REPORT = Playbook(
    name="quarterly-report",
    description="Compile the quarterly report.",
    actions=("http:GET", "read"),
    resources=("finance/reports/*",),
    destinations=("finance-api.internal",),
    data_ceiling=Sensitivity.CONFIDENTIAL,
    max_ttl=900,
    max_calls=50,
    openers=Openers(spiffe_ids=("spiffe://example.org/agents/*",)),
)


@pytest.fixture
def stores() -> MemoryStores:
    return MemoryStores()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def registry(stores: MemoryStores, clock: FixedClock) -> PlaybookRegistry:
    return PlaybookRegistry(stores, AuditLog(stores, clock), clock)


def events(stores: MemoryStores) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in stores.read_events()]


def test_apply_stores_version_1_and_audits(
    registry: PlaybookRegistry, stores: MemoryStores
) -> None:
    record = registry.apply(REPORT, ADMIN)
    assert record == PlaybookRecord("quarterly-report", playbook_to_json(REPORT), 1, NOW)
    assert stores.get_playbook("quarterly-report") == record
    assert registry.get("quarterly-report") == REPORT
    assert registry.record("quarterly-report") == record

    [event] = events(stores)
    assert event["kind"] == "playbook.applied"
    assert event["outcome"] == "success"
    assert event["reason"] == "ok"
    assert event["subject"] == "quarterly-report"
    assert event["actor"] == {"type": "admin", "id": "test"}
    assert event["details"] == {
        "name": "quarterly-report",
        "version": 1,
        "ceiling": "confidential",
        "actions": ["http:GET", "read"],
    }


def test_applying_again_makes_the_next_version(
    registry: PlaybookRegistry, stores: MemoryStores, clock: FixedClock
) -> None:
    registry.apply(REPORT, ADMIN)
    clock.t += 60
    wider = dataclasses.replace(REPORT, max_calls=80)
    second = registry.apply(wider, ADMIN)
    assert (second.version, second.updated_at) == (2, NOW + 60)
    narrower = dataclasses.replace(REPORT, max_calls=10)
    assert registry.apply(narrower, ADMIN).version == 3
    assert registry.get("quarterly-report").max_calls == 10
    assert [e["details"]["version"] for e in events(stores)] == [1, 2, 3]  # type: ignore[index]


def test_reapplying_an_unchanged_playbook_keeps_its_version(
    registry: PlaybookRegistry, stores: MemoryStores, clock: FixedClock
) -> None:
    first = registry.apply(REPORT, ADMIN)
    clock.t += 60
    again = registry.apply(dataclasses.replace(REPORT), ADMIN)
    assert again == first  # same version, same time: nothing was written
    assert len(events(stores)) == 1
    # the twin: any change makes the next version
    changed = registry.apply(dataclasses.replace(REPORT, max_calls=REPORT.max_calls + 1), ADMIN)
    assert changed.version == 2


def test_versions_are_per_name(registry: PlaybookRegistry) -> None:
    registry.apply(REPORT, ADMIN)
    other = registry.apply(dataclasses.replace(REPORT, name="ci-deploy"), ADMIN)
    assert other.version == 1
    listed = registry.list()
    assert [(p.name, r.version) for p, r in listed] == [
        ("ci-deploy", 1),
        ("quarterly-report", 1),
    ]
    assert listed[1][0] == REPORT


def test_apply_normalizes_a_playbook_built_in_code(registry: PlaybookRegistry) -> None:
    messy = dataclasses.replace(REPORT, actions=("read", "http:GET", "read"))
    registry.apply(messy, ADMIN)
    assert registry.get("quarterly-report").actions == ("http:GET", "read")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": "Bad Name"}, "playbook.field"),
        ({"max_ttl": 8 * 86400}, "playbook.ttl"),
        ({"resources": ("a/**/b",)}, "playbook.pattern"),
        ({"delegable": True}, "playbook.delegation"),
        ({"openers": Openers(spiffe_ids=())}, "playbook.field"),
    ],
)
def test_a_refused_apply_is_audited_as_a_failure(
    registry: PlaybookRegistry, stores: MemoryStores, change: dict[str, object], reason: str
) -> None:
    bad = dataclasses.replace(REPORT, **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as caught:
        registry.apply(bad, ADMIN)
    assert caught.value.reason == reason
    assert stores.list_playbooks() == []
    [event] = events(stores)
    assert (event["kind"], event["outcome"], event["reason"]) == (
        "playbook.applied",
        "failure",
        reason,
    )
    assert event["subject"] == bad.name


def test_a_failed_store_write_is_audited_and_raised(
    registry: PlaybookRegistry, stores: MemoryStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(record: PlaybookRecord) -> None:
        raise Unavailable("store.write", "the database is gone")

    monkeypatch.setattr(stores, "put_playbook", broken)
    with pytest.raises(Unavailable):
        registry.apply(REPORT, ADMIN)
    [event] = events(stores)
    assert (event["outcome"], event["reason"]) == ("failure", "store.write")


def test_apply_file_audits_an_invalid_file(
    registry: PlaybookRegistry, stores: MemoryStores, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmax_call: 5\n")
    with pytest.raises(InvalidInput) as caught:
        registry.apply_file(path, ADMIN)
    assert caught.value.reason == "playbook.invalid"  # a typo, and required keys missing
    [event] = events(stores)
    assert (event["subject"], event["outcome"], event["reason"]) == (
        str(path),
        "failure",
        "playbook.invalid",
    )
    assert "max_call" in str(event["details"])


def test_apply_file_stores_a_valid_file(registry: PlaybookRegistry, tmp_path: Path) -> None:
    path = tmp_path / "pb.json"
    path.write_text(playbook_to_json(REPORT))
    assert registry.apply_file(path, ADMIN).version == 1
    assert registry.apply_file(str(path), ADMIN).version == 1  # unchanged: same version
    assert registry.get("quarterly-report") == REPORT


def test_unknown_names_are_not_found(registry: PlaybookRegistry) -> None:
    for lookup in (registry.get, registry.record):
        with pytest.raises(NotFound) as caught:
            lookup("nope")
        assert caught.value.reason == "playbook.unknown"
        assert "nope" in caught.value.message
    assert registry.list() == []


def test_a_playbook_whose_event_cannot_be_stored_is_not_applied(
    registry: PlaybookRegistry, stores: MemoryStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new version and its ``playbook.applied`` event are one write: no rules in
    force that the audit log does not show."""

    def failing(unsealed: dict[str, object], seq: int, prev_hash: str) -> object:
        raise RuntimeError("the audit sink is down")

    monkeypatch.setattr(playbook_registry_module, "seal", failing)
    with pytest.raises(Unavailable):
        registry.apply(REPORT, ADMIN)
    assert stores.get_playbook("quarterly-report") is None
    monkeypatch.undo()
    assert registry.apply(REPORT, ADMIN).version == 1  # the twin
    assert [e["kind"] for e in events(stores)][-1] == "playbook.applied"
