"""The NHI inventory of a home: one :class:`InventoryRow` per registered workload.

What the workload store holds (SPIFFE ID, owner, status, when it was registered) is
joined with what the audit log tells of each workload, read in one pass by sequence
number up to the head as it was when the pass began (events appended meanwhile are left
for the next scan), one page at a time:

last seen
    the latest event the workload made as an authenticated actor (an attestation, a
    task opened, a decision on its request, a token renewed...) or that issued it an
    SVID. Detections are not activity (as for the ``dormant`` detector).
attestation
    the methods of its successful attestations (``join_token``, ``jwt_issuer``,
    ``x509_svid``), and the sources they came from: a JWT issuer and the token's
    ``sub``, a federated trust domain, or a join token. A workload never attested shows
    none.
tasks and playbooks
    its ``task.opened`` events, and the playbooks they named.
keys
    the thumbprints (``jkt``) of the keys its SVIDs, task tokens and request proofs
    were bound to, each with when it was first and last used: how many were in use at
    the same time, and when the newest one appeared (its last key rotation).

Memory stays proportional to the workloads: events of an actor that is not a registered
workload are skipped, and each workload remembers at most :data:`MAX_REMEMBERED`
playbooks, sources and keys (a row says ``truncated`` when it had more).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from zerolane.store.ports import AuditStore, WorkloadStore
from zerolane.store.records import AuditRecord, Workload
from zerolane.types import WorkloadStatus

#: most playbooks, attestation sources and keys remembered per workload
MAX_REMEMBERED = 1000
#: events read from the audit log at a time
PAGE = 1000
#: events that are no activity of the workload they name
_NOT_ACTIVITY = frozenset({"detection", "response"})
#: events that carry the key a workload's credential was bound to (``details.jkt``)
_KEYED = frozenset({"svid.issued", "task.opened", "task.token_renewed", "decision"})


@dataclass(slots=True)
class _Seen:
    """What the pass has gathered of one workload so far."""

    last_seen: float | None = None
    last_svid: float | None = None
    tasks_opened: int = 0
    methods: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    playbooks: set[str] = field(default_factory=set)
    #: jkt -> [first used, last used]
    keys: dict[str, list[float]] = field(default_factory=dict)
    truncated: bool = False

    def saw(self, at: float) -> None:
        if self.last_seen is None or at > self.last_seen:
            self.last_seen = at

    def remember(self, into: set[str], value: str) -> None:
        if value in into:
            return
        if len(into) >= MAX_REMEMBERED:
            self.truncated = True
            return
        into.add(value)

    def key(self, jkt: str, at: float) -> None:
        span = self.keys.get(jkt)
        if span is not None:
            span[0], span[1] = min(span[0], at), max(span[1], at)
        elif len(self.keys) >= MAX_REMEMBERED:
            self.truncated = True
        else:
            self.keys[jkt] = [at, at]


@dataclass(frozen=True, slots=True)
class InventoryRow:
    """One workload of the inventory (times are epoch seconds)."""

    spiffe_id: str
    owner: str | None
    status: WorkloadStatus
    selectors: tuple[str, ...]
    created_at: float
    #: None: never seen in the audit log
    last_seen: float | None
    last_svid: float | None
    tasks_opened: int
    playbooks: tuple[str, ...]
    #: attestation methods that succeeded for it, and the sources they came from
    attestation: tuple[str, ...]
    sources: tuple[str, ...]
    #: distinct keys its credentials were bound to, and the most in use at one time
    keys: int
    concurrent_keys: int
    #: when its newest key was first used (None: no key ever seen)
    last_key_rotation: float | None
    #: some playbooks, sources or keys were past :data:`MAX_REMEMBERED`
    truncated: bool = False

    def as_json(self) -> dict[str, object]:
        """The row as JSON values (times as RFC 3339, null when unknown)."""
        return {
            "spiffe_id": self.spiffe_id,
            "owner": self.owner,
            "status": self.status.value,
            "selectors": list(self.selectors),
            "created_at": iso(self.created_at),
            "last_seen": iso(self.last_seen),
            "last_svid": iso(self.last_svid),
            "tasks_opened": self.tasks_opened,
            "playbooks": list(self.playbooks),
            "attestation": list(self.attestation),
            "sources": list(self.sources),
            "keys": self.keys,
            "concurrent_keys": self.concurrent_keys,
            "last_key_rotation": iso(self.last_key_rotation),
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every registered workload's row, by SPIFFE ID, as of the audit event ``head``
    (0: an empty log); ``signing_rotated_at`` is when the trust domain's signing key was
    last rotated according to the log (None: never)."""

    rows: tuple[InventoryRow, ...]
    head: int
    signing_rotated_at: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "head": self.head,
            "signing_rotated_at": iso(self.signing_rotated_at),
            "workloads": [row.as_json() for row in self.rows],
        }


