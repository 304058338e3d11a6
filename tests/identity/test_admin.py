"""The admin credential: random, stored only as a hash, checked against every record."""

from __future__ import annotations

import hashlib

import pytest

from tests.identity.attestors.cases import FixedClock
from zerolane.errors import Unauthenticated
from zerolane.identity.admin import PREFIX, authenticate_admin, create_admin_credential
from zerolane.store.memory import MemoryStores


def test_created_credential_is_stored_as_a_hash(stores: MemoryStores, clock: FixedClock) -> None:
    token, record = create_admin_credential(stores, clock)
    assert token.startswith(PREFIX)
    assert len(token) - len(PREFIX) >= 43  # 256 random bits, base64url
    assert record.credential_hash == hashlib.sha256(token.encode()).hexdigest()
    assert record.created_at == clock.t
    assert stores.list_admin_credentials() == [record]
    assert all(token not in repr(r) for r in stores.list_admin_credentials())


def test_credential_authenticates(stores: MemoryStores, clock: FixedClock) -> None:
    token, record = create_admin_credential(stores, clock)
    assert authenticate_admin(stores, token) == record


def test_each_credential_authenticates_as_itself(stores: MemoryStores, clock: FixedClock) -> None:
    first_token, first = create_admin_credential(stores, clock)
    second_token, second = create_admin_credential(stores, clock)
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
    token, _ = create_admin_credential(stores, clock)
    with pytest.raises(Unauthenticated) as info:
        authenticate_admin(stores, presented)
    assert info.value.reason == "admin.credential"
    authenticate_admin(stores, token)


def test_hash_of_the_credential_is_not_a_credential(
    stores: MemoryStores, clock: FixedClock
) -> None:
    _, record = create_admin_credential(stores, clock)
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, record.credential_hash)
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, PREFIX + record.credential_hash)


def test_credential_with_its_prefix_stripped_is_refused(
    stores: MemoryStores, clock: FixedClock
) -> None:
    token, _ = create_admin_credential(stores, clock)
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, token.removeprefix(PREFIX))
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, token + "x")


def test_no_credentials_means_nobody_is_admin(stores: MemoryStores) -> None:
    with pytest.raises(Unauthenticated):
        authenticate_admin(stores, "zla_anything")
