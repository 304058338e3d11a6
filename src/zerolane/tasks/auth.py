"""Who is calling: a workload (JWT-SVID + DPoP proof, or its X.509-SVID over mutual TLS)
or a task holder (task token + proof, or task token + the client certificate).

Every token zerolane accepts here is sender-constrained: the proof must be signed by the
key the token is bound to (``cnf.jkt``), for this method and URL, once; or, for a token
bound to a certificate (RFC 8705 ``cnf.x5t#S256``), the request must come over a
connection authenticated with that very certificate. A ``jkt`` token always needs its
proof (a certificate does not replace it); an ``x5t#S256`` token needs its certificate.

One exception, off unless the deployment turns it on (``[oauth] allow_bearer_clients``):
a token issued to a standard MCP client that proved no key is unbound (marked
``"bearer": true``, short-lived, for an MCP gateway's audience only); the authenticator
refuses it (``token.bearer_refused``) unless built with ``bearer_clients``. Such a
token is never an SVID: a workload's own credentials stay key-bound.

The tokens and proofs come as the request carried them: reading them from its headers
(one ``Authorization``, its scheme, one ``DPoP``) is the enforcement edge's
(:func:`zerolane.gateway.edge.http.credentials_of`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509

from zerolane.errors import Forbidden, Unauthenticated, Unavailable
from zerolane.identity import svid
from zerolane.identity.keyring import Keyring
from zerolane.identity.x509_svid import VerifiedX509Svid, validate
from zerolane.store.ports import ReplayCache, SpentProofStore, WorkloadStore
from zerolane.store.records import SpentProof, Workload
from zerolane.tokens.errors import UnknownSigningKey
from zerolane.tokens.rfc8705 import (
    CNF_MEMBER,
    MtlsError,
    cert_thumbprint,
    check_binding,
    der_of,
    load_certificate,
)
from zerolane.tokens.rfc9068 import TaskTokenClaims, TaskTokenVerifier
from zerolane.tokens.rfc9449 import DpopError, VerifiedProof, verify_proof
from zerolane.types import Clock, WorkloadStatus

log = logging.getLogger(__name__)
_T = TypeVar("_T")
#: what a task record keeps as the binding of an unbound (bearer client's) token
BEARER_BINDING = "bearer"


@dataclass(frozen=True, slots=True)
class WorkloadCaller:
    """An authenticated workload: by its JWT-SVID and a DPoP proof (``svid``, ``proof``),
    or by its X.509-SVID as the client certificate of a mutual-TLS connection
    (``certificate``). What it is given is bound to the same: ``cnf.jkt`` or
    ``cnf.x5t#S256``."""

    workload: Workload
    svid: svid.VerifiedSvid | None
    proof: VerifiedProof | None
    certificate: VerifiedX509Svid | None = None
    #: RFC 8705 ``x5t#S256`` of the client certificate (with ``certificate``)
    x5t: str | None = None
    #: a standard MCP client that proved no key (``[oauth] allow_bearer_clients``): its
    #: token is unbound, lives at most this many seconds and names only the gateway
    bearer_ttl: int | None = None

    @property
    def jkt(self) -> str | None:
        """The DPoP key thumbprint a task token is bound to (None: bound to ``x5t``)."""
        return self.proof.jkt if self.proof is not None else None

    @property
    def binding(self) -> str:
        """What the task record keeps as its binding: the ``jkt``, or ``x5t#S256:<x5t>``."""
        if self.x5t is not None:
            return f"{CNF_MEMBER}:{self.x5t}"
        if self.proof is None and self.bearer_ttl is not None:
            return BEARER_BINDING
        if self.proof is None:
            raise Unauthenticated("auth.unbound", "the caller proved no key")
        return self.proof.jkt

    @property
    def bound_until(self) -> float | None:
        """When the binding ends (the certificate's ``notAfter``); None for a DPoP key."""
        if self.certificate is None:
            return None
        return self.certificate.leaf.not_valid_after_utc.timestamp()


@dataclass(frozen=True, slots=True)
class Delegate:
    """A workload named by its key-bound JWT-SVID that another party presented (the
    actor token of a delegation): not authenticated by a proof here, but whatever is
    issued to it is bound to its key (``svid.jkt``), so only it can use that."""

    workload: Workload
    svid: svid.VerifiedSvid
    jkt: str


