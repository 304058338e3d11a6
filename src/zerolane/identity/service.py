"""Attestation: evidence in, a JWT-SVID out (and an X.509-SVID for a CSR), every step
audited.

With a ``csr`` the workload also gets an X.509-SVID from the trust domain's CA
(:mod:`zerolane.identity.ca`): its SPIFFE ID is the attested one, never anything the
CSR names; the CSR only contributes its public key, whose possession its signature
proves. The CSR is checked before the evidence, so a bad CSR burns no join token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Forbidden, InvalidInput, ZerolaneError
from zerolane.identity import svid
from zerolane.identity.attestors.base import AttestationError, Attested, Attestor
from zerolane.identity.ca import IssuedX509Svid, PublicKey, X509Authority, parse_csr
from zerolane.identity.keyring import Keyring
from zerolane.identity.selectors import matches
from zerolane.identity.spiffe_id import parse_spiffe_id
from zerolane.identity.workload_key import key_thumbprint
from zerolane.settings.identity import SvidConfig
from zerolane.store.ports import WorkloadStore
from zerolane.store.records import Workload
from zerolane.types import Clock, Outcome, WorkloadStatus

MAX_AUDIENCES = 16


@dataclass(frozen=True, slots=True)
class AttestRequest:
    """Evidence (exactly one attestor's field), plus what the SVID should carry."""

    evidence: Mapping[str, object]
    public_jwk: Mapping[str, object] | None = None
    audience: Sequence[str] | None = None
    ttl: int | None = None
    spiffe_id: str | None = None
    #: a PEM PKCS#10 request: also issue an X.509-SVID for its key
    csr: str | None = None


@dataclass(frozen=True, slots=True)
class Attestation:
    """What one attestation issued: the JWT-SVID, and the X.509-SVID asked for by a CSR."""

    svid: svid.IssuedSvid
    x509: IssuedX509Svid | None = None


class IdentityService:
    def __init__(
        self,
        *,
        trust_domain: str,
        keyring: Keyring,
        workloads: WorkloadStore,
        attestors: Sequence[Attestor],
        audit: AuditLog,
        clock: Clock,
        svid_config: SvidConfig,
        x509_ca: X509Authority | None = None,
    ) -> None:
        self.trust_domain = trust_domain
        self._keyring = keyring
        self._workloads = workloads
        self._attestors = {a.evidence_field: a for a in attestors}
        self._audit = audit
        self._clock = clock
        self._svid = svid_config
        self._x509 = x509_ca

    @property
    def evidence_fields(self) -> tuple[str, ...]:
        return tuple(self._attestors)

    def attest(self, request: AttestRequest) -> svid.IssuedSvid:
        """Attest and return the JWT-SVID (see :meth:`attest_all` for a CSR's X.509-SVID)."""
        return self.attest_all(request).svid

    def attest_all(self, request: AttestRequest) -> Attestation:
        """Attest; issue a JWT-SVID, plus an X.509-SVID when ``request.csr`` is set."""
        present = [f for f in self._attestors if request.evidence.get(f) is not None]
        method = present[0] if len(present) == 1 else "unknown"
        try:
            if len(present) != 1:
                raise InvalidInput(
                    "attest.evidence",
                    f"send exactly one of: {', '.join(self._attestors)}",
                )
            attestor = self._attestors[present[0]]
            method = attestor.method
            # Check the rest of the request first: bad input must not burn a join token.
            jkt = key_thumbprint(request.public_jwk) if request.public_jwk is not None else None
            audience = self._audience(request.audience)
            ttl = self._ttl(request.ttl)
            csr_key = self._csr(request.csr)
            attested = attestor.attest(request.evidence[present[0]])
            workload = self._match(attested, request.spiffe_id)
            issued = svid.issue(
                self._keyring,
                self._clock,
                spiffe_id=workload.spiffe_id,
                audience=audience,
                ttl=ttl,
                jkt=jkt,
            )
            x509_svid = (
                self._issue_x509(csr_key, workload.spiffe_id, request.ttl)
                if csr_key is not None
                else None
            )
        except ZerolaneError as err:
            self._audit.record(
                "attestation",
                actor=Actor("workload", "unauthenticated"),
                subject=request.spiffe_id or "unknown",
                outcome=Outcome.DENIED,
                reason=err.reason,
                details={"method": method},
            )
            raise
        actor = Actor("workload", workload.spiffe_id)
        x509_events = []
        if x509_svid is not None:
            x509_events.append(
                self._audit.event(
                    "x509_svid.issued",
                    Actor("system", "zerolane"),
                    workload.spiffe_id,
                    Outcome.SUCCESS,
                    details={
                        "serial": x509_svid.serial,
                        "x5t#S256": x509_svid.thumbprint,
                        "exp": x509_svid.expires_at,
                        "method": method,
                    },
                )
            )
        self._audit.record_all(
            [
                self._audit.event(
                    "attestation",
                    actor,
                    workload.spiffe_id,
                    Outcome.SUCCESS,
                    details={
                        "method": method,
                        "selectors": list(attested.selectors),
                        **attested.details,
                    },
                ),
                self._audit.event(
                    "svid.issued",
                    Actor("system", "zerolane"),
                    workload.spiffe_id,
                    Outcome.SUCCESS,
                    details={
                        "svid_id": issued.jti,
                        "kid": self._keyring.active_kid(),
                        "aud": list(issued.audience),
                        "exp": issued.expires_at,
                        "jkt": jkt,
                        "method": method,
                    },
                ),
                *x509_events,
            ]
        )
        return Attestation(issued, x509_svid)

    def _csr(self, csr: str | None) -> PublicKey | None:
        if csr is None:
            return None
        if self._x509 is None:
            raise InvalidInput("attest.x509", "this control plane issues no X.509-SVIDs")
        return parse_csr(csr)

    def _issue_x509(self, key: PublicKey, spiffe_id: str, requested: int | None) -> IssuedX509Svid:
        assert self._x509 is not None  # _csr refused the CSR otherwise
        _, created = self._x509.ensure()
        if created:
            self._audit.record(
                "x509_ca.created",
                actor=Actor("system", "zerolane"),
                subject=f"spiffe://{self.trust_domain}",
                outcome=Outcome.SUCCESS,
                details={"reason": "first X.509-SVID of this trust domain"},
            )
        cap = self._svid.x509_ttl
        ttl = cap if requested is None else min(max(requested, 1), cap)
        return self._x509.issue(key, spiffe_id, ttl)

    def _match(self, attested: Attested, requested: str | None) -> Workload:
        if attested.spiffe_id is not None:
            if requested is not None and requested != attested.spiffe_id:
                raise AttestationError(
                    "attestation.spiffe_id_mismatch",
                    "the evidence proves a different SPIFFE ID than the one requested",
                )
            workload = self._workloads.get_workload(attested.spiffe_id)
            candidates = [workload] if workload is not None else []
        else:
            candidates = [
                w
                for w in self._workloads.list_workloads()
                if matches(w.selectors, attested.selectors)
                and (requested is None or w.spiffe_id == requested)
            ]
        if not candidates:
            raise AttestationError(
                "attestation.no_workload", "no registered workload matches this evidence"
            )
        if len(candidates) > 1:
            raise AttestationError(
                "attestation.ambiguous",
                "several workloads match this evidence; name one with 'spiffe_id'",
            )
        workload = candidates[0]
        if workload.status is not WorkloadStatus.ENABLED:
            raise Forbidden("workload.disabled", f"{workload.spiffe_id} is disabled")
        return workload

    def _audience(self, requested: Sequence[str] | None) -> list[str]:
        if requested is None:
            return [f"spiffe://{self.trust_domain}"]
        audience = list(dict.fromkeys(requested))
        if not audience or len(audience) > MAX_AUDIENCES:
            raise InvalidInput("attest.audience", f"give 1..{MAX_AUDIENCES} audiences")
        for aud in audience:
            if not aud or len(aud) > 2048:
                raise InvalidInput("attest.audience", "an audience is 1..2048 characters")
            if aud.startswith("spiffe:"):
                parse_spiffe_id(aud)
        return audience

    def _ttl(self, requested: int | None) -> int:
        if requested is None:
            return self._svid.default_ttl
        if requested <= 0:
            raise InvalidInput("attest.ttl", "ttl must be a positive number of seconds")
        return min(requested, self._svid.max_ttl)
