"""The NHI inventory of a seeded home, and its findings: dormant, ownerless, shared and
not rotated identities are found; their legitimate twins (active, owned, one playbook,
keys rotated one after another, a fresh key, a disabled workload) are not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.posture.seeded import DAY, NOW, START, TD, Seeded, open_backend
from tests.server.conftest import AGENT, serving
from tests.server.task_fixtures import FINANCE, JOB, PLAYBOOK, TaskApi
from zerolane.audit.events import SYSTEM, Actor
from zerolane.identity.keyring import KeyInfo
from zerolane.posture import inventory as inventory_module
from zerolane.posture.findings import Finding
from zerolane.posture.inventory import (
    Inventory,
    InventoryRow,
    build_inventory,
    concurrent,
)
from zerolane.posture.inventory_findings import (
    InventoryRules,
    inventory_findings,
    signing_key_findings,
)
from zerolane.store.records import AuditRecord, Workload
from zerolane.types import WorkloadStatus

RULES = InventoryRules()


@pytest.fixture(params=["memory", "sqlite"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seeded]:
    stores = open_backend(request.param, tmp_path)
    try:
        yield Seeded(stores)
    finally:
        stores.close()


def seed(home: Seeded) -> dict[str, str]:
    """One workload per case; the names of their SPIFFE IDs."""
    ids: dict[str, str] = {}
    ids["healthy"] = w = home.workload("healthy")
    home.attest(w, NOW - 2 * DAY, "k-healthy")
    home.task(w, NOW - DAY, "reports", "k-healthy")
    home.decision(w, NOW - DAY + 30, "k-healthy", allowed=False)
    home.decision(w, NOW - DAY + 60, "k-healthy")

    ids["dormant"] = w = home.workload("dormant")
    home.attest(w, START + 10 * DAY, "k-dormant")
    home.decision(w, START + 20 * DAY, "k-dormant")

    ids["never_seen"] = home.workload("never-seen")
    ids["new"] = home.workload("new", at=NOW - 5 * DAY)  # never seen, but registered lately
    ids["disabled"] = home.workload("disabled", owner=None, status=WorkloadStatus.DISABLED)

    ids["ownerless"] = w = home.workload("ownerless", owner=None)
    home.attest(w, NOW - DAY, "k-ownerless")

    ids["playbooks"] = w = home.workload("many-playbooks")
    home.attest(w, NOW - 3 * DAY, "k-playbooks")
    for n in range(7):
        home.task(w, NOW - 2 * DAY + n, f"playbook-{n}", "k-playbooks", f"t{n}")

    ids["keys"] = w = home.workload("many-keys")
    for n in range(12):  # twelve hosts at once, each with its own key
        home.attest(w, NOW - 3 * DAY + n, f"k-host-{n}")
    for n in range(12):
        home.decision(w, NOW - DAY + n, f"k-host-{n}")

    ids["rotating"] = w = home.workload("rotating")
    for n in range(12):  # a new key every few days, one at a time
        home.attest(w, NOW - (40 - 3 * n) * DAY, f"k-rot-{n}")
        home.decision(w, NOW - (40 - 3 * n) * DAY + 60, f"k-rot-{n}")

    ids["sources"] = w = home.workload("many-sources", selectors=("jwt_issuer:ci",))
    for n in range(4):  # four pipelines attest as the same workload
        home.attest(w, NOW - DAY + n, "k-ci", "jwt_issuer", issuer="ci", sub=f"repo:org/r{n}")

    ids["stale_key"] = w = home.workload("stale-key")
    home.attest(w, START + DAY, "k-stale")
    home.decision(w, NOW - DAY, "k-stale")  # active, with the key of 99 days ago

    # not activity of any registered workload
    home.event("decision", NOW - DAY, Actor("workload", "unauthenticated"), "unknown")
    home.event("decision", NOW - DAY, Actor("workload", f"{TD}/unregistered"), "t")
    home.event("detection", NOW - DAY, Actor("workload", ids["dormant"]), "t")
    home.event("keys.rotated", START + 50 * DAY, Actor("admin", "cli"), "kid2")
    return ids


def rows(inventory: Inventory) -> dict[str, InventoryRow]:
    return {row.spiffe_id.rpartition("/")[2]: row for row in inventory.rows}


def found(findings: list[Finding]) -> dict[tuple[str, str], Finding]:
    return {(f.rule, (f.subject or "").rpartition("/")[2]): f for f in findings}


def test_each_workload_has_a_row_with_what_the_log_tells(home: Seeded) -> None:
    seed(home)
    inventory = build_inventory(home.stores)
    by_name = rows(inventory)
    assert len(by_name) == 11
    healthy = by_name["healthy"]
    assert (healthy.owner, healthy.status) == ("team-a", WorkloadStatus.ENABLED)
    assert healthy.last_seen == NOW - DAY + 60  # its decision
    assert healthy.last_svid == NOW - 2 * DAY
    assert (healthy.tasks_opened, healthy.playbooks) == (1, ("reports",))
    assert (healthy.attestation, healthy.sources) == (("join_token",), ("join_token",))
    assert (healthy.keys, healthy.concurrent_keys) == (1, 1)
    assert healthy.last_key_rotation == NOW - 2 * DAY
    assert not healthy.truncated
    never = by_name["never-seen"]
    assert (never.last_seen, never.last_svid, never.keys, never.attestation) == (None, None, 0, ())
    assert never.last_key_rotation is None
    assert by_name["dormant"].last_seen == START + 20 * DAY  # its detection is no activity
    assert (by_name["many-keys"].keys, by_name["many-keys"].concurrent_keys) == (12, 12)
    assert (by_name["rotating"].keys, by_name["rotating"].concurrent_keys) == (12, 1)
    assert by_name["many-sources"].sources == tuple(
        f"jwt_issuer:ci:repo:org/r{n}" for n in range(4)
    )
    assert inventory.signing_rotated_at == START + 50 * DAY
    assert inventory.head == home.stores.last_event().seq  # type: ignore[union-attr]
    doc = inventory.as_json()
    assert doc["signing_rotated_at"] == "2027-03-06T08:00:00Z"
    (healthy_doc,) = [r for r in doc["workloads"] if r["spiffe_id"] == healthy.spiffe_id]  # type: ignore[attr-defined]
    assert healthy_doc["last_seen"] == "2027-04-24T08:01:00Z"
    assert healthy_doc["status"] == "enabled"
    assert healthy_doc["playbooks"] == ["reports"]


def test_the_findings_name_the_bad_identities_and_spare_their_twins(home: Seeded) -> None:
    seed(home)
    findings = found(inventory_findings(build_inventory(home.stores), RULES, NOW))
    assert set(findings) == {
        ("inventory.dormant", "dormant"),
        ("inventory.dormant", "never-seen"),
        ("inventory.ownerless", "ownerless"),
        ("inventory.shared_identity", "many-playbooks"),
        ("inventory.shared_identity", "many-keys"),
        ("inventory.shared_identity", "many-sources"),
        ("inventory.never_rotated", "stale-key"),
    }  # healthy, new, disabled and rotating: none
    dormant = findings["inventory.dormant", "dormant"]
    assert dormant.nhi == ("NHI1:2025",)
    assert "last seen 2027-02-04T08:00:00Z" in dormant.message
    assert "zerolane workload disable" in dormant.remedy
    assert "never seen" in findings["inventory.dormant", "never-seen"].message
    assert findings["inventory.ownerless", "ownerless"].nhi == ("NHI1:2025",)
    playbooks = findings["inventory.shared_identity", "many-playbooks"]
    assert playbooks.nhi == ("NHI5:2025", "NHI9:2025")
    assert "7 playbooks" in playbooks.message
    keys = findings["inventory.shared_identity", "many-keys"]
    assert keys.nhi == ("NHI9:2025",)
    assert "12 keys in use at the same time" in keys.message
    assert "4 attestation sources" in findings["inventory.shared_identity", "many-sources"].message
    stale = findings["inventory.never_rotated", "stale-key"]
    assert stale.nhi == ("NHI7:2025",)
    assert stale.details["last_key_rotation"] == "2027-01-16T08:00:00Z"


def test_thresholds_are_settings(home: Seeded) -> None:
    seed(home)
    inventory = build_inventory(home.stores)
    lenient = InventoryRules(
        dormant_after=200 * DAY, max_playbooks=7, max_concurrent_keys=12, max_sources=4,
        max_key_age=100 * DAY,
    )  # fmt: skip
    assert found(inventory_findings(inventory, lenient, NOW)).keys() == {
        ("inventory.ownerless", "ownerless")
    }
    strict = found(inventory_findings(inventory, InventoryRules(dormant_after=DAY), NOW))
    assert ("inventory.dormant", "healthy") not in strict  # seen a minute less than a day ago
    assert ("inventory.dormant", "ownerless") in strict  # seen a day ago to the second
    assert ("inventory.dormant", "disabled") not in strict  # offboarded already
    # a dormant workload is not also told to rotate its key
    assert ("inventory.never_rotated", "dormant") not in strict


@pytest.mark.parametrize(
    "changes",
    [
        {"dormant_after": 0},
        {"max_key_age": -1},
        {"max_playbooks": 0},
        {"max_concurrent_keys": 0},
        {"max_sources": 0},
    ],
)
def test_rules_refuse_thresholds_that_mean_nothing(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be positive|at least 1"):
        InventoryRules(**changes)  # type: ignore[arg-type]


def test_pages_and_the_bound_on_what_is_remembered(
    home: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(home)
    whole = build_inventory(home.stores)
    assert build_inventory(home.stores, page=1) == whole
    monkeypatch.setattr(inventory_module, "MAX_REMEMBERED", 3)
    bounded = rows(build_inventory(home.stores))
    assert len(bounded["many-playbooks"].playbooks) == 3
    assert bounded["many-keys"].keys == 3
    assert len(bounded["many-sources"].sources) == 3
    assert bounded["many-playbooks"].truncated
    assert bounded["many-keys"].truncated
    assert not bounded["healthy"].truncated


def test_an_empty_home_has_an_empty_inventory(home: Seeded) -> None:
    assert build_inventory(home.stores) == Inventory(rows=(), head=0)


def test_the_most_keys_in_use_at_one_time() -> None:
    assert concurrent([]) == 0
    assert concurrent([[0, 10], [10, 20]]) == 2  # the hand-over instant counts both
    assert concurrent([[0, 1], [2, 3], [4, 5]]) == 1
    assert concurrent([[0, 10], [1, 2], [3, 9], [4, 5]]) == 3


class Crafted:
    """Stores whose log holds records no service writes (broken JSON, bad times)."""

    def __init__(self, records: list[AuditRecord]) -> None:
        self.records = records
        self.workload = Workload(f"{TD}/w", (), "o", WorkloadStatus.ENABLED, START, START)

    def list_workloads(self) -> list[Workload]:
        return [self.workload]

    def last_event(self) -> AuditRecord | None:
        return self.records[-1]

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return [r for r in self.records if r.seq > after_seq][:limit]


def crafted(seq: int, body: str, time: str = "2027-01-15T08:00:00.000Z") -> AuditRecord:
    return AuditRecord(seq, f"e{seq}", time, "decision", "success", body, "0", "0")


def test_records_it_cannot_read_are_skipped_and_the_head_bounds_the_pass() -> None:
    actor = f'{{"actor": {{"type": "workload", "id": "{TD}/w"}}}}'
    records = [
        crafted(1, actor, time="not a time"),
        crafted(2, "{not json"),
        crafted(3, "[1, 2]"),
        crafted(4, '{"actor": "someone", "details": []}'),
        crafted(5, actor),
    ]
    stores = Crafted(records)
    (row,) = build_inventory(stores).rows  # type: ignore[arg-type]
    assert row.last_seen == START
    # events appended after the pass began are left for the next scan
    stores.records.append(crafted(6, actor, time="2027-02-15T08:00:00.000Z"))
    head = stores.last_event

    def moving_head() -> AuditRecord:
        return records[4]

    def whole_log(after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return [r for r in records if r.seq > after_seq]  # past its limit, even

    stores.last_event = moving_head  # type: ignore[method-assign]
    stores.read_events = whole_log  # type: ignore[method-assign]
    (row,) = build_inventory(stores, page=10).rows  # type: ignore[arg-type]
    assert row.last_seen == START
    stores.last_event = head  # type: ignore[method-assign]

    def short_log(after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return []  # a log shorter than its head says: the pass ends

    stores.read_events = short_log  # type: ignore[method-assign]
    (row,) = build_inventory(stores).rows  # type: ignore[arg-type]
    assert row.last_seen is None


def test_an_x509_attestation_source_is_its_trust_domain(home: Seeded) -> None:
    w = home.workload("federated")
    home.attest(w, NOW, "k", "x509_svid", trust_domain="partner.example")
    home.event("x509_svid.issued", NOW + 1, SYSTEM, w, {"serial": "1", "exp": NOW + 3600})
    home.event("attestation", NOW + 2, Actor("workload", w), w, {"selectors": []})  # no method
    home.event("task.opened", NOW + 3, Actor("workload", w), "t", {"jkt": "k"})  # no playbook
    (row,) = build_inventory(home.stores).rows
    assert row.sources == ("x509_svid:partner.example",)
    assert row.last_svid == NOW + 1
    assert (row.tasks_opened, row.playbooks, row.last_seen) == (1, (), NOW + 3)


def test_the_signing_key_is_found_when_it_is_older_than_the_most_allowed() -> None:
    old = KeyInfo("kid-old", "ES256", NOW - 91 * DAY)
    (finding,) = signing_key_findings(old, RULES, NOW)
    assert (finding.rule, finding.subject, finding.nhi) == (
        "inventory.never_rotated",
        "signing key kid-old",
        ("NHI7:2025",),
    )
    assert "zerolane keys rotate" in finding.remedy
    assert signing_key_findings(KeyInfo("kid", "ES256", NOW - 89 * DAY), RULES, NOW) == []


def test_the_events_the_services_record_make_the_row(tmp_path: Path) -> None:
    """Through the real API: attested with a join token, a task opened and a request
    decided; the row says so (the events' shapes are the services' own)."""
    with serving(tmp_path / "home") as api:
        tasks = TaskApi(api)
        opened = tasks.opened()
        tasks.decide(opened, "GET", f"{FINANCE}/reports/q3")
        by_id = {row.spiffe_id: row for row in build_inventory(api.deployment.stores).rows}
    row = by_id[AGENT]
    assert (row.attestation, row.sources) == (("join_token",), ("join_token",))
    assert (row.tasks_opened, row.playbooks) == (1, (PLAYBOOK["name"],))
    assert (row.keys, row.concurrent_keys) == (1, 1)
    assert row.last_svid is not None
    assert row.last_seen is not None
    assert row.last_seen >= row.last_svid
    never = by_id[JOB]  # registered, never attested
    assert (never.last_seen, never.tasks_opened, never.keys) == (None, 0, 0)
