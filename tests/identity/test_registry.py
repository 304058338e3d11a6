"""The workload registry: validation, trust domains, audit of every change."""

from __future__ import annotations

import pytest

from tests.identity.attestors.cases import FixedClock
from tests.identity.conftest import ADMIN, AGENT, audit_bodies
from zerolane.errors import Conflict, InvalidInput, NotFound, Unavailable
from zerolane.identity.registry import MAX_OWNER_LEN, WorkloadRegistry
from zerolane.store.memory import MemoryStores
from zerolane.store.records import FederatedBundle
from zerolane.types import WorkloadStatus


def test_register_stores_and_audits(
    registry: WorkloadRegistry, stores: MemoryStores, clock: FixedClock
) -> None:
    workload = registry.register(
        AGENT, selectors=["k8s:sa:agent", "k8s:ns:prod", "k8s:sa:agent"], owner="ops", actor=ADMIN
    )
    assert workload.spiffe_id == AGENT
    assert workload.selectors == ("k8s:ns:prod", "k8s:sa:agent")  # sorted, de-duplicated
    assert workload.owner == "ops"
    assert workload.status is WorkloadStatus.ENABLED
    assert workload.created_at == workload.updated_at == clock.t
    assert stores.get_workload(AGENT) == workload
    assert registry.get(AGENT) == workload

    [event] = audit_bodies(stores)
    assert event["kind"] == "workload.registered"
    assert event["outcome"] == "success"
    assert event["subject"] == AGENT
    assert event["actor"] == {"type": "admin", "id": "test"}
    assert event["details"] == {"selectors": ["k8s:ns:prod", "k8s:sa:agent"], "owner": "ops"}


@pytest.mark.parametrize(
    ("spiffe_id", "reason"),
    [
        ("spiffe://example.org", "spiffe_id.no_path"),
        ("spiffe://example.org/agent/", "spiffe_id.trailing_slash"),
        ("spiffe://Example.org/agent", "spiffe_id.uppercase_trust_domain"),
        ("agent", "spiffe_id.scheme"),
        ("spiffe://other.org/agent", "spiffe_id.foreign_trust_domain"),
    ],
)
def test_invalid_ids_are_refused_and_audited(
    registry: WorkloadRegistry, stores: MemoryStores, spiffe_id: str, reason: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        registry.register(spiffe_id, selectors=[], owner=None, actor=ADMIN)
    assert info.value.reason == reason
    assert stores.list_workloads() == []
    [event] = audit_bodies(stores)
    assert (event["kind"], event["outcome"], event["reason"]) == (
        "workload.registered",
        "failure",
        reason,
    )
    # the legitimate twin
    registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)


def test_federated_trust_domain_is_accepted(
    registry: WorkloadRegistry, stores: MemoryStores
) -> None:
    with pytest.raises(InvalidInput):
        registry.register("spiffe://partner.org/agent", selectors=[], owner=None, actor=ADMIN)
    stores.put_bundle(FederatedBundle("partner.org", '{"keys": []}', 1, 0))
    workload = registry.register(
        "spiffe://partner.org/agent", selectors=[], owner=None, actor=ADMIN
    )
    assert workload.spiffe_id == "spiffe://partner.org/agent"


def test_registering_twice_is_a_conflict(registry: WorkloadRegistry, stores: MemoryStores) -> None:
    registry.register(AGENT, selectors=["a:b"], owner=None, actor=ADMIN)
    with pytest.raises(Conflict) as info:
        registry.register(AGENT, selectors=["c:d"], owner=None, actor=ADMIN)
    assert info.value.reason == "workload.exists"
    assert registry.get(AGENT).selectors == ("a:b",)
    assert [(e["outcome"], e["reason"]) for e in audit_bodies(stores)] == [
        ("success", "ok"),
        ("failure", "workload.exists"),
    ]


