"""SPIFFE trust bundles (SPIFFE Trust Domain and Bundle spec, section 4).

A bundle is a JWK Set: ``keys`` plus optional ``spiffe_sequence`` and
``spiffe_refresh_hint``. A key with ``use`` = ``x509-svid`` is an X.509 authority and
carries exactly one CA certificate in ``x5c``; a key with ``use`` = ``jwt-svid`` is a
JWT authority: a public key with a ``kid``. A plain PEM file of CA certificates (what
``spire-server bundle show -format pem`` prints) is accepted too, with sequence 0.

Import is strict: anything we would not use as stated (private key members, a
non-CA "authority", an unknown ``use``) refuses the whole document. A JWT authority
must be a public key of a type JWT-SVIDs are signed with: EC on P-256, P-384, P-521 or
secp256k1 with coordinates of the curve's size, Ed25519 or Ed448, or RSA, its members
in unpadded base64url (joserfc imports EC and OKP keys, on the curve; an RSA key is
built by ``cryptography``, as joserfc warns about any under 2048 bits as it imports,
and verifying with one is refused later by :mod:`zerolane.tokens.jws`, not here).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from zerolane.errors import InvalidInput
from zerolane.tokens.jws import b64url_decode
from zerolane.tokens.rfc7638 import b64url

MAX_BYTES = 1 << 20
MAX_INT = (1 << 63) - 1
X509_USE = "x509-svid"
JWT_USE = "jwt-svid"
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
#: members that define a public key, per ``kty`` (compared against the certificate)
_KEY_MEMBERS = {"EC": ("crv", "x", "y"), "OKP": ("crv", "x"), "RSA": ("n", "e")}
#: the curves a key may be on, with an EC key's coordinate size in bytes
_EC_CURVES = {"P-256": 32, "P-384": 48, "P-521": 66, "secp256k1": 32}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})


class BundleError(InvalidInput):
    """A trust bundle document was refused; ``reason`` names the rule (``bundle.*``)."""


@dataclass(frozen=True, slots=True)
class TrustBundle:
    """The authorities of one federated trust domain."""

    x509_authorities: tuple[x509.Certificate, ...]
    #: public JWKs, each with ``kid`` and ``use`` = ``jwt-svid``
    jwt_authorities: tuple[Mapping[str, Any], ...]
    sequence: int
    refresh_hint: int | None = None


def _fail(rule: str, message: str) -> BundleError:
    return BundleError(f"bundle.{rule}", message)


def public_jwk(cert: x509.Certificate) -> dict[str, Any]:
    """The public JWK members of a certificate's key (EC, RSA, Ed25519/Ed448)."""
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as err:
        raise _fail("key_type", "the certificate's public key cannot be read") from err
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
    unusable = _fail("key_type", "the certificate's key type cannot be used in a bundle")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            jwk = ECKey.import_key(key).as_dict(private=False)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            jwk = OKPKey.import_key(key).as_dict(private=False)
        else:
            raise unusable
    except (JoseError, ValueError, LookupError) as err:  # a curve JOSE has no name for
        raise unusable from err
    if jwk.get("crv") not in (*_EC_CURVES, *_OKP_CURVES):
        raise unusable
    kty = str(jwk["kty"])
    return {"kty": kty, **{m: jwk[m] for m in _KEY_MEMBERS[kty]}}


def _uint(value: int) -> str:
    """An unsigned integer as JWK writes one: big-endian, no leading zero byte."""
    return b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _require_ca(cert: x509.Certificate) -> x509.Certificate:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    except ValueError as err:
        raise _fail("certificate", "a certificate has malformed extensions") from err
    if constraints is None or not constraints.ca:
        raise _fail("not_ca", "an X.509 authority must be a CA certificate (basicConstraints cA)")
    public_jwk(cert)
    return cert


def _x509_authority(key: Mapping[str, Any]) -> x509.Certificate:
    x5c = key.get("x5c")
    if not isinstance(x5c, list) or len(x5c) != 1 or not isinstance(x5c[0], str):
        raise _fail("x5c", "an x509-svid key carries exactly one certificate in 'x5c'")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(x5c[0], validate=True))
    except (binascii.Error, ValueError) as err:
        raise _fail("certificate", "an 'x5c' entry is not a base64 DER certificate") from err
    _require_ca(cert)
    if "kty" in key:
        expected = public_jwk(cert)
        if any(key.get(member) != value for member, value in expected.items()):
            raise _fail("key_mismatch", "an x509-svid key does not match its certificate")
    return cert


