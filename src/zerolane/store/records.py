"""Plain records the ports store and return. Frozen: a change is a new record."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, fields

from zerolane.errors import InvalidInput
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


@dataclass(frozen=True, slots=True)
class SpentProof:
    """A one-time proof (a DPoP proof's ``jkt:jti``) as the stores remember it: a
    128-bit BLAKE2b digest of its key, and when it may be forgotten (the proof is too
    old to be accepted anywhere by then)."""

    digest: bytes
    expires_at: float

    @classmethod
    def of(cls, key: str, expires_at: float) -> SpentProof:
        return cls(hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest(), expires_at)


@dataclass(frozen=True, slots=True)
class Spend:
    """One call of a task spent by an allowed decision, compare-and-set (see
    :meth:`~zerolane.store.ports.TaskStore.spend_call`): only while the task is active,
    unexpired at ``now``, has calls left and still holds the expected values."""

    task_id: str
    expected_calls_used: int
    expected_max_calls: int
    expected_touched: int
    #: the sensitivity rank of the call (``touched`` is raised to at least it)
    touched: int
    now: float
    #: the request's one-time proof, spent in the same write (None: none to spend)
    proof: SpentProof | None = None


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
class EnforcementPoint:
    """An enforcement point that asks ``POST /v1/decide`` (a proxy's forward-auth, a
    tool runtime's guard...): known by its credential (stored only as its SHA-256
    hash), and allowed to ask only about requests to its own public ``urls`` (URL
    prefixes, normalized as DPoP ``htu`` values are)."""

    name: str
    credential_hash: str
    urls: tuple[str, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class DetectorCursor:
    """Where one detector is in the audit log: every event with ``seq <= seq`` has been
    seen by it, and ``state`` (JSON text) is what it remembers of them (its open
    windows), so a restarted detector goes on exactly where it stopped."""

    detector: str
    seq: int
    state: str
    updated_at: float


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
    compare-and-set spending. ``max_calls`` is what the task itself may still spend in
    all: delegating a child carves the child's budget out of it.
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
    #: why it ended; while ``suspended``, why it was suspended (``parent.suspended`` for
    #: a task suspended with its parent: the mark a resume follows); None while active
    end_reason: str | None = None
    #: the person the task acts for, verified from an OIDC ID token (its ``sub`` and
    #: ``iss``); a delegated task inherits it. Never from the free-text ``on_behalf_of``.
    user_subject: str | None = None
    user_issuer: str | None = None


class RevocationKind(enum.StrEnum):
    """What a revocation event says about its tasks."""

    ENDED = "ended"  # completed or expired: nothing more is allowed
    REVOKED = "revoked"  # ended by an admin, a detector or a cascade
    SUSPENDED = "suspended"  # nothing is allowed until a later ``resumed``
    RESUMED = "resumed"  # a suspension is lifted (never undoes ended/revoked)

    @property
    def terminal(self) -> bool:
        return self in (RevocationKind.ENDED, RevocationKind.REVOKED)


#: bounds of one event on the wire (a network bus refuses anything bigger)
MAX_EVENT_TASKS = 1000
MAX_EVENT_TEXT = 256


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """One message on the revocation bus: small, serializable, ordered by ``sequence``.

    ``sequence`` is assigned by the bus on publish (0 before); a subscriber that sees a
    gap in it has missed events and must not trust what it cached before the gap.
    """

    task_ids: tuple[str, ...]
    kind: RevocationKind
    reason: str
    at: float
    sequence: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "seq": self.sequence,
                "kind": self.kind.value,
                "tasks": list(self.task_ids),
                "reason": self.reason,
                "at": self.at,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RevocationEvent:
        """Parse and validate a message; ``InvalidInput`` (``revocation.malformed``)."""
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("v") != 1:
                raise ValueError("not a version 1 revocation event")
            tasks, seq, at, reason = doc["tasks"], doc["seq"], doc["at"], doc["reason"]
            if not (
                isinstance(tasks, list)
                and 0 < len(tasks) <= MAX_EVENT_TASKS
                and all(isinstance(t, str) and 0 < len(t) <= MAX_EVENT_TEXT for t in tasks)
            ):
                raise ValueError("tasks must be a list of task ids")
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise ValueError("seq must be a non-negative integer")
            if isinstance(at, bool) or not isinstance(at, int | float):
                raise ValueError("at must be a number")
            if not isinstance(reason, str) or len(reason) > MAX_EVENT_TEXT:
                raise ValueError("reason must be a short string")
            return cls(tuple(tasks), RevocationKind(doc["kind"]), reason, float(at), seq)
        except (ValueError, KeyError, TypeError) as err:
            raise InvalidInput("revocation.malformed", f"not a revocation event: {err}") from err


@dataclass(frozen=True, slots=True)
class BusHealth:
    """How a subscriber's link to the revocation bus is doing.

    ``last_seen`` is the last time the bus proved reachable (a message, a heartbeat or
    a successful connect), None when it never has: past the grace window after it,
    enforcement points fail closed.
    """

    connected: bool
    last_seen: float | None


class LeaseState(enum.StrEnum):
    """Where a grant's lease is. ``failed`` is a revocation that did not succeed yet:
    it is retried and stays listed until it does."""

    ACTIVE = "active"
    REVOKING = "revoking"
    REVOKED = "revoked"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One downstream credential minted for a task. ``handle`` names it at the broker
    (a role name, a key id), never the secret itself."""

    lease_id: str
    task_id: str
    broker: str
    handle: str
    state: LeaseState
    created_at: float
    expires_at: float
    updated_at: float
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: float | None = None
    end_reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Every field by name, the state as its value (a stored row, a JSON listing)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"state": self.state.value}


