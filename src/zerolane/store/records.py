"""Plain records the ports store and return. Frozen: a change is a new record."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zerolane.types import TaskState, WorkloadStatus


@dataclass(frozen=True, slots=True)
class Workload:
    spiffe_id: str
    selectors: tuple[str, ...]
    owner: str | None
    status: WorkloadStatus
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class JoinToken:
    """A one-time join token; only its SHA-256 hash is ever stored."""

    token_hash: str
    spiffe_id: str
    created_at: float
    expires_at: float
    used_at: float | None = None


class ConsumeStatus(enum.StrEnum):
    CONSUMED = "consumed"
    UNKNOWN = "unknown"
    ALREADY_USED = "already_used"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    status: ConsumeStatus
    token: JoinToken | None


@dataclass(frozen=True, slots=True)
class FederatedBundle:
    """A SPIFFE trust bundle imported for a federated trust domain."""

    trust_domain: str
    bundle_json: str
    sequence: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class AdminCredential:
    credential_id: str
    credential_hash: str
    created_at: float


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One sealed audit event as stored: ``body`` is the canonical JSON that was hashed."""

    seq: int
    event_id: str
    time: str
    kind: str
    outcome: str
    body: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class PlaybookRecord:
    """An admin-registered intent template; ``document`` is its canonical JSON."""

    name: str
    document: str
    version: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task. ``scope`` and ``authorization_details`` are canonical JSON.

    ``touched`` is the highest sensitivity rank the task has been allowed to touch so far
    (-1 before its first allowed request); ``calls_used`` doubles as the version for
    compare-and-set spending.
    """

    task_id: str
    owner: str
    playbook: str
    playbook_version: int
    intent: str
    scope: str
    authorization_details: str
    jkt: str
    audience: tuple[str, ...]
    state: TaskState
    created_at: float
    expires_at: float
    max_calls: int
    calls_used: int
    touched: int
    token_jti: str
    on_behalf_of: str | None = None
    parent_id: str | None = None
    depth: int = 0
    ended_at: float | None = None
    end_reason: str | None = None
