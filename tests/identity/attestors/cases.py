"""One case per attestor for the shared contract suite.

Each attestor folder adds a :class:`AttestorCase` factory to ``CASES``; every case must
pass ``test_attestor_contract.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.identity.x509_factory import FakeSpire, make_proof
from zerolane.audit.log import AuditLog
from zerolane.config import JwtIssuerConfig
from zerolane.identity.attestors.base import Attestor
from zerolane.identity.attestors.join_token import JoinTokenAttestor, new_join_token
from zerolane.identity.attestors.jwt_issuer import JwtIssuerAttestor
from zerolane.identity.attestors.x509_federation import X509FederationAttestor
from zerolane.identity.bundle import parse_bundle, render_bundle
from zerolane.store.memory import MemoryStores
from zerolane.store.records import FederatedBundle
from zerolane.types import Clock


@dataclass
class AttestorCase:
    attestor: Attestor
    #: fresh, valid evidence proving ``spiffe_id`` (or matching ``selectors``)
    good: Callable[[], object]
    #: valid-looking evidence that must be refused (tampered, wrong signer, expired ...)
    bad: list[object]
    spiffe_id: str | None
    #: whether the same evidence is refused on a second use
    single_use: bool


class FixedClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def join_token_case(clock: Clock) -> AttestorCase:
    stores = MemoryStores()
    spiffe_id = "spiffe://example.org/agent"

    def good() -> object:
        issued = new_join_token(spiffe_id, 600, clock)
        stores.add_join_token(issued.record)
        return issued.token

    unknown = new_join_token(spiffe_id, 600, clock).token  # never stored
    past = new_join_token(spiffe_id, 600, clock)  # stored with a window that has ended
    now = clock.now()
    stores.add_join_token(replace(past.record, created_at=now - 1200, expires_at=now - 600))
    return AttestorCase(
        attestor=JoinTokenAttestor(stores, clock, AuditLog(stores, clock)),
        good=good,
        bad=[unknown, past.token, unknown.upper()],
        spiffe_id=spiffe_id,
        single_use=True,
    )


def jwt_issuer_case(clock: Clock) -> AttestorCase:
    key = ec.generate_private_key(ec.SECP256R1())
    stranger = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "ci-1", "use": "sig"}
    jwks = json.dumps({"keys": [jwk]}).encode()
    issuer = JwtIssuerConfig(
        name="ci",
        issuer="https://ci.example",
        audience="zerolane",
        jwks_url="https://ci.example/.well-known/jwks",
        claims={"repository": "repo"},
    )

    def sign(signer: ec.EllipticCurvePrivateKey = key, **claims: object) -> str:
        now = clock.now()
        body: dict[str, object] = {"iss": issuer.issuer, "aud": "zerolane", "sub": "repo:acme/app"}
        body |= {"repository": "acme/app", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, signer, algorithm="ES256", headers={"kid": "ci-1"})

    header, _, signature = sign().split(".")
    forged = jwt.utils.base64url_encode(b'{"iss":"https://ci.example","aud":"zerolane"}')
    return AttestorCase(
        attestor=JwtIssuerAttestor([issuer], clock, base=Path(), fetch=lambda _url: jwks),
        good=sign,
        bad=[
            f"{header}.{forged.decode()}.{signature}",
            sign(signer=stranger),
            sign(exp=clock.now() - 1),
            sign(aud="someone-else"),
        ],
        spiffe_id=None,
        single_use=False,
    )


def x509_svid_case(clock: Clock) -> AttestorCase:
    stores = MemoryStores()
    audience = "spiffe://example.org"
    partner, impostor = FakeSpire("partner.org"), FakeSpire("partner.org")
    bundle = render_bundle(parse_bundle(partner.bundle_json()))
    stores.put_bundle(FederatedBundle("partner.org", bundle, 1, clock.now()))
    svid, stolen = partner.svid(), impostor.svid()
    now = clock.now()

    def good() -> object:
        return svid.evidence(audience, iat=clock.now())

    return AttestorCase(
        attestor=X509FederationAttestor(stores, clock, audience, proofs=stores),
        good=good,
        bad=[
            stolen.evidence(audience, iat=now),  # chains to another CA
            {"chain": svid.pem, "proof": make_proof(stolen.key, audience, iat=now)},
            svid.evidence("spiffe://elsewhere.org", iat=now),
            svid.evidence(audience, iat=now - 600),
            {"chain": svid.pem, "proof": None},
            FakeSpire("unknown.org").svid().evidence(audience, iat=now),
        ],
        spiffe_id="spiffe://partner.org/agent",
        single_use=True,  # the same proof (jti) is refused when replayed
    )


CASES: dict[str, Callable[[Clock], AttestorCase]] = {
    "join_token": join_token_case,
    "jwt_issuer": jwt_issuer_case,
    "x509_svid": x509_svid_case,
}
