"""Who is calling: a workload (JWT-SVID + DPoP proof) or a task holder (task token + proof).

Every token zerolane accepts here is sender-constrained: the proof must be signed by the
key the token is bound to (``cnf.jkt``), for this method and URL, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from zerolane.errors import Forbidden, Unauthenticated
from zerolane.identity import svid
from zerolane.identity.keyring import Keyring
from zerolane.store.ports import ReplayCache, WorkloadStore
from zerolane.store.records import Workload
from zerolane.tokens.rfc9068 import TaskTokenClaims, TaskTokenVerifier
from zerolane.tokens.rfc9449 import VerifiedProof, verify_proof
from zerolane.types import Clock, WorkloadStatus

SCHEME = "dpop"


def bearer_of(authorization: str | None) -> str:
    """The token of an ``Authorization: DPoP <token>`` header."""
    if not authorization:
        raise Unauthenticated("auth.missing", "send 'Authorization: DPoP <token>' and a DPoP proof")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != SCHEME:
        raise Unauthenticated(
            "auth.scheme", "tokens here are sender-constrained: use the DPoP scheme, not Bearer"
        )
    token = token.strip()
    if not token:
        raise Unauthenticated("auth.missing", "the Authorization header carries no token")
    return token


@dataclass(frozen=True, slots=True)
class WorkloadCaller:
    workload: Workload
    svid: svid.VerifiedSvid
    proof: VerifiedProof


@dataclass(frozen=True, slots=True)
class TaskHolder:
    claims: TaskTokenClaims
    proof: VerifiedProof
    token: str


class Authenticator:
    def __init__(
        self,
        *,
        trust_domain: str,
        keyring: Keyring,
        workloads: WorkloadStore,
        replay: ReplayCache,
        clock: Clock,
    ) -> None:
        self.audience = f"spiffe://{trust_domain}"
        self._keyring = keyring
        self._workloads = workloads
        self._replay = replay
        self._clock = clock
        self._tokens = TaskTokenVerifier()

    def _proof(
        self, proof: str | None, method: str, url: str, token: str, jkt: str
    ) -> VerifiedProof:
        if not proof:
            raise Unauthenticated("dpop.missing", "a DPoP proof header is required")
        return verify_proof(
            proof,
            method=method,
            url=url,
            access_token=token,
            replay=self._replay,
            now=self._clock.now(),
            expected_jkt=jkt,
        )

    def workload(
        self, authorization: str | None, proof: str | None, *, method: str, url: str
    ) -> WorkloadCaller:
        """A workload presenting its JWT-SVID, bound to the key that signed ``proof``."""
        token = bearer_of(authorization)
        verified = svid.verify(
            token, self._keyring.public_keys(), audience=self.audience, clock=self._clock
        )
        if verified.jkt is None:
            raise Unauthenticated(
                "svid.unbound", "the SVID is not bound to a key: attest with a public_jwk"
            )
        checked = self._proof(proof, method, url, token, verified.jkt)
        workload = self._workloads.get_workload(verified.spiffe_id)
        if workload is None:
            raise Forbidden("workload.unknown", f"{verified.spiffe_id} is not registered")
        if workload.status is not WorkloadStatus.ENABLED:
            raise Forbidden("workload.disabled", f"{workload.spiffe_id} is disabled")
        return WorkloadCaller(workload, verified, checked)

    def task_holder(
        self,
        token: str,
        proof: str | None,
        *,
        method: str,
        url: str,
        audience: str | None = None,
    ) -> TaskHolder:
        """The holder of a task token, bound to the key that signed ``proof``."""
        claims = self._tokens.verify(
            token,
            self._keyring.public_keys(),
            keys_version=str(self._keyring.sequence()),
            issuer=self.audience,
            audience=audience or self.audience,
            now=self._clock.now(),
        )
        checked = self._proof(proof, method, url, token, claims.jkt)
        return TaskHolder(claims, checked, token)
