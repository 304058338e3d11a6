"""Attestation: evidence in, a JWT-SVID out, every step audited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.config import SvidConfig
from zerolane.errors import Forbidden, InvalidInput, ZerolaneError
from zerolane.identity import svid
from zerolane.identity.attestors.base import AttestationError, Attested, Attestor
from zerolane.identity.keyring import Keyring
from zerolane.identity.selectors import matches
from zerolane.identity.spiffe_id import parse_spiffe_id
from zerolane.identity.workload_key import key_thumbprint
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
    ) -> None:
        self.trust_domain = trust_domain
        self._keyring = keyring
        self._workloads = workloads
        self._attestors = {a.evidence_field: a for a in attestors}
        self._audit = audit
        self._clock = clock
        self._svid = svid_config

    @property
    def evidence_fields(self) -> tuple[str, ...]:
        return tuple(self._attestors)

    def attest(self, request: AttestRequest) -> svid.IssuedSvid:
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
            ]
        )
        return issued

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
