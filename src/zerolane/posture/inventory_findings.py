"""What the inventory (:mod:`zerolane.posture.inventory`) shows is wrong, as findings
mapped to the OWASP NHI Top 10 (2025).

``inventory.ownerless``
    an enabled workload with no owner. NHI1 (Improper Offboarding): nobody is
    accountable for it, so nobody offboards it when its service goes away.
``inventory.dormant``
    an enabled workload not seen for ``dormant_after`` (one never seen counts from its
    registration). NHI1: an identity nobody uses any more is one left to be taken over.
``inventory.shared_identity``
    one workload used by more playbooks, at once by more keys, or attested from more
    sources than its thresholds. NHI9 (NHI Reuse): one identity standing for several
    applications, hosts or pipelines; with many playbooks also NHI5 (Overprivileged
    NHI), since it holds the union of what they allow.
``inventory.never_rotated``
    an active workload whose newest key is older than ``max_key_age`` (it re-attests
    with the same key), or a trust domain's signing key that old. NHI7 (Long-Lived
    Secrets).

A disabled workload is offboarded already: it is listed, but no rule applies to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from zerolane.identity.keyring import KeyInfo
from zerolane.posture.findings import Finding, Severity
from zerolane.posture.inventory import Inventory, InventoryRow, iso
from zerolane.types import WorkloadStatus

DAY = 86400.0
OWNERLESS = "inventory.ownerless"
DORMANT = "inventory.dormant"
SHARED = "inventory.shared_identity"
NEVER_ROTATED = "inventory.never_rotated"


@dataclass(frozen=True, slots=True)
class InventoryRules:
    """The thresholds of the rules (seconds for ages)."""

    #: not seen for this long: dormant (``zerolane posture scan --dormant-after``; the
    #: CLI's default is the home's ``[detection.dormant] days``)
    dormant_after: float = 30 * DAY
    #: more distinct playbooks than this for one workload: shared
    max_playbooks: int = 5
    #: more keys in use at the same time than this: shared (SPIFFE replicas of one
    #: service share an ID, each with its own key: set it above your replica count)
    max_concurrent_keys: int = 10
    #: more distinct attestation sources (JWT issuer and subject, federated trust
    #: domain) than this: shared
    max_sources: int = 3
    #: a workload's newest key, or the signing key, older than this: not rotated
    max_key_age: float = 90 * DAY

    def __post_init__(self) -> None:
        if self.dormant_after <= 0 or self.max_key_age <= 0:
            raise ValueError("dormant_after and max_key_age must be positive")
        if min(self.max_playbooks, self.max_concurrent_keys, self.max_sources) < 1:
            raise ValueError("the thresholds of shared identities are at least 1")


def _days(seconds: float) -> str:
    return f"{seconds / DAY:.0f} days"


def _ownerless(row: InventoryRow) -> Finding | None:
    if row.owner is not None:
        return None
    return Finding(
        rule=OWNERLESS,
        title="Workload without an owner",
        severity=Severity.MEDIUM,
        nhi=("NHI1:2025",),  # nobody accountable: nobody offboards it
        message=f"{row.spiffe_id} has no owner: nobody is accountable for it or will "
        "offboard it when its service goes away",
        remedy="name the team accountable for it: disable it (zerolane workload disable) "
        "and register it again with --owner TEAM",
        subject=row.spiffe_id,
        details={"created_at": iso(row.created_at)},
    )


def _dormant(row: InventoryRow, rules: InventoryRules, now: float) -> Finding | None:
    since = row.last_seen if row.last_seen is not None else row.created_at
    if now - since < rules.dormant_after:
        return None
    seen = (
        f"last seen {iso(row.last_seen)}"
        if row.last_seen is not None
        else f"never seen since it was registered {iso(row.created_at)}"
    )
    return Finding(
        rule=DORMANT,
        title="Dormant workload identity",
        severity=Severity.MEDIUM,
        nhi=("NHI1:2025",),  # an identity left enabled after its use ended
        message=f"{row.spiffe_id} is enabled but {seen}, more than "
        f"{_days(rules.dormant_after)} ago",
        remedy="offboard it: zerolane workload disable (it can no longer attest, and its "
        "live tasks are revoked); register it again if it comes back",
        subject=row.spiffe_id,
        details={
            "last_seen": iso(row.last_seen),
            "created_at": iso(row.created_at),
            "dormant_after_days": round(rules.dormant_after / DAY, 2),
        },
    )


def _shared(row: InventoryRow, rules: InventoryRules) -> Finding | None:
    reasons: list[str] = []
    nhi = ["NHI9:2025"]  # one identity for several apps, hosts or pipelines
    if len(row.playbooks) > rules.max_playbooks:
        reasons.append(f"{len(row.playbooks)} playbooks (more than {rules.max_playbooks})")
        nhi.append("NHI5:2025")  # it holds the union of what they allow
    if row.concurrent_keys > rules.max_concurrent_keys:
        reasons.append(
            f"{row.concurrent_keys} keys in use at the same time "
            f"(more than {rules.max_concurrent_keys})"
        )
    if len(row.sources) > rules.max_sources:
        reasons.append(f"{len(row.sources)} attestation sources (more than {rules.max_sources})")
    if not reasons:
        return None
    return Finding(
        rule=SHARED,
        title="One workload identity shared",
        severity=Severity.MEDIUM,
        nhi=tuple(sorted(nhi)),
        message=f"{row.spiffe_id} is used by {', '.join(reasons)}",
        remedy="give each application, pipeline or host group its own workload "
        "(zerolane workload register with selectors that match only it) and each its "
        "own playbooks",
        subject=row.spiffe_id,
        details={
            "playbooks": list(row.playbooks),
            "concurrent_keys": row.concurrent_keys,
            "keys": row.keys,
            "sources": list(row.sources),
        },
    )


def _workload_key(row: InventoryRow, rules: InventoryRules, now: float) -> Finding | None:
    newest = row.last_key_rotation
    active = row.last_seen is not None and now - row.last_seen < rules.dormant_after
    if newest is None or not active or now - newest < rules.max_key_age:
        return None  # no key, a dormant workload (its own finding) or a fresh key
    return Finding(
        rule=NEVER_ROTATED,
        title="Workload key not rotated",
        severity=Severity.LOW,
        nhi=("NHI7:2025",),  # a key kept for months is a long-lived secret
        message=f"{row.spiffe_id} has used no new key since {iso(newest)}, more than "
        f"{_days(rules.max_key_age)} ago",
        remedy="restart the workload so that it attests with a fresh key (the SDK makes "
        "one per client); its SVIDs and task tokens are bound to it",
        subject=row.spiffe_id,
        details={"last_key_rotation": iso(newest), "max_key_age_days": rules.max_key_age / DAY},
    )


def inventory_findings(inventory: Inventory, rules: InventoryRules, now: float) -> list[Finding]:
    """The findings about the enabled workloads of ``inventory`` at ``now``."""
    found: list[Finding] = []
    for row in inventory.rows:
        if row.status is not WorkloadStatus.ENABLED:
            continue  # offboarded already
        for finding in (
            _ownerless(row),
            _dormant(row, rules, now),
            _shared(row, rules),
            _workload_key(row, rules, now),
        ):
            if finding is not None:
                found.append(finding)
    return found


def signing_key_findings(active: KeyInfo, rules: InventoryRules, now: float) -> list[Finding]:
    """A finding when the trust domain's active signing key is older than
    ``max_key_age``."""
    if now - active.created_at < rules.max_key_age:
        return []
    return [
        Finding(
            rule=NEVER_ROTATED,
            title="Signing key not rotated",
            severity=Severity.MEDIUM,
            nhi=("NHI7:2025",),  # it signs every SVID and task token
            message=f"the trust domain's signing key {active.kid} signs since "
            f"{iso(active.created_at)}, more than {_days(rules.max_key_age)} ago",
            remedy="zerolane keys rotate (the old key stays published until the tokens "
            "it signed have expired)",
            subject=f"signing key {active.kid}",
            details={"created_at": iso(active.created_at)},
        )
    ]
