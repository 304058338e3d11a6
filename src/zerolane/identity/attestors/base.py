"""The attestor plugin point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from zerolane.errors import Unauthenticated


class AttestationError(Unauthenticated):
    """The evidence did not prove an identity; ``reason`` says why."""


@dataclass(frozen=True, slots=True)
class Attested:
    """What an attestor proved.

    ``spiffe_id`` is set when the evidence names the identity itself (join token,
    X.509-SVID); otherwise the registry picks the workload whose selectors match.
    """

    method: str
    selectors: tuple[str, ...]
    spiffe_id: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)


class Attestor(Protocol):
    #: the attestation method name recorded in audit events (``join_token`` ...)
    method: str
    #: the request member carrying this attestor's evidence
    evidence_field: str

    def attest(self, evidence: object) -> Attested:
        """Check ``evidence``; return what it proves or raise :class:`AttestationError`."""
