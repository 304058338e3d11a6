"""SPIFFE trust bundle parsing: each refusal next to the document it is a twin of."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

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
