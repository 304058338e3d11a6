"""The one suite every store backend must pass (see ``conftest.BACKENDS``)."""

from __future__ import annotations

import threading

import pytest

from zerolane.audit.chain import seal, verify
from zerolane.audit.events import SYSTEM, Event
from zerolane.errors import Conflict
from zerolane.store.ports import GENESIS_HASH, Stores
from zerolane.store.records import (
    AdminCredential,
    AuditRecord,
    ConsumeStatus,
    FederatedBundle,
    JoinToken,
    Workload,
)
from zerolane.store.sqlite.migrations import LATEST
from zerolane.types import Outcome, WorkloadStatus

NOW = 1_800_000_000.0


def workload(spiffe_id: str, *, at: float = NOW) -> Workload:
    return Workload(
        spiffe_id=spiffe_id,
        selectors=("k8s:ns:prod", "k8s:sa:agent"),
        owner="team-a",
        status=WorkloadStatus.ENABLED,
        created_at=at,
        updated_at=at,
    )


def join_token(token_hash: str = "a" * 64, *, expires_at: float = NOW + 600) -> JoinToken:
    return JoinToken(
        token_hash=token_hash,
        spiffe_id="spiffe://example.org/agent",
        created_at=NOW,
        expires_at=expires_at,
    )


def unsealed(n: int) -> dict[str, object]:
    return Event(
        kind=f"test.event{n}",
        actor=SYSTEM,
        subject=f"spiffe://example.org/w{n}",
        outcome=Outcome.SUCCESS,
        reason="ok",
        time=NOW + n,
    ).unsealed()


# workloads


def test_added_workload_is_returned_as_stored(stores: Stores) -> None:
    record = workload("spiffe://example.org/agent")
    stores.add_workload(record)
    assert stores.get_workload("spiffe://example.org/agent") == record


def test_adding_a_workload_twice_is_a_conflict(stores: Stores) -> None:
    stores.add_workload(workload("spiffe://example.org/agent"))
    with pytest.raises(Conflict) as info:
        stores.add_workload(workload("spiffe://example.org/agent", at=NOW + 1))
    assert info.value.reason == "workload.exists"
    # the first registration is untouched
    stored = stores.get_workload("spiffe://example.org/agent")
    assert stored is not None
    assert stored.created_at == NOW
    # a different ID is still accepted
    stores.add_workload(workload("spiffe://example.org/other"))


def test_unknown_workload_is_none(stores: Stores) -> None:
    stores.add_workload(workload("spiffe://example.org/agent"))
    assert stores.get_workload("spiffe://example.org/nobody") is None


def test_workloads_are_listed_ordered_by_spiffe_id(stores: Stores) -> None:
    ids = ["spiffe://example.org/c", "spiffe://example.org/a", "spiffe://example.org/b"]
    for spiffe_id in ids:
        stores.add_workload(workload(spiffe_id))
    assert [w.spiffe_id for w in stores.list_workloads()] == sorted(ids)


def test_empty_store_lists_nothing(stores: Stores) -> None:
    assert stores.list_workloads() == []
    assert stores.list_bundles() == []
    assert stores.list_admin_credentials() == []
    assert stores.read_events() == []
    assert stores.last_event() is None


def test_set_status_returns_and_stores_the_updated_record(stores: Stores) -> None:
    stores.add_workload(workload("spiffe://example.org/agent"))
    updated = stores.set_workload_status(
        "spiffe://example.org/agent", WorkloadStatus.DISABLED, NOW + 5
    )
    assert updated is not None
    assert updated.status is WorkloadStatus.DISABLED
    assert updated.updated_at == NOW + 5
    assert updated.created_at == NOW
    assert stores.get_workload("spiffe://example.org/agent") == updated


def test_set_status_of_unknown_workload_is_none(stores: Stores) -> None:
    result = stores.set_workload_status("spiffe://example.org/nobody", WorkloadStatus.DISABLED, 1)
    assert result is None
    assert stores.get_workload("spiffe://example.org/nobody") is None


# join tokens


def test_join_token_is_consumed_once(stores: Stores) -> None:
    stores.add_join_token(join_token())
    first = stores.consume_join_token("a" * 64, NOW + 1)
    assert first.status is ConsumeStatus.CONSUMED
    assert first.token is not None
    assert first.token.used_at == NOW + 1
    assert first.token.spiffe_id == "spiffe://example.org/agent"

    again = stores.consume_join_token("a" * 64, NOW + 2)
    assert again.status is ConsumeStatus.ALREADY_USED
    assert again.token is not None
    assert again.token.used_at == NOW + 1  # the first use is kept


def test_expired_join_token_is_refused_and_stays_unused(stores: Stores) -> None:
    stores.add_join_token(join_token(expires_at=NOW + 600))
    result = stores.consume_join_token("a" * 64, NOW + 600)  # the window ends at expires_at
    assert result.status is ConsumeStatus.EXPIRED
    assert result.token is not None
    assert result.token.used_at is None


def test_join_token_is_consumable_until_just_before_expiry(stores: Stores) -> None:
    stores.add_join_token(join_token(expires_at=NOW + 600))
    assert stores.consume_join_token("a" * 64, NOW + 599.5).status is ConsumeStatus.CONSUMED