@dataclass(frozen=True, slots=True)
class TaskHolder:
    """The holder of a task token: proven by a DPoP ``proof`` (``cnf.jkt``), or by the
    client certificate of its connection (``cnf.x5t#S256``, then ``proof`` is None)."""

    claims: TaskTokenClaims
    proof: VerifiedProof | None
    token: str


class Authenticator:
    def __init__(
        self,
        *,
        trust_domain: str,
        keyring: Keyring,
        workloads: WorkloadStore,
        replay: ReplayCache,
        proofs: SpentProofStore,
        clock: Clock,
        x509_roots: Callable[[], Sequence[x509.Certificate]] | None = None,
        bearer_clients: bool = False,
    ) -> None:
        """``bearer_clients``: accept the unbound tokens of standard MCP clients that
        prove no key (``[oauth] allow_bearer_clients``); refused otherwise.

        ``replay``: this process's cache of spent proofs (refuses a replay without
        touching the store); ``proofs``: the proofs spent by every process of the
        deployment, durably (a proof is usable once, everywhere, across restarts)."""
        self.audience = f"spiffe://{trust_domain}"
        self.trust_domain = trust_domain
        self._x509_roots = x509_roots
        self._keyring = keyring
        self._workloads = workloads
        self._replay = replay
        self._proofs = proofs
        self._clock = clock
        self._tokens = TaskTokenVerifier()
        self.bearer_clients = bearer_clients

    def _proof(
        self,
        proof: str | None,
        method: str,
        url: str,
        token: str,
        jkt: str,
        *,
        spend_later: bool = False,
    ) -> VerifiedProof:
        """The verified proof, spent in this process's cache and, unless
        ``spend_later`` (the caller spends it in a write of its own, as a decision's
        allow does), in the deployment's store."""
        if not proof:
            raise Unauthenticated("dpop.missing", "a DPoP proof header is required")
        now = self._clock.now()
        verified = verify_proof(
            proof,
            method=method,
            url=url,
            access_token=token,
            replay=self._replay,
            now=now,
            expected_jkt=jkt,
        )
        if not spend_later and not self._proofs.spend_proof(verified.spent(), now):
            err = DpopError("dpop.replayed", "the proof was already used")
            err.jkt, err.jti = verified.jkt, verified.jti
            raise err
        return verified

    def spend_proof(self, proof: SpentProof) -> bool:
        """Spend ``proof`` in the deployment's store (for a proof verified with
        ``spend_later``, when no write of the caller's spends it); False when it was
        spent before. A store that cannot take it is logged and counts as unspent:
        callers use this on a request they refuse anyway."""
        try:
            return self._proofs.spend_proof(proof, self._clock.now())
        except Unavailable:
            log.warning("a refused request's proof could not be recorded as spent")
            return False

    def _with_published_keys(self, verify: Callable[[int, list[dict[str, str]]], _T]) -> _T:
        """``verify(sequence, keys)`` against the published keys. The keyring looks at
        its manifest on disk only now and then; when ``verify`` refuses a token for
        naming a key it was not given, the keyring looks now (another process may just
        have rotated) and, if the keys changed, ``verify`` runs once more."""
        sequence, keys = self._keyring.published()
        try:
            return verify(sequence, keys)
        except UnknownSigningKey:
            self._keyring.recheck()
            fresh = self._keyring.published()
            if fresh[1] == keys:
                raise
        return verify(*fresh)

    def _svid(self, token: str) -> tuple[svid.VerifiedSvid, str]:
        """A verified JWT-SVID and the thumbprint of the key it is bound to."""
        verified = self._with_published_keys(
            lambda _, keys: svid.verify(token, keys, audience=self.audience, clock=self._clock)
        )
        if verified.jkt is None:
            raise Unauthenticated(
                "svid.unbound", "the SVID is not bound to a key: attest with a public_jwk"
            )
        return verified, verified.jkt

    def _enabled(self, spiffe_id: str) -> Workload:
        workload = self._workloads.get_workload(spiffe_id)
        if workload is None:
            raise Forbidden("workload.unknown", f"{spiffe_id} is not registered")
        if workload.status is not WorkloadStatus.ENABLED:
            raise Forbidden("workload.disabled", f"{workload.spiffe_id} is disabled")
        return workload

    def workload(self, token: str, proof: str | None, *, method: str, url: str) -> WorkloadCaller:
        """A workload presenting its JWT-SVID (``token``, as the enforcement edge read it
        from ``Authorization: DPoP``), bound to the key that signed ``proof``."""
        verified, jkt = self._svid(token)
        checked = self._proof(proof, method, url, token, jkt)
        return WorkloadCaller(self._enabled(verified.spiffe_id), verified, checked)

    def workload_by_certificate(self, client_cert: bytes | None) -> WorkloadCaller:
        """A workload presenting its X.509-SVID as the client certificate (DER) of a
        mutual-TLS connection: the TLS handshake proved its key; here the certificate
        is validated as an X.509-SVID of this trust domain (our CA, valid now)."""
        if not client_cert:
            raise MtlsError("mtls.cert_missing", "present an X.509-SVID over mutual TLS")
        leaf = load_certificate(client_cert)
        roots = list(self._x509_roots()) if self._x509_roots is not None else []
        verified = validate([leaf], roots, trust_domain=self.trust_domain, at=self._clock.now())
        workload = self._enabled(str(verified.spiffe_id))
        return WorkloadCaller(
            workload, None, None, certificate=verified, x5t=cert_thumbprint(der_of(leaf))
        )

    def delegate(self, token: str) -> Delegate:
        """The registered, enabled workload a key-bound JWT-SVID names, without a proof
        of its key (see :class:`Delegate`)."""
        verified, jkt = self._svid(token)
        return Delegate(self._enabled(verified.spiffe_id), verified, jkt)

    def task_holder(
        self,
        token: str,
        proof: str | None,
        *,
        method: str,
        url: str,
        audience: str | None = None,
        client_cert: bytes | None = None,
        spend_later: bool = False,
    ) -> TaskHolder:
        """The holder of a task token, bound to the key that signed ``proof``; or, for a
        certificate-bound token (``cnf.x5t#S256``), to ``client_cert`` (DER, the
        connection's verified client certificate), and then ``proof`` is not needed.
        A ``cnf.jkt`` token ignores ``client_cert``: it always needs its proof.

        ``spend_later``: the proof is spent in this process's cache only, and the
        caller must spend ``holder.proof.spent()`` in the deployment's store itself
        (a decision does, in the write of its allow or with its deny)."""
        now = self._clock.now()
        claims = self._with_published_keys(
            lambda sequence, keys: self._tokens.verify(
                token,
                keys,
                keys_version=str(sequence),
                issuer=self.audience,
                audience=audience or self.audience,
                now=now,
            )
        )
        try:
            return self._bound_holder(claims, token, proof, method, url, client_cert, spend_later)
        except Unauthenticated as err:  # the token verified: the audit names what it saw
            err.verified = verified_facts(claims, err)
            raise

    def _bound_holder(
        self,
        claims: TaskTokenClaims,
        token: str,
        proof: str | None,
        method: str,
        url: str,
        client_cert: bytes | None,
        spend_later: bool,
    ) -> TaskHolder:
        """The holder of the verified ``claims``, proven by its proof or certificate."""
        if claims.x5t is not None:
            check_binding(claims.x5t, client_cert)
            return TaskHolder(claims, None, token)
        if claims.bearer:
            if not self.bearer_clients:
                raise Unauthenticated(
                    "token.bearer_refused", "this deployment accepts no unbound (bearer) tokens"
                )
            return TaskHolder(claims, None, token)
        if claims.jkt is None:  # the verifier never lets an unbound token through
            raise Unauthenticated("token.unbound", "the token is not bound to a key")
        checked = self._proof(proof, method, url, token, claims.jkt, spend_later=spend_later)
        return TaskHolder(claims, checked, token)


def verified_facts(claims: TaskTokenClaims, err: Unauthenticated) -> dict[str, str]:
    """What the audit log records of a verified task token whose proof or certificate
    ``err`` refused (:attr:`~zerolane.errors.Unauthenticated.verified`): ids and
    thumbprints, never the token or the proof."""
    facts = {"task_id": claims.task_id, "workload": claims.subject, "token_id": claims.jti}
    if claims.jkt is not None:
        facts["expected_jkt"] = claims.jkt
    if claims.x5t is not None:
        facts["expected_x5t"] = claims.x5t
    if isinstance(err, DpopError):
        if err.jti is not None:
            facts["proof_jti"] = err.jti
        if err.jkt is not None:
            facts["proof_jkt"] = err.jkt
    if isinstance(err, MtlsError) and err.presented is not None:
        facts["presented_x5t"] = err.presented
    return facts
