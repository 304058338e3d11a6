"""Federation: import the trust bundle of another SPIFFE trust domain (SPIRE).

Once a trust domain's bundle is imported, workloads may be registered under it and
attest with X509-SVIDs it issued. A bundle replaces the stored one only when its
``spiffe_sequence`` is not lower (a PEM bundle has sequence 0). Every import,
accepted or refused, is audited as ``federation.bundle_added``; an accepted bundle is
stored in the same write as its event (``PutBundle`` through
:meth:`~zerolane.store.ports.RecordedWrites.write_recorded`), so a trust domain is never
trusted, or its roots replaced, without a record of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Protocol

from cryptography.hazmat.primitives.serialization import Encoding

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, NotFound, ZerolaneError
from zerolane.identity.bundle import TrustBundle, parse_bundle, render_bundle
from zerolane.identity.spiffe_id import parse_trust_domain
from zerolane.store.changes import PutBundle
from zerolane.store.ports import BundleStore, RecordedWrites
from zerolane.store.records import FederatedBundle
from zerolane.types import Clock, Outcome

EVENT = "federation.bundle_added"


class RecordedBundleStore(BundleStore, RecordedWrites, Protocol):
    """The bundle store, written to with each change's event."""


@dataclass(frozen=True, slots=True)
class BundleSummary:
    """What an admin needs to check a bundle: sequence and authority fingerprints."""

    trust_domain: str
    sequence: int
    #: SHA-256 (hex) of each X.509 authority's DER certificate
    x509_authorities: tuple[str, ...]
    #: ``kid`` of each JWT authority
    jwt_authorities: tuple[str, ...]
    updated_at: float

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["x509_authorities"] = list(self.x509_authorities)
        data["jwt_authorities"] = list(self.jwt_authorities)
        return data

    def audit_details(self) -> dict[str, object]:
        # "key_ids", not "jwt_authorities": audit masking hides members named like "jwt"
        return {
            "sequence": self.sequence,
            "x509_authorities": list(self.x509_authorities),
            "key_ids": list(self.jwt_authorities),
        }


def _summarize(trust_domain: str, bundle: TrustBundle, updated_at: float) -> BundleSummary:
    return BundleSummary(
        trust_domain=trust_domain,
        sequence=bundle.sequence,
        x509_authorities=tuple(
            hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
            for cert in bundle.x509_authorities
        ),
        jwt_authorities=tuple(str(key.get("kid")) for key in bundle.jwt_authorities),
        updated_at=updated_at,
    )


def describe(record: FederatedBundle) -> BundleSummary:
    """Summarize a stored bundle."""
    return _summarize(record.trust_domain, parse_bundle(record.bundle_json), record.updated_at)


class Federation:
    """The federated trust domains of this deployment and their bundles."""

    def __init__(
        self, bundles: RecordedBundleStore, audit: AuditLog, clock: Clock, our_trust_domain: str
    ) -> None:
        self._bundles = bundles
        self._audit = audit
        self._clock = clock
        self.trust_domain = our_trust_domain

    def add(self, trust_domain: str, bundle_text: str | bytes, actor: Actor) -> FederatedBundle:
        """Validate and store ``bundle_text`` as the bundle of ``trust_domain``."""
        subject = trust_domain[:2048]
        try:
            name = parse_trust_domain(trust_domain)
            subject = f"spiffe://{name}"
            if name == self.trust_domain:
                raise InvalidInput(
                    "federation.own_trust_domain",
                    "this is our own trust domain, not a federated one",
                )
            bundle = parse_bundle(bundle_text)
            current = self._bundles.get_bundle(name)
            if current is not None and bundle.sequence < current.sequence:
                raise InvalidInput(
                    "federation.stale_bundle",
                    f"spiffe_sequence {bundle.sequence} is lower than the stored "
                    f"{current.sequence}; refusing to roll the bundle back",
                )
            record = FederatedBundle(
                name, render_bundle(bundle), bundle.sequence, self._clock.now()
            )
            added = self._audit.event(
                EVENT,
                actor,
                subject,
                Outcome.SUCCESS,
                details=_summarize(name, bundle, record.updated_at).audit_details(),
            )
            # the bundle and its event in one write: no trust imported without a record
            self._bundles.write_recorded(PutBundle(record), lambda _: [added.unsealed()], seal)
        except ZerolaneError as err:
            self._audit.record(
                EVENT, actor=actor, subject=subject, outcome=Outcome.FAILURE, reason=err.reason
            )
            raise
        return record

    def get(self, trust_domain: str) -> FederatedBundle:
        record = self._bundles.get_bundle(trust_domain)
        if record is None:
            raise NotFound("federation.unknown", f"trust domain {trust_domain!r} is not federated")
        return record

    def list(self) -> list[FederatedBundle]:
        """Every federated trust domain's bundle, ordered by trust domain."""
        return self._bundles.list_bundles()