def iso(at: float | None) -> str | None:
    """RFC 3339 UTC to the second, or None."""
    if at is None:
        return None
    return (
        dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def concurrent(spans: Iterable[list[float]]) -> int:
    """The most of ``spans`` ([first, last] each, inclusive) that overlap at one time:
    a workload that rotates its key has one or two, a key shared by many hosts many."""
    edges = sorted(
        [(first, 0) for first, _ in spans] + [(last, 1) for _, last in spans]
    )  # at the same time an opening counts before a closing: [t, t] spans overlap at t
    most = live = 0
    for _, closing in edges:
        live += -1 if closing else 1
        most = max(most, live)
    return most


def _time(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _source(method: str, details: Mapping[str, object]) -> str:
    """Where an attestation came from: its JWT issuer and ``sub``, its federated trust
    domain, or just its method (a join token: one-time, by design from one place)."""
    if method == "jwt_issuer":
        issuer, sub = _text(details.get("issuer")), _text(details.get("sub"))
        return f"jwt_issuer:{issuer or '?'}:{sub or '?'}"
    if method == "x509_svid":
        return f"x509_svid:{_text(details.get('trust_domain')) or '?'}"
    return method


class _Pass:
    """The one pass over the log (see the module docstring)."""

    def __init__(self, workloads: Iterable[str]) -> None:
        self.seen = {spiffe_id: _Seen() for spiffe_id in workloads}
        self.signing_rotated_at: float | None = None

    def read(self, record: AuditRecord) -> None:
        if record.kind in _NOT_ACTIVITY:
            return
        at = _time(record.time)
        if at is None:
            return
        try:
            body = json.loads(record.body)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        actor = body.get("actor")
        actor = actor if isinstance(actor, dict) else {}
        details = body.get("details")
        details = details if isinstance(details, dict) else {}
        subject = _text(body.get("subject"))
        success = record.outcome == "success"
        if record.kind == "keys.rotated" and success:
            self.signing_rotated_at = max(at, self.signing_rotated_at or at)
            return
        if record.kind in ("svid.issued", "x509_svid.issued") and success:
            workload = subject
        elif actor.get("type") == "workload":
            workload = _text(actor.get("id"))
        else:
            return
        seen = self.seen.get(workload or "")
        if seen is None:  # unauthenticated, or not (any more) registered
            return
        seen.saw(at)
        self._facts(seen, record.kind, success, details, at)

    @staticmethod
    def _facts(
        seen: _Seen, kind: str, success: bool, details: Mapping[str, object], at: float
    ) -> None:
        if kind in ("svid.issued", "x509_svid.issued"):
            seen.last_svid = max(at, seen.last_svid or at)
        jkt = _text(details.get("jkt"))
        if jkt is not None and kind in _KEYED:
            seen.key(jkt, at)
        if not success:
            return
        if kind == "attestation":
            method = _text(details.get("method"))
            if method is not None:
                seen.methods.add(method)
                seen.remember(seen.sources, _source(method, details))
        elif kind == "task.opened":
            seen.tasks_opened += 1
            playbook = _text(details.get("playbook"))
            if playbook is not None:
                seen.remember(seen.playbooks, playbook)

    def row(self, workload: Workload) -> InventoryRow:
        seen = self.seen[workload.spiffe_id]
        spans = list(seen.keys.values())
        return InventoryRow(
            spiffe_id=workload.spiffe_id,
            owner=workload.owner or None,
            status=workload.status,
            selectors=workload.selectors,
            created_at=workload.created_at,
            last_seen=seen.last_seen,
            last_svid=seen.last_svid,
            tasks_opened=seen.tasks_opened,
            playbooks=tuple(sorted(seen.playbooks)),
            attestation=tuple(sorted(seen.methods)),
            sources=tuple(sorted(seen.sources)),
            keys=len(spans),
            concurrent_keys=concurrent(spans),
            last_key_rotation=max((first for first, _ in spans), default=None),
            truncated=seen.truncated,
        )


class InventoryStores(WorkloadStore, AuditStore, Protocol):
    """What the inventory reads: the workloads and the audit log."""


def build_inventory(stores: InventoryStores, *, page: int = PAGE) -> Inventory:
    """The inventory of ``stores`` (see the module docstring): the log is read by pages
    of ``page`` events up to its head as it is now."""
    workloads = stores.list_workloads()
    last = stores.last_event()
    head = last.seq if last is not None else 0
    scan = _Pass(w.spiffe_id for w in workloads)
    after = 0
    while after < head:
        batch = stores.read_events(after, min(page, head - after))
        for record in batch:
            if record.seq > head:
                break
            scan.read(record)
        if not batch:
            break
        after = batch[-1].seq
    return Inventory(
        rows=tuple(scan.row(w) for w in workloads),
        head=head,
        signing_rotated_at=scan.signing_rotated_at,
    )