def test_unknown_join_token(stores: Stores) -> None:
    stores.add_join_token(join_token())
    result = stores.consume_join_token("b" * 64, NOW)
    assert result.status is ConsumeStatus.UNKNOWN
    assert result.token is None


def test_adding_a_join_token_twice_is_a_conflict(stores: Stores) -> None:
    stores.add_join_token(join_token())
    with pytest.raises(Conflict) as info:
        stores.add_join_token(join_token())
    assert info.value.reason == "join_token.exists"
    stores.add_join_token(join_token("c" * 64))


def test_concurrent_consumers_get_exactly_one_consumed(stores: Stores) -> None:
    threads_count = 8
    stores.add_join_token(join_token())
    barrier = threading.Barrier(threads_count)
    results: list[ConsumeStatus] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def consume() -> None:
        try:
            barrier.wait(timeout=10)
            status = stores.consume_join_token("a" * 64, NOW + 1).status
        except BaseException as err:
            with lock:
                errors.append(err)
            return
        with lock:
            results.append(status)

    threads = [threading.Thread(target=consume) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == sorted(
        [ConsumeStatus.CONSUMED] + [ConsumeStatus.ALREADY_USED] * (threads_count - 1)
    )


# federation bundles


def bundle(trust_domain: str, sequence: int = 1) -> FederatedBundle:
    return FederatedBundle(
        trust_domain=trust_domain,
        bundle_json=f'{{"keys": [], "spiffe_sequence": {sequence}}}',
        sequence=sequence,
        updated_at=NOW + sequence,
    )


def test_bundle_put_get_replace_list(stores: Stores) -> None:
    stores.put_bundle(bundle("partner.example"))
    stores.put_bundle(bundle("acme.example"))
    assert stores.get_bundle("partner.example") == bundle("partner.example")

    stores.put_bundle(bundle("partner.example", sequence=2))
    assert stores.get_bundle("partner.example") == bundle("partner.example", sequence=2)
    assert stores.list_bundles() == [bundle("acme.example"), bundle("partner.example", 2)]
    assert stores.get_bundle("nobody.example") is None


# admin credentials


def test_admin_credentials_are_listed_in_creation_order(stores: Stores) -> None:
    second = AdminCredential("id-b", "1" * 64, NOW + 1)
    first = AdminCredential("id-a", "2" * 64, NOW)
    stores.add_admin_credential(first)
    stores.add_admin_credential(second)
    assert stores.list_admin_credentials() == [first, second]


# audit chain


def test_append_assigns_sequence_and_links_the_chain(stores: Stores) -> None:
    first = stores.append_events([unsealed(1)], seal)
    rest = stores.append_events([unsealed(2), unsealed(3)], seal)
    records = first + rest
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert records[1].prev_hash == records[0].hash
    assert records[2].prev_hash == records[1].hash
    assert stores.read_events() == records
    assert verify(stores.read_events()) == (3, None)


def test_appended_record_is_stored_exactly(stores: Stores) -> None:
    event = unsealed(1)
    [record] = stores.append_events([event], seal)
    assert record == seal(event, 1, GENESIS_HASH)
    assert stores.read_events() == [record]


def test_read_events_after_and_limit(stores: Stores) -> None:
    stores.append_events([unsealed(n) for n in range(1, 6)], seal)
    assert [r.seq for r in stores.read_events(after_seq=2)] == [3, 4, 5]
    assert [r.seq for r in stores.read_events(after_seq=1, limit=2)] == [2, 3]
    assert stores.read_events(after_seq=5) == []
    assert [r.seq for r in stores.read_events(limit=1)] == [1]


def test_last_event(stores: Stores) -> None:
    assert stores.last_event() is None
    records = stores.append_events([unsealed(1), unsealed(2)], seal)
    assert stores.last_event() == records[-1]


def test_appending_nothing_stores_nothing(stores: Stores) -> None:
    assert stores.append_events([], seal) == []
    assert stores.last_event() is None
    [record] = stores.append_events([unsealed(1)], seal)
    assert record.seq == 1


class SealerFailure(Exception):
    pass


def test_batch_append_is_all_or_none(stores: Stores) -> None:
    [before] = stores.append_events([unsealed(0)], seal)
    calls = 0

    def flaky_seal(event: dict[str, object], seq: int, prev_hash: str) -> AuditRecord:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise SealerFailure("sealer broke mid-batch")
        return seal(event, seq, prev_hash)

    with pytest.raises(SealerFailure):
        stores.append_events([unsealed(1), unsealed(2), unsealed(3)], flaky_seal)
    assert calls == 2
    assert stores.read_events() == [before]
    assert stores.last_event() == before

    # the chain continues where it was, without a gap
    after = stores.append_events([unsealed(1), unsealed(2)], seal)
    assert [r.seq for r in after] == [2, 3]
    assert after[0].prev_hash == before.hash
    assert verify(stores.read_events()) == (3, None)


def test_schema_version(stores: Stores) -> None:
    assert stores.schema_version() == LATEST
