"""SPIFFE trust bundle parsing: each refusal next to the document it is a twin of."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID

from tests.identity.x509_factory import CA_USAGE, FakeSpire, make_cert, new_key, pem
from zerolane.identity.bundle import BundleError, parse_bundle, render_bundle


@pytest.fixture(scope="module")
def spire() -> FakeSpire:
    return FakeSpire()


def _doc(spire: FakeSpire, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(spire.bundle_json(7, jwt_key=new_key()))
    document.update(changes)
    return document


def _refused(text: str | bytes) -> str:
    with pytest.raises(BundleError) as info:
        parse_bundle(text)
    return info.value.reason


def test_a_spire_bundle_is_parsed(spire: FakeSpire) -> None:
    bundle = parse_bundle(spire.bundle_json(7, jwt_key=new_key()))
    assert bundle.x509_authorities == (spire.root,)
    assert [k["kid"] for k in bundle.jwt_authorities] == ["jwt-1"]
    assert bundle.sequence == 7
    assert bundle.refresh_hint == 300


def test_a_pem_bundle_is_parsed_with_sequence_zero(spire: FakeSpire) -> None:
    other = FakeSpire("other.org")
    bundle = parse_bundle(pem([spire.root, other.root]))
    assert bundle.x509_authorities == (spire.root, other.root)
    assert bundle.jwt_authorities == ()
    assert bundle.sequence == 0


def test_a_bundle_without_sequence_has_sequence_zero(spire: FakeSpire) -> None:
    assert parse_bundle(spire.bundle_json(None)).sequence == 0


def test_render_round_trips(spire: FakeSpire) -> None:
    bundle = parse_bundle(spire.bundle_json(3, jwt_key=new_key()))
    again = parse_bundle(render_bundle(bundle))
    assert again == bundle
    from_pem = parse_bundle(render_bundle(parse_bundle(spire.bundle_pem())))
    assert from_pem.x509_authorities == (spire.root,)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "bundle.json"),
        ("[]", "bundle.json"),
        (b"\xff\xfe", "bundle.json"),
        ("[" * 100_000, "bundle.json"),
        ('{"keys": []}', "bundle.no_keys"),
        ("{}", "bundle.no_keys"),
        ('{"keys": [1]}', "bundle.key"),
        ("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", "bundle.pem"),
        (" " * ((1 << 20) + 1), "bundle.too_large"),
    ],
)
def test_malformed_documents_are_refused(text: str | bytes, reason: str) -> None:
    assert _refused(text) == reason


def test_private_members_are_refused(spire: FakeSpire) -> None:
    document = _doc(spire)
    document["keys"][1]["d"] = "c2VjcmV0"
    assert _refused(json.dumps(document)) == "bundle.private_key"
    document["keys"][1].pop("d")
    parse_bundle(json.dumps(document))


def test_a_pem_with_a_private_key_is_refused(spire: FakeSpire) -> None:
    secret = spire.root_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    assert _refused(spire.bundle_pem() + secret.decode()) == "bundle.private_key"
    parse_bundle(spire.bundle_pem())


def test_an_unknown_use_is_refused(spire: FakeSpire) -> None:
    document = _doc(spire)
    document["keys"][0]["use"] = "sig"
    assert _refused(json.dumps(document)) == "bundle.key_use"
    document["keys"][0].pop("use")
    assert _refused(json.dumps(document)) == "bundle.key_use"


def test_a_non_ca_authority_is_refused(spire: FakeSpire) -> None:
    key = new_key()
    leaf = make_cert(
        subject_key=key, issuer_key=key, subject="leaf", issuer="leaf", ca=False, usage=CA_USAGE
    )
    assert _refused(pem([leaf])) == "bundle.not_ca"
    no_constraints = make_cert(
        subject_key=key, issuer_key=key, subject="x", issuer="x", ca=None, usage=CA_USAGE
    )
    assert _refused(pem([spire.root, no_constraints])) == "bundle.not_ca"
    forged = FakeSpire("forged.org", root_key=key)
    document = json.loads(forged.bundle_json())
    parse_bundle(json.dumps(document))  # the CA twin is accepted
    document["keys"][0]["x5c"] = json.loads(FakeSpire().bundle_json())["keys"][0]["x5c"]
    assert _refused(json.dumps(document)) == "bundle.key_mismatch"


@pytest.mark.parametrize(
    ("x5c", "reason"),
    [
        (None, "bundle.x5c"),
        ([], "bundle.x5c"),
        ("abc", "bundle.x5c"),
        (["!!not base64!!"], "bundle.certificate"),
        (["AAAA"], "bundle.certificate"),
    ],
)
def test_x5c_must_hold_one_certificate(spire: FakeSpire, x5c: object, reason: str) -> None:
    document = _doc(spire)
    document["keys"][0]["x5c"] = x5c
    assert _refused(json.dumps(document)) == reason


def test_x5c_with_two_certificates_is_refused(spire: FakeSpire) -> None:
    document = _doc(spire)
    one = document["keys"][0]["x5c"][0]
    document["keys"][0]["x5c"] = [one, one]
    assert _refused(json.dumps(document)) == "bundle.x5c"
    document["keys"][0]["x5c"] = [one]
    parse_bundle(json.dumps(document))


def test_jwt_keys_need_a_kid_and_a_valid_key(spire: FakeSpire) -> None:
    document = _doc(spire)
    document["keys"][1].pop("kid")
    assert _refused(json.dumps(document)) == "bundle.kid"
    document = _doc(spire)
    document["keys"][1]["x"] = document["keys"][1]["y"]  # not a point on the curve
    assert _refused(json.dumps(document)) == "bundle.jwt_key"
    document = _doc(spire)
    document["keys"][1]["kty"] = "oct"
    assert _refused(json.dumps(document)) == "bundle.key_type"


@pytest.mark.parametrize("value", [-1, "3", 1.5, True, 1 << 64])
def test_sequence_and_refresh_hint_are_non_negative_integers(
    spire: FakeSpire, value: object
) -> None:
    assert _refused(json.dumps(_doc(spire, spiffe_sequence=value))) == "bundle.sequence"
    assert _refused(json.dumps(_doc(spire, spiffe_refresh_hint=value))) == "bundle.refresh_hint"


AnyPrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _expected_jwk(key: AnyPrivateKey) -> dict[str, str]:
    """A key's public JWK members written out from its numbers (RFC 7518 section 6,
    RFC 8037): EC coordinates at the curve's full size, RSA integers without leading
    zeros, OKP raw bytes."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return {
            "kty": "EC",
            "crv": names.get(key.curve.name, key.curve.name),
            "x": _b64(numbers.x.to_bytes(size, "big")),
            "y": _b64(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, rsa.RSAPrivateKey):
        public = key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "n": _b64(public.n.to_bytes((public.n.bit_length() + 7) // 8, "big")),
            "e": _b64(public.e.to_bytes((public.e.bit_length() + 7) // 8, "big")),
        }
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    crv = "Ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "Ed448"
    return {"kty": "OKP", "crv": crv, "x": _b64(raw)}


def _self_signed_ca(key: AnyPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    okp = isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    return builder.sign(key, None if okp else hashes.SHA256())


def _ec_key_with_a_short_coordinate() -> ec.EllipticCurvePrivateKey:
    """A P-256 key one of whose coordinates has a leading zero byte (1 key in ~128)."""
    while True:
        key = new_key()
        numbers = key.public_key().public_numbers()
        if min(numbers.x, numbers.y).bit_length() <= 248:
            return key


KEYS: dict[str, Callable[[], AnyPrivateKey]] = {
    "P-256": new_key,
    "P-256, a short coordinate": _ec_key_with_a_short_coordinate,
    "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "P-521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "RSA 2048": lambda: rsa.generate_private_key(65537, 2048),
    "RSA 1024": lambda: rsa.generate_private_key(65537, 1024),  # noqa: S505 (accepted here)
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
    "Ed448": ed448.Ed448PrivateKey.generate,
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_an_x509_authority_is_written_with_its_keys_public_members(kind: str) -> None:
    key = KEYS[kind]()
    cert = _self_signed_ca(key)
    document = json.loads(render_bundle(parse_bundle(pem([cert]))))
    written = dict(document["keys"][0])
    assert written.pop("use") == "x509-svid"
    assert written.pop("x5c") == [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]
    assert written == _expected_jwk(key)
    assert parse_bundle(json.dumps(document)).x509_authorities == (cert,)


def test_a_certificate_on_a_curve_jose_has_no_name_for_is_refused() -> None:
    odd = _self_signed_ca(ec.generate_private_key(ec.SECP224R1()))
    assert _refused(pem([odd])) == "bundle.key_type"
    parse_bundle(pem([_self_signed_ca(new_key())]))


def _jwt_bundle(spire: FakeSpire, jwk: Mapping[str, object]) -> str:
    document = _doc(spire)
    document["keys"][1] = {**jwk, "use": "jwt-svid", "kid": "jwt-1"}
    return json.dumps(document)


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_a_jwt_authority_of_each_key_type_is_kept_as_written(spire: FakeSpire, kind: str) -> None:
    jwk = {**_expected_jwk(KEYS[kind]()), "alg": "whatever the issuer says", "x-extra": 1}
    [kept] = parse_bundle(_jwt_bundle(spire, jwk)).jwt_authorities
    assert kept == {**jwk, "use": "jwt-svid", "kid": "jwt-1"}


def _variants(jwk: dict[str, str]) -> dict[str, dict[str, object]]:
    """Each a twin of ``jwk`` (a P-256 or Ed25519 key, accepted) that is no key we take."""
    first = "x" if jwk["kty"] != "RSA" else "n"
    return {
        "padded": {**jwk, first: jwk[first] + "="},
        "not base64url": {**jwk, first: jwk[first].replace(jwk[first][3], "+", 1)},
        "a member missing": {k: v for k, v in jwk.items() if k != first},
        "a member not a string": {**jwk, first: 7},
    }


def test_a_jwt_authority_that_is_not_such_a_public_key_is_refused(spire: FakeSpire) -> None:
    p256 = _expected_jwk(new_key())
    x, y = (int.from_bytes(base64.urlsafe_b64decode(p256[m] + "="), "big") for m in "xy")
    ed = _expected_jwk(ed25519.Ed25519PrivateKey.generate())
    rsa_jwk = _expected_jwk(rsa.generate_private_key(65537, 2048))
    refused: dict[str, Mapping[str, object]] = {
        "off the curve": {**p256, "y": _b64((y ^ 1).to_bytes(32, "big"))},
        "a 33-byte coordinate": {**p256, "x": _b64(x.to_bytes(33, "big"))},
        "P-256 coordinates named P-384": {**p256, "crv": "P-384"},
        "an unknown curve": {**p256, "crv": "P-192"},
        "no crv": {k: v for k, v in p256.items() if k != "crv"},
        "an X25519 key": {**ed, "crv": "X25519"},
        "Ed25519 bytes named Ed448": {**ed, "crv": "Ed448"},
        "an even RSA exponent": {**rsa_jwk, "e": "Ag"},
        "an empty RSA modulus": {**rsa_jwk, "n": ""},
        **{f"EC, {k}": v for k, v in _variants(p256).items()},
        **{f"OKP, {k}": v for k, v in _variants(ed).items()},
        **{f"RSA, {k}": v for k, v in _variants(rsa_jwk).items()},
    }
    for name, jwk in refused.items():
        assert _refused(_jwt_bundle(spire, jwk)) == "bundle.jwt_key", name
    for jwk in (p256, ed, rsa_jwk):
        parse_bundle(_jwt_bundle(spire, jwk))
