"""What posture reports: a :class:`Finding`, each mapped to the OWASP Non-Human
Identities Top 10 (2025).

A finding is either somewhere in a file (a long-lived secret: :attr:`Finding.path` and
:attr:`Finding.line`) or about something a home holds (a workload, a grant, a playbook:
:attr:`Finding.subject`). It never carries a secret's value: :attr:`Finding.masked` is
what :func:`mask` leaves of it, and every report renders only that.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from zerolane.frameworks import OWASP_NHI


class Severity(enum.StrEnum):
    """How urgent a finding is (SARIF levels: high is ``error``, medium ``warning``,
    low ``note``)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


#: characters of a secret :func:`mask` keeps at its start: enough to tell two apart
#: (``AKIA`` says an AWS key id), never enough to use
MASK_KEEP = 4
MASK = "****"


def mask(value: str, *, shaped: bool = True) -> str:
    """``value`` masked: its first :data:`MASK_KEEP` characters when it is at least
    four times as long and ``shaped`` (a provider's token, whose start names its kind:
    ``ghp_``, ``AKIA``), else nothing of it; then :data:`MASK`. A value known only by
    the key it is stored under (a password) shows nothing: its start would be a hint
    to whoever guesses it."""
    if shaped and len(value) >= 4 * MASK_KEEP:
        return value[:MASK_KEEP] + MASK
    return MASK


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing posture found.

    ``rule`` names what was found (``secret.<type>``, ``inventory.<what>``,
    ``config.<what>``); ``nhi`` its OWASP NHI Top 10 (2025) ids (``NHI7:2025``);
    ``remedy`` the zerolane replacement (a workload and a grant broker or an injected
    credential, an owner, offboarding)."""

    rule: str
    title: str
    severity: Severity
    nhi: tuple[str, ...]
    message: str
    remedy: str
    #: where in a file (relative to the scanned root as given), 1-based line
    path: str | None = None
    line: int | None = None
    #: what a home holds that the finding is about (a SPIFFE ID, a grant, a playbook)
    subject: str | None = None
    #: the kind of secret (``AWS Access Key``, ``GitHub Token``), for secret findings
    secret_type: str | None = None
    #: the secret as :func:`mask` left it
    masked: str | None = None
    #: more facts, as JSON values (never a secret)
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [entry for entry in self.nhi if entry not in OWASP_NHI.entries]
        if unknown or not self.nhi:
            raise ValueError(f"finding {self.rule}: unknown OWASP NHI ids {unknown}")

    def sort_key(self) -> tuple[str, int, str, str]:
        """Files first in path and line order, then subjects, then rule."""
        return (self.path or "\uffff", self.line or 0, self.subject or "", self.rule)


@dataclass(frozen=True, slots=True)
class Note:
    """Something a scan could not look at (a file it could not read, a folder it could
    not list) and why: every report lists them, so a clean result says what it covered."""

    where: str
    reason: str
