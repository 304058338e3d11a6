"""The identity services wired as a deployment wires them, over memory stores and a fixed clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.identity.attestors.cases import FixedClock
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.config import SvidConfig
from zerolane.identity.attestors.join_token import JoinTokenAttestor
from zerolane.identity.join_tokens import JoinTokens
from zerolane.identity.keyring import Keyring
from zerolane.identity.registry import WorkloadRegistry
from zerolane.identity.service import IdentityService
from zerolane.store.memory import MemoryStores

TRUST_DOMAIN = "example.org"
AGENT = "spiffe://example.org/agent"
ADMIN = Actor("admin", "test")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def stores() -> MemoryStores:
    return MemoryStores()


@pytest.fixture
def audit(stores: MemoryStores, clock: FixedClock) -> AuditLog:
    return AuditLog(stores, clock)


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "keys"


@pytest.fixture
def keyring(keys_dir: Path, clock: FixedClock) -> Keyring:
    ring = Keyring(keys_dir, clock)
    ring.create()
    return ring


@pytest.fixture
def registry(stores: MemoryStores, audit: AuditLog, clock: FixedClock) -> WorkloadRegistry:
    return WorkloadRegistry(TRUST_DOMAIN, stores, stores, audit, clock)


@pytest.fixture
def join_tokens(
    stores: MemoryStores, registry: WorkloadRegistry, audit: AuditLog, clock: FixedClock
) -> JoinTokens:
    return JoinTokens(stores, registry, audit, clock)


@pytest.fixture
def svid_config() -> SvidConfig:
    return SvidConfig(default_ttl=300, max_ttl=3600)


@pytest.fixture
def identity(
    keyring: Keyring,
    stores: MemoryStores,
    audit: AuditLog,
    clock: FixedClock,
    svid_config: SvidConfig,
) -> IdentityService:
    return IdentityService(
        trust_domain=TRUST_DOMAIN,
        keyring=keyring,
        workloads=stores,
        attestors=[JoinTokenAttestor(stores, clock, audit)],
        audit=audit,
        clock=clock,
        svid_config=svid_config,
    )


def audit_bodies(stores: MemoryStores) -> list[dict[str, object]]:
    """Every stored audit event, as its JSON body."""
    return [json.loads(r.body) for r in stores.read_events()]