class ApprovalStatus(enum.StrEnum):
    """Where a human approval is (:mod:`zerolane.tasks.approvals`). ``expired`` is never
    stored: a pending or approved approval past its ``expires_at`` reads as expired."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One request a policy asked a human to approve, bound to exactly that request: the
    task, action, resource, destination, the digest of its arguments (SHA-256 hex) and
    the policy set version that asked. Usable once, before ``expires_at``."""

    approval_id: str
    task_id: str
    action: str
    resource: str
    destination: str
    digest: str
    policy_version: str
    #: the @ids of the approval policies that asked (JSON list in SQL)
    policies: tuple[str, ...]
    #: the workload (SPIFFE ID) whose request asked
    requester: str
    status: ApprovalStatus
    created_at: float
    expires_at: float
    decided_at: float | None = None
    approver: str | None = None
    reason: str | None = None
    used_at: float | None = None
    #: what the approver is shown of the request: JSON text of a masked preview
    #: (:mod:`zerolane.tasks.approval_preview`), never the secrets it held; None when
    #: the enforcement point gave none
    preview: str | None = None

    def status_at(self, now: float) -> ApprovalStatus:
        """The status as it reads at ``now``: pending or approved past its expiry is
        expired."""
        live = self.status in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED)
        return ApprovalStatus.EXPIRED if live and now >= self.expires_at else self.status

    def same_request(self, other: ApprovalRecord) -> bool:
        """Both bind the same request (task, action, resource, destination, digest and
        policy version) asked by the same policies (an approval asked before a response
        held its task does not stand for one the hold asks: its approver was not shown
        ``response:<rule>``)."""
        return (
            self.task_id,
            self.action,
            self.resource,
            self.destination,
            self.digest,
            self.policy_version,
            self.policies,
        ) == (
            other.task_id,
            other.action,
            other.resource,
            other.destination,
            other.digest,
            other.policy_version,
            other.policies,
        )


@dataclass(frozen=True, slots=True)
class TaskHold:
    """A task each of whose requests needs a human approval (a response rule's
    ``require_approval``, :mod:`zerolane.tasks.holds`), until an admin clears it."""

    task_id: str
    #: the response rule that placed it
    rule: str
    #: the detector and the id of the detection event that matched the rule
    detector: str
    detection: str
    created_at: float
