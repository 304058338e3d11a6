"""Certificate-bound tokens (RFC 8705): the thumbprint, the binding check, the task token
with ``cnf.x5t#S256``, and reading a certificate from a proxy's header."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.identity.attestors.cases import FixedClock
from tests.identity.x509_issuer import HeldSvid, issue
from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.identity.ca import X509Authority
from zerolane.identity.keyring import Keyring
from zerolane.tokens.rfc8705 import (
    MtlsError,
    cert_thumbprint,
    check_binding,
    forwarded_cert,
    is_thumbprint,
)
from zerolane.tokens.rfc9068 import TaskTokenClaims, issue_task_token, verify_task_token

NOW = 1_800_000_000
ISSUER = "spiffe://example.org"
AGENT = "spiffe://example.org/agents/a1"


@pytest.fixture
def ca(tmp_path: Path) -> X509Authority:
    return X509Authority(tmp_path / "keys", "example.org", FixedClock(NOW))


@pytest.fixture
def cert_a(ca: X509Authority) -> HeldSvid:
    return issue(ca, AGENT)


@pytest.fixture
def cert_b(ca: X509Authority) -> HeldSvid:
    return issue(ca, AGENT)  # the same workload, another certificate


def test_thumbprint_is_base64url_sha256_of_der(cert_a: HeldSvid) -> None:
    digest = hashlib.sha256(cert_a.der).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert cert_thumbprint(cert_a.der) == expected == cert_a.issued.thumbprint
    assert is_thumbprint(expected)
    assert not is_thumbprint(expected + "=")
    assert not is_thumbprint("abc")
    assert not is_thumbprint(1)


# attack rows with their twins
def test_bound_to_a_presented_with_b_is_refused(cert_a: HeldSvid, cert_b: HeldSvid) -> None:
    with pytest.raises(MtlsError) as refused:
        check_binding(cert_a.issued.thumbprint, cert_b.der)
    assert refused.value.reason == "mtls.cert_mismatch"
    assert isinstance(refused.value, Unauthenticated)  # a 401


def test_bound_to_a_presented_with_a_is_accepted(cert_a: HeldSvid) -> None:
    assert check_binding(cert_a.issued.thumbprint, cert_a.der) == cert_a.issued.thumbprint


@pytest.mark.parametrize("presented", [None, b""])
def test_bound_token_without_a_certificate_is_refused(
    cert_a: HeldSvid, presented: bytes | None
) -> None:
    with pytest.raises(MtlsError) as refused:
        check_binding(cert_a.issued.thumbprint, presented)
    assert refused.value.reason == "mtls.cert_missing"


def test_a_garbled_expected_thumbprint_never_matches(cert_a: HeldSvid) -> None:
    for expected in ("", "é" * 43, cert_a.issued.thumbprint[:-1]):
        with pytest.raises(MtlsError):
            check_binding(expected, cert_a.der)


# the task token
def claims(**changes: Any) -> TaskTokenClaims:
    base = TaskTokenClaims(
        issuer=ISSUER,
        subject=AGENT,
        audience=(ISSUER,),
        issued_at=NOW,
        not_before=NOW,
        expires_at=NOW + 300,
        jti="t-1",
        jkt=None,
        task_id="tsk_1",
        authorization_details=({"type": "zerolane_task"},),
    )
    return replace(base, **changes)


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    ring = Keyring(tmp_path / "ring", FixedClock(NOW))
    ring.create()
    return ring


def test_certificate_bound_task_token_round_trip(keyring: Keyring, cert_a: HeldSvid) -> None:
    x5t = cert_a.issued.thumbprint
    token = issue_task_token(keyring.sign, claims(x5t=x5t))
    assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"x5t#S256": x5t}
    verified = verify_task_token(
        token, keyring.public_keys(), issuer=ISSUER, audience=ISSUER, now=NOW
    )
    assert (verified.x5t, verified.jkt) == (x5t, None)


@pytest.mark.parametrize(
    "changes",
    [{"x5t": None}, {"x5t": "abc"}, {"x5t": "A" * 43, "jkt": "0ZcOCORZNYy-DWpq"}],
    ids=["unbound", "not a thumbprint", "both jkt and x5t"],
)
def test_issue_refuses_anything_but_exactly_one_binding(
    keyring: Keyring, changes: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput) as refused:
        issue_task_token(keyring.sign, claims(**changes))
    assert refused.value.reason == "token.claims"


# a proxy's header
def _pem(held: HeldSvid) -> str:
    return held.issued.leaf.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize(
    "form",
    [
        "nginx $ssl_client_escaped_cert",
        "PEM with tabs ($ssl_client_cert)",
        "PEM on one line",
        "base64 DER",
        "Envoy XFCC",
    ],
)
def test_forwarded_certificate_forms(cert_a: HeldSvid, form: str) -> None:
    pem = _pem(cert_a)
    value = {
        "nginx $ssl_client_escaped_cert": quote(pem, safe=""),
        "PEM with tabs ($ssl_client_cert)": pem.strip().replace("\n", "\n\t"),
        "PEM on one line": pem.replace("\n", " "),
        "base64 DER": base64.b64encode(cert_a.der).decode(),
        "Envoy XFCC": f'By=spiffe://example.org/gw;Hash=abc;Cert="{quote(pem, safe="")}";'
        'Subject="O=zerolane,CN=x";URI=spiffe://example.org/agents/a1',
    }[form]
    assert forwarded_cert(value) == cert_a.der


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        "A" * 60_000,
    ],
)
def test_forwarded_garbage_is_refused(value: str) -> None:
    with pytest.raises(MtlsError) as refused:
        forwarded_cert(value)
    assert refused.value.reason == "mtls.cert_malformed"


def test_xfcc_with_two_certificates_is_refused(cert_a: HeldSvid, cert_b: HeldSvid) -> None:
    one = quote(_pem(cert_a), safe="")
    two = quote(_pem(cert_b), safe="")
    with pytest.raises(MtlsError) as refused:
        forwarded_cert(f'Cert="{one}",Cert="{two}"')
    assert refused.value.reason == "mtls.cert_malformed"
    assert forwarded_cert(f'Cert="{two}"') == cert_b.der  # the twin: one element


@pytest.mark.parametrize("encoded", [True, False], ids=["url-encoded", "raw"])
def test_a_header_with_two_pem_certificates_is_refused(
    cert_a: HeldSvid, cert_b: HeldSvid, encoded: bool
) -> None:
    """Which one would be meant is a guess: the leaf a proxy forwards is one certificate.
    (The twin, one PEM, is test_forwarded_certificate_forms.)"""
    both = _pem(cert_a) + _pem(cert_b)
    value = quote(both, safe="") if encoded else both.replace("\n", " ")
    with pytest.raises(MtlsError) as refused:
        forwarded_cert(value)
    assert refused.value.reason == "mtls.cert_malformed"