def _jwt_authority(key: Mapping[str, Any]) -> Mapping[str, Any]:
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _fail("kid", "a jwt-svid key needs a 'kid'")
    check = _KEY_CHECKS.get(str(key.get("kty")))
    if check is None:
        raise _fail("key_type", "a jwt-svid key has an unsupported 'kty'")
    members = {m: key.get(m) for m in _KEY_MEMBERS[str(key["kty"])]}
    values = {m: v for m, v in members.items() if isinstance(v, str)}
    try:
        if len(values) != len(members):
            raise ValueError("a public key member is missing or not a string")
        check(values)
    except (JoseError, ValueError, LookupError) as err:
        raise _fail("jwt_key", "a jwt-svid key is not a valid public key") from err
    return dict(key)


def _decoded(values: Mapping[str, str], member: str) -> bytes:
    decoded = b64url_decode(values[member])
    if decoded is None:
        raise ValueError(f"'{member}' is not unpadded base64url")
    return decoded


def _ec_key(values: Mapping[str, str]) -> None:
    size = _EC_CURVES.get(values["crv"])
    if size is None or not len(_decoded(values, "x")) == len(_decoded(values, "y")) == size:
        raise ValueError("not a point of a supported curve")
    ECKey.import_key({"kty": "EC", **values})  # refuses a point off the curve


def _okp_key(values: Mapping[str, str]) -> None:
    if values["crv"] not in _OKP_CURVES:
        raise ValueError("not a signing curve")
    OKPKey.import_key({"kty": "OKP", **values})  # refuses x not of the curve's size


def _rsa_key(values: Mapping[str, str]) -> None:
    n = int.from_bytes(_decoded(values, "n"), "big")
    e = int.from_bytes(_decoded(values, "e"), "big")
    rsa.RSAPublicNumbers(e, n).public_key()  # refuses an n or e no key can have


#: the check of a jwt-svid key's public members, per ``kty``
_KEY_CHECKS: dict[str, Callable[[Mapping[str, str]], None]] = {
    "EC": _ec_key,
    "OKP": _okp_key,
    "RSA": _rsa_key,
}


def _optional_int(document: Mapping[str, Any], member: str) -> int | None:
    value = document.get(member)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INT:
        raise _fail(member.removeprefix("spiffe_"), f"'{member}' must be a non-negative integer")
    return value


def _parse_jwks(text: str) -> TrustBundle:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise _fail("json", "the bundle is neither JSON nor PEM certificates") from err
    if not isinstance(document, dict):
        raise _fail("json", "the bundle must be a JSON object (a JWK Set)")
    keys = document.get("keys")
    if not isinstance(keys, list) or not keys:
        raise _fail("no_keys", "the bundle has no keys")
    roots: list[x509.Certificate] = []
    jwt_keys: list[Mapping[str, Any]] = []
    for key in keys:
        if not isinstance(key, dict):
            raise _fail("key", "each bundle key must be a JSON object")
        if PRIVATE_MEMBERS.intersection(key):
            raise _fail("private_key", "the bundle holds private key material")
        use = key.get("use")
        if use == X509_USE:
            roots.append(_x509_authority(key))
        elif use == JWT_USE:
            jwt_keys.append(_jwt_authority(key))
        else:
            raise _fail("key_use", f"key 'use' must be {X509_USE!r} or {JWT_USE!r}")
    return TrustBundle(
        x509_authorities=tuple(roots),
        jwt_authorities=tuple(jwt_keys),
        sequence=_optional_int(document, "spiffe_sequence") or 0,
        refresh_hint=_optional_int(document, "spiffe_refresh_hint"),
    )


def _parse_pem(data: bytes) -> TrustBundle:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise _fail("pem", "the PEM bundle holds no readable certificate") from err
    return TrustBundle(tuple(_require_ca(c) for c in certs), (), 0)


def parse_bundle(text: str | bytes) -> TrustBundle:
    """Parse and validate a bundle document (JWK Set JSON, or PEM CA certificates)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > MAX_BYTES:
        raise _fail("too_large", f"a bundle is at most {MAX_BYTES} bytes")
    if not data.lstrip().startswith(b"{") and b"-----BEGIN" in data:
        if b"PRIVATE KEY" in data:
            raise _fail("private_key", "the bundle holds private key material")
        return _parse_pem(data)
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail("json", "the bundle is not UTF-8 text") from err
    return _parse_jwks(decoded)


def render_bundle(bundle: TrustBundle) -> str:
    """The bundle as a canonical SPIFFE bundle document (what the store keeps)."""
    keys: list[dict[str, Any]] = [
        {
            **public_jwk(cert),
            "use": X509_USE,
            "x5c": [base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii")],
        }
        for cert in bundle.x509_authorities
    ]
    keys.extend(dict(key) for key in bundle.jwt_authorities)
    document: dict[str, Any] = {"keys": keys, "spiffe_sequence": bundle.sequence}
    if bundle.refresh_hint is not None:
        document["spiffe_refresh_hint"] = bundle.refresh_hint
    return json.dumps(document, sort_keys=True)