@pytest.mark.parametrize(
    "selector",
    ["no-colon", ":value", "type:", "ty pe:v", "type:va lue", "type:v\n", "t:" + "v" * 600],
)
def test_malformed_selectors_are_refused(registry: WorkloadRegistry, selector: str) -> None:
    with pytest.raises(InvalidInput) as info:
        registry.register(AGENT, selectors=[selector], owner=None, actor=ADMIN)
    assert info.value.reason == "selector.format"
    registry.register(AGENT, selectors=["type:v:with:colons"], owner=None, actor=ADMIN)


@pytest.mark.parametrize("owner", ["", "x" * (MAX_OWNER_LEN + 1)])
def test_owner_length_is_bounded(registry: WorkloadRegistry, owner: str) -> None:
    with pytest.raises(InvalidInput) as info:
        registry.register(AGENT, selectors=[], owner=owner, actor=ADMIN)
    assert info.value.reason == "workload.owner"
    registry.register(AGENT, selectors=[], owner="x" * MAX_OWNER_LEN, actor=ADMIN)


def test_get_unknown_is_not_found(registry: WorkloadRegistry) -> None:
    with pytest.raises(NotFound) as info:
        registry.get(AGENT)
    assert info.value.reason == "workload.unknown"


def test_list_is_ordered(registry: WorkloadRegistry) -> None:
    for name in ("c", "a", "b"):
        registry.register(f"spiffe://example.org/{name}", selectors=[], owner=None, actor=ADMIN)
    assert [w.spiffe_id for w in registry.list()] == [
        "spiffe://example.org/a",
        "spiffe://example.org/b",
        "spiffe://example.org/c",
    ]


def test_set_status_updates_and_audits(
    registry: WorkloadRegistry, stores: MemoryStores, clock: FixedClock
) -> None:
    registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    clock.t += 10
    updated = registry.set_status(AGENT, WorkloadStatus.DISABLED, actor=ADMIN)
    assert updated.status is WorkloadStatus.DISABLED
    assert updated.updated_at == clock.t
    assert registry.get(AGENT).status is WorkloadStatus.DISABLED
    registry.set_status(AGENT, WorkloadStatus.ENABLED, actor=ADMIN)
    kinds = [(e["kind"], e["outcome"]) for e in audit_bodies(stores)]
    assert kinds[1:] == [("workload.disabled", "success"), ("workload.enabled", "success")]


def test_set_status_of_unknown_is_not_found(
    registry: WorkloadRegistry, stores: MemoryStores
) -> None:
    with pytest.raises(NotFound) as info:
        registry.set_status(AGENT, WorkloadStatus.DISABLED, actor=ADMIN)
    assert info.value.reason == "workload.unknown"
    assert audit_bodies(stores) == []


def test_a_workload_whose_event_cannot_be_stored_is_not_registered(
    registry: WorkloadRegistry, stores: MemoryStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workload and its ``workload.registered`` event are one write: an audit
    failure (or a crash) between them can no longer leave an unaudited workload."""

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(stores, "append_events", down)
    with pytest.raises(Unavailable):
        registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    assert stores.get_workload(AGENT) is None
    monkeypatch.undo()
    registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)  # the twin
    assert stores.get_workload(AGENT) is not None
    assert [e["kind"] for e in audit_bodies(stores)] == ["workload.registered"]


def test_a_status_change_whose_event_cannot_be_stored_is_undone(
    registry: WorkloadRegistry, stores: MemoryStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(stores, "append_events", down)
    with pytest.raises(Unavailable):
        registry.set_status(AGENT, WorkloadStatus.DISABLED, actor=ADMIN)
    assert registry.get(AGENT).status is WorkloadStatus.ENABLED
    monkeypatch.undo()
    assert registry.set_status(AGENT, WorkloadStatus.DISABLED, actor=ADMIN).status is (
        WorkloadStatus.DISABLED
    )
    assert [e["kind"] for e in audit_bodies(stores)][-1] == "workload.disabled"
