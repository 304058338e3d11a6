"""Issuing join tokens: only to registered, enabled workloads; stored as a hash; audited."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

import zerolane.identity.join_tokens as join_tokens_module
from tests.identity.attestors.cases import FixedClock
from tests.identity.conftest import ADMIN, AGENT, audit_bodies
from zerolane.audit.log import AuditLog
from zerolane.audit.masking import fingerprint
from zerolane.errors import Forbidden, InvalidInput, NotFound, Unavailable
from zerolane.identity.attestors.join_token import PREFIX, JoinTokenAttestor, new_join_token
from zerolane.identity.join_tokens import MAX_JOIN_TOKEN_TTL, JoinTokens
from zerolane.identity.registry import WorkloadRegistry
from zerolane.store.memory import MemoryStores
from zerolane.store.records import ConsumeStatus
from zerolane.types import WorkloadStatus


@pytest.fixture
def registered(registry: WorkloadRegistry) -> str:
    registry.register(AGENT, selectors=[], owner=None, actor=ADMIN)
    return AGENT


def test_create_stores_only_the_hash(
    join_tokens: JoinTokens, stores: MemoryStores, clock: FixedClock, registered: str
) -> None:
    issued = join_tokens.create(registered, ttl=600, actor=ADMIN)
    assert issued.token.startswith(PREFIX)
    assert len(issued.token) - len(PREFIX) >= 43  # 256 random bits, base64url
    record = issued.record
    assert record.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert record.token_hash != issued.token
    assert (record.spiffe_id, record.created_at, record.expires_at) == (
        AGENT,
        clock.t,
        clock.t + 600,
    )
    assert record.used_at is None
    # it is stored, and consumable once
    assert stores.consume_join_token(record.token_hash, clock.t).status is ConsumeStatus.CONSUMED


def test_created_token_attests_its_workload(
    join_tokens: JoinTokens, stores: MemoryStores, clock: FixedClock, registered: str
) -> None:
    issued = join_tokens.create(registered, ttl=600, actor=ADMIN)
    attested = JoinTokenAttestor(stores, clock, AuditLog(stores, clock)).attest(issued.token)
    assert attested.spiffe_id == AGENT


def test_creation_is_audited_without_the_token(
    join_tokens: JoinTokens, stores: MemoryStores, registered: str
) -> None:
    issued = join_tokens.create(registered, ttl=600, actor=ADMIN)
    event = audit_bodies(stores)[-1]
    assert (event["kind"], event["outcome"], event["subject"]) == (
        "join_token.created",
        "success",
        AGENT,
    )
    assert event["details"] == {
        "token_id": fingerprint(issued.token),
        "expires_at": issued.record.expires_at,
    }
    assert all(issued.token not in r.body for r in stores.read_events())


def test_tokens_are_unique(join_tokens: JoinTokens, registered: str) -> None:
    tokens = {join_tokens.create(registered, ttl=60, actor=ADMIN).token for _ in range(5)}
    assert len(tokens) == 5


def test_unregistered_workload_gets_no_token(join_tokens: JoinTokens, stores: MemoryStores) -> None:
    with pytest.raises(NotFound) as info:
        join_tokens.create(AGENT, ttl=600, actor=ADMIN)
    assert info.value.reason == "workload.unknown"
    assert audit_bodies(stores) == []


def test_disabled_workload_gets_no_token(
    join_tokens: JoinTokens, registry: WorkloadRegistry, registered: str
) -> None:
    registry.set_status(registered, WorkloadStatus.DISABLED, actor=ADMIN)
    with pytest.raises(Forbidden) as info:
        join_tokens.create(registered, ttl=600, actor=ADMIN)
    assert info.value.reason == "workload.disabled"
    registry.set_status(registered, WorkloadStatus.ENABLED, actor=ADMIN)
    join_tokens.create(registered, ttl=600, actor=ADMIN)


@pytest.mark.parametrize("ttl", [0, -1, MAX_JOIN_TOKEN_TTL + 1])
def test_ttl_out_of_range_is_refused(join_tokens: JoinTokens, registered: str, ttl: int) -> None:
    with pytest.raises(InvalidInput) as info:
        join_tokens.create(registered, ttl=ttl, actor=ADMIN)
    assert info.value.reason == "join_token.ttl"


@pytest.mark.parametrize("ttl", [1, MAX_JOIN_TOKEN_TTL])
def test_ttl_bounds_are_accepted(join_tokens: JoinTokens, registered: str, ttl: int) -> None:
    issued = join_tokens.create(registered, ttl=ttl, actor=ADMIN)
    assert issued.record.expires_at - issued.record.created_at == ttl


def test_a_join_token_whose_event_cannot_be_stored_is_not_usable(
    join_tokens: JoinTokens,
    registered: str,
    stores: MemoryStores,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token and its ``join_token.created`` event are one write: no usable token
    that the audit log does not account for."""
    issued: list[str] = []
    real = new_join_token

    def remembered(*args: Any, **kwargs: Any) -> Any:
        made = real(*args, **kwargs)
        issued.append(made.record.token_hash)
        return made

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(join_tokens_module, "new_join_token", remembered)
    with monkeypatch.context() as outage:
        outage.setattr(stores, "append_events", down)
        with pytest.raises(Unavailable):
            join_tokens.create(registered, ttl=600, actor=ADMIN)
    [lost] = issued
    assert stores.consume_join_token(lost, 0.0).status is ConsumeStatus.UNKNOWN
    join_tokens.create(registered, ttl=600, actor=ADMIN)  # the twin
    assert [e["kind"] for e in audit_bodies(stores)][-1] == "join_token.created"
    assert stores.consume_join_token(issued[1], 0.0).status is ConsumeStatus.CONSUMED
