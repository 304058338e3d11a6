"""X.509-SVID attestation: a workload of a federated SPIFFE trust domain (SPIRE).

Evidence is ``{"chain": <PEM, leaf first>, "proof": <compact JWS>}``. The chain must be
a valid X509-SVID of a trust domain whose bundle was imported (``zerolane federation
add``); see :mod:`zerolane.identity.x509_svid`. A certificate is public, so the proof
shows possession of the leaf's private key:

- a compact JWS signed with the leaf key: ``alg`` ES256 (P-256 leaf) or EdDSA
  (Ed25519 leaf); no ``kid``, no ``crit``;
- payload ``{"aud": "spiffe://<our trust domain>", "iat": <now, epoch seconds>,
  "jti": <unique string, 1..128 chars>}``; ``aud`` may also be a one-element list;
- ``iat`` within ±60 s of our clock; a ``jti`` seen in that window (for the same
  SPIFFE ID) is refused as a replay.

A proof is usable once, everywhere, across restarts: each process refuses a replay
from a bounded in-memory cache (full of live entries, it refuses new proofs until
entries age out: fail closed), then the proof is spent in the deployment's store, which
every process shares and which outlives a restart.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from zerolane.identity.attestors.base import AttestationError, Attested
from zerolane.identity.bundle import BundleError, parse_bundle, public_jwk
from zerolane.identity.x509_svid import leaf_spiffe_id, parse_chain, validate
from zerolane.store.ports import BundleStore, SpentProofStore
from zerolane.store.records import SpentProof
from zerolane.tokens import jws
from zerolane.tokens.algorithms import DPOP_ALGS, algorithm_for_key
from zerolane.types import Clock

METHOD = "x509_svid"
MAX_SKEW = 60.0
MAX_PROOF_BYTES = 8 * 1024
MAX_JTI_LEN = 128
#: a proof is signed as a DPoP proof is: ES256 (P-256 leaf) or EdDSA (Ed25519 leaf)
PROOF_ALGS = DPOP_ALGS


def _fail(rule: str, message: str) -> AttestationError:
    return AttestationError(f"x509.{rule}", message)


class ReplayCache:
    """Seen ``(key, jti)`` pairs until they expire; bounded, thread-safe, fail closed."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str], expires_at: float, now: float) -> None:
        """Remember ``key``; raise when it was already seen or the cache is full."""
        with self._lock:
            if len(self._seen) >= self._max:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            seen_until = self._seen.get(key)
            if seen_until is not None and seen_until > now:
                raise _fail("proof_replayed", "this proof (jti) was already used")
            if len(self._seen) >= self._max:
                raise _fail("proof_busy", "too many recent proofs; retry shortly")
            self._seen[key] = expires_at


def _leaf_jwk(leaf: x509.Certificate) -> tuple[dict[str, Any], str]:
    try:
        jwk = public_jwk(leaf)
    except BundleError as err:
        raise _fail("proof_key", "the leaf's key type cannot sign a proof") from err
    crv = jwk.get("crv")
    alg = algorithm_for_key(str(jwk["kty"]), crv if isinstance(crv, str) else None, PROOF_ALGS)
    if alg is None:
        raise _fail("proof_key", "a proof needs a P-256 or Ed25519 leaf key")
    return jwk, alg


def _claims(proof: str, leaf: x509.Certificate) -> dict[str, Any]:
    jwk, alg = _leaf_jwk(leaf)
    try:
        verified = jws.verify(proof, [jwk], algorithms=(alg,))
        claims = json.loads(verified.payload)
    except jws.JwsError as err:
        raise _fail("proof_signature", f"the proof does not verify ({err.reason})") from err
    except (ValueError, RecursionError) as err:
        raise _fail("proof_claims", "the proof payload is not JSON") from err
    if not isinstance(claims, dict):
        raise _fail("proof_claims", "the proof payload is not a JSON object")
    return claims


class X509FederationAttestor:
    method = METHOD
    evidence_field = "x509_svid"

    def __init__(
        self,
        bundles: BundleStore,
        clock: Clock,
        audience: str,
        *,
        proofs: SpentProofStore,
        max_proofs: int = 100_000,
    ) -> None:
        self._bundles = bundles
        self._proofs = proofs
        self._clock = clock
        self._audience = audience
        self._replay = ReplayCache(max_proofs)

    def attest(self, evidence: object) -> Attested:
        if not isinstance(evidence, Mapping):
            raise _fail("malformed", "x509_svid evidence is {'chain': PEM, 'proof': JWS}")
        proof = evidence.get("proof")
        if not isinstance(proof, str) or not 0 < len(proof) <= MAX_PROOF_BYTES:
            raise _fail("proof_missing", "a proof of possession of the leaf key is required")
        chain = parse_chain(evidence.get("chain"))
        trust_domain = leaf_spiffe_id(chain[0]).trust_domain
        stored = self._bundles.get_bundle(trust_domain)
        if stored is None:
            raise _fail("unknown_trust_domain", f"trust domain {trust_domain!r} is not federated")
        try:
            bundle = parse_bundle(stored.bundle_json)
        except BundleError as err:
            raise _fail("bundle", f"the stored bundle is unusable ({err.reason})") from err
        now = self._clock.now()
        svid = validate(chain, bundle.x509_authorities, trust_domain=trust_domain, at=now)
        claims = _claims(proof, svid.leaf)
        iat = self._check_claims(claims, now)
        spiffe_id = str(svid.spiffe_id)
        self._replay.add((spiffe_id, str(claims["jti"])), iat + MAX_SKEW, now)
        # accepted up to iat + MAX_SKEW inclusive: remembered a second longer than that
        spent = SpentProof.of(f"x509:{spiffe_id}:{claims['jti']}", iat + MAX_SKEW + 1)
        if not self._proofs.spend_proof(spent, now):  # by another process, or before a restart
            raise _fail("proof_replayed", "this proof (jti) was already used")
        selectors = [f"x509_svid:trust_domain:{trust_domain}"]
        if len(spiffe_id) <= 480:  # a selector is at most 512 characters
            selectors.append(f"x509_svid:spiffe_id:{spiffe_id}")
        return Attested(
            method=METHOD,
            selectors=tuple(selectors),
            spiffe_id=spiffe_id,
            details={
                "trust_domain": trust_domain,
                "bundle_sequence": bundle.sequence,
                "x509_serial": format(svid.leaf.serial_number, "x"),
                "x509_sha256": hashlib.sha256(svid.leaf.public_bytes(Encoding.DER)).hexdigest(),
                "x509_not_after": svid.leaf.not_valid_after_utc.timestamp(),
            },
        )

    def _check_claims(self, claims: Mapping[str, Any], now: float) -> float:
        aud = claims.get("aud")
        if aud != self._audience and aud != [self._audience]:
            raise _fail("proof_audience", "the proof is not meant for this control plane")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or not math.isfinite(iat):
            raise _fail("proof_iat", "the proof has no 'iat'")
        if iat < now - MAX_SKEW:
            raise _fail("proof_stale", "the proof is too old; sign a fresh one")
        if iat > now + MAX_SKEW:
            raise _fail("proof_future", "the proof is issued in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LEN:
            raise _fail("proof_jti", f"the proof needs a 'jti' of 1..{MAX_JTI_LEN} characters")
        return float(iat)
