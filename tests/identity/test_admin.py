"""The admin credential: random, stored only as a hash, checked against every record,
and stored in one write with the event that records it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import zerolane.identity.admin as admin_module
from tests.identity.attestors.cases import FixedClock
from zerolane.audit.events import Actor, Event
from zerolane.audit.log import AuditLog
from zerolane.errors import Unauthenticated, Unavailable
from zerolane.identity.admin import (
    PREFIX,
    CredentialEvent,
    authenticate_admin,
    create_admin_credential,
)
from zerolane.store.memory import MemoryStores
from zerolane.store.records import AdminCredential
from zerolane.store.sqlite import SqliteStores
from zerolane.types import Clock, Outcome

KIND = "home.initialized"


def recorded_by(audit: AuditLog) -> CredentialEvent:
    def event(credential: AdminCredential) -> Event:
        return audit.event(
            KIND,
            Actor("admin", "test"),
            "spiffe://example.org",
            Outcome.SUCCESS,
            details={"admin_credential_id": credential.credential_id},
        )

    return event


def create(stores: MemoryStores | SqliteStores, clock: Clock) -> tuple[str, AdminCredential]:
    return create_admin_credential(stores, clock, recorded_by(AuditLog(stores, clock)))


def test_created_credential_is_stored_as_a_hash(stores: MemoryStores, clock: FixedClock) -> None:
    token, record = create(stores, clock)
    assert token.startswith(PREFIX)
    assert len(token) - len(PREFIX) >= 43  # 256 random bits, base64url
    assert record.credential_hash == hashlib.sha256(token.encode()).hexdigest()
    assert record.created_at == clock.t
    assert stores.list_admin_credentials() == [record]
    assert all(token not in repr(r) for r in stores.list_admin_credentials())


def test_credential_authenticates(stores: MemoryStores, clock: FixedClock) -> None:
    token, record = create(stores, clock)
    assert authenticate_admin(stores, token) == record


def test_each_credential_authenticates_as_itself(stores: MemoryStores, clock: FixedClock) -> None:
    first_token, first = create(stores, clock)
    second_token, second = create(stores, clock)
    assert first_token != second_token
    assert first.credential_id != second.credential_id
    assert authenticate_admin(stores, first_token) == first
    assert authenticate_admin(stores, second_token) == second


@pytest.mark.parametrize(
    "presented",
    [None, "", "zla_", "zla_not-the-right-one", "wrong-prefix"],
)
def test_wrong_or_missing_credential_is_refused(
    stores: MemoryStores, clock: FixedClock, presented: str | None
) -> None:
    token, _ = create(stores, clock)
    with pytest.raises(Unauthenticated) as info:
        authenticate_admin(stores, presented)
    assert info.value.reason == "admin.credential"
    authenticate_admin(stores, token)


def test_hash_of_the_credential_is_not_a_credential(
    stores: MemoryStores, clock: FixedClock
) -> None:
    _, record = create(stores, clock)
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, record.credential_hash)
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, PREFIX + record.credential_hash)


def test_credential_with_its_prefix_stripped_is_refused(
    stores: MemoryStores, clock: FixedClock
) -> None:
    token, _ = create(stores, clock)
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, token.removeprefix(PREFIX))
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, token + "x")


def test_no_credentials_means_nobody_is_admin(stores: MemoryStores) -> None:
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, "zla_anything")


def test_a_credential_is_stored_with_its_event(stores: MemoryStores, clock: FixedClock) -> None:
    token, record = create(stores, clock)
    [event] = [json.loads(r.body) for r in stores.read_events()]
    assert (event["kind"], event["outcome"]) == (KIND, "success")
    assert event["details"] == {"admin_credential_id": record.credential_id}
    assert token not in stores.read_events()[0].body


def test_no_credential_when_its_event_cannot_be_built(
    stores: MemoryStores, clock: FixedClock
) -> None:
    def broken(credential: AdminCredential) -> Event:
        raise RuntimeError("event builder failed")

    with pytest.raises(Unavailable) as refused:
        create_admin_credential(stores, clock, broken)
    assert refused.value.reason == "audit.write"
    assert stores.list_admin_credentials() == []
    assert stores.read_events() == []
    token, record = create(stores, clock)  # the twin
    assert authenticate_admin(stores, token) == record


def test_no_credential_when_the_audit_store_fails(
    stores: MemoryStores, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object, **kwargs: object) -> object:
        raise OSError("audit disk full")

    with monkeypatch.context() as outage:
        outage.setattr(stores, "append_events", down)
        with pytest.raises(Unavailable):
            create(stores, clock)
    assert stores.list_admin_credentials() == []
    token, record = create(stores, clock)
    assert authenticate_admin(stores, token) == record


def test_no_credential_when_its_event_cannot_be_sealed_in_sqlite(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = SqliteStores(tmp_path / "z.db")
    try:

        def failing_seal(*args: object) -> object:
            raise OSError("audit sink gone")

        with monkeypatch.context() as outage:
            outage.setattr(admin_module, "seal", failing_seal)
            with pytest.raises(Unavailable) as refused:
                create(stores, clock)
        assert refused.value.reason == "audit.write"
        assert stores.list_admin_credentials() == []
        assert stores.read_events() == []
        token, record = create(stores, clock)
        assert authenticate_admin(stores, token) == record
        assert [r.kind for r in stores.read_events()] == [KIND]
    finally:
        stores.close()
