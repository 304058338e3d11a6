"""X509-SVID validation (SPIFFE X509-SVID spec, sections 4 and 5).

A chain (leaf first) is accepted when:

- the leaf has exactly one URI SAN, a workload SPIFFE ID (with a path) in the
  expected trust domain;
- the leaf is not a CA, its key usage asserts ``digitalSignature`` and neither
  ``keyCertSign`` nor ``cRLSign``; an extended key usage, when present, allows
  client authentication;
- every other presented certificate is a CA asserting ``keyCertSign``;
- every presented certificate is valid at the given time, and the chain verifies
  (signatures, validity, CA constraints, path length) to one of the bundle's roots.

The rules are checked here one by one so each refusal names its reason; path building
and signature checks are ``cryptography``'s verifier, given the same leaf and CA rules
as extension policies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from zerolane.identity.attestors.base import AttestationError
from zerolane.identity.spiffe_id import SpiffeId, SpiffeIdError, parse_workload_id

MAX_CHAIN = 8
MAX_PEM_BYTES = 64 * 1024
_CLIENT_EKUS = frozenset(
    {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
)
_E = TypeVar("_E", bound=x509.ExtensionType)


class X509SvidError(AttestationError):
    """An X509-SVID chain was refused; ``reason`` names the rule (``x509.*``)."""


@dataclass(frozen=True, slots=True)
class VerifiedX509Svid:
    spiffe_id: SpiffeId
    leaf: x509.Certificate
    #: the verified path, leaf first, ending with the bundle root it chains to
    path: tuple[x509.Certificate, ...]


def _fail(rule: str, message: str) -> X509SvidError:
    return X509SvidError(f"x509.{rule}", message)


def parse_chain(pem: object) -> list[x509.Certificate]:
    """Load a PEM chain (leaf first) of 1..``MAX_CHAIN`` certificates."""
    if not isinstance(pem, str) or not pem or len(pem) > MAX_PEM_BYTES:
        raise _fail("malformed", f"the chain must be PEM text of at most {MAX_PEM_BYTES} bytes")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("utf-8", "replace"))
    except ValueError as err:
        raise _fail("malformed", "the chain holds no readable PEM certificate") from err
    if len(certs) > MAX_CHAIN:
        raise _fail("malformed", f"the chain has more than {MAX_CHAIN} certificates")
    return certs


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as err:
        raise _fail("malformed", "a certificate has malformed extensions") from err


def leaf_spiffe_id(leaf: x509.Certificate) -> SpiffeId:
    """The leaf's SPIFFE ID: its one URI SAN, a workload ID."""
    san = _extension(leaf, x509.SubjectAlternativeName)
    uris = san.get_values_for_type(x509.UniformResourceIdentifier) if san is not None else []
    if len(uris) != 1:
        raise _fail("uri_san", "an X509-SVID has exactly one URI SAN, its SPIFFE ID")
    try:
        return parse_workload_id(uris[0])
    except SpiffeIdError as err:
        raise _fail("spiffe_id", f"the URI SAN is not a workload SPIFFE ID ({err.reason})") from err


def _check_leaf(leaf: x509.Certificate) -> None:
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise _fail("leaf_is_ca", "an X509-SVID leaf must not be a CA")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise _fail("key_usage", "an X509-SVID leaf asserts digitalSignature")
    if usage.key_cert_sign or usage.crl_sign:
        raise _fail("key_usage", "an X509-SVID leaf must not assert keyCertSign or cRLSign")
    ekus = _extension(leaf, x509.ExtendedKeyUsage)
    if ekus is not None and not _CLIENT_EKUS.intersection(ekus):
        raise _fail("ext_key_usage", "the leaf's extended key usage excludes client auth")


def _check_signing_cert(cert: x509.Certificate) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.KeyUsage)
    if constraints is None or not constraints.ca or usage is None or not usage.key_cert_sign:
        raise _fail("intermediate", "an intermediate must be a CA asserting keyCertSign")


def _check_validity(chain: Sequence[x509.Certificate], moment: dt.datetime) -> None:
    for cert in chain:
        if moment > cert.not_valid_after_utc:
            raise _fail("expired", "a certificate of the chain has expired")
        if moment < cert.not_valid_before_utc:
            raise _fail("not_yet_valid", "a certificate of the chain is not valid yet")


# The same rules for cryptography's path builder (a raising validator rejects a path).
def _ee_rules(_policy: Policy, leaf: x509.Certificate, _ext: object) -> None:
    _check_leaf(leaf)
    leaf_spiffe_id(leaf)


def _ca_key_usage(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("a CA's key usage must assert keyCertSign")


_AGNOSTIC = Criticality.AGNOSTIC
_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, _AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, _AGNOSTIC, _ca_key_usage)
)
_EE_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.SubjectAlternativeName, _AGNOSTIC, _ee_rules
)


def _verify_path(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: Sequence[x509.Certificate],
    moment: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    if not roots:
        raise _fail("no_roots", "the trust domain's bundle has no X.509 authorities")
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(moment)
        .max_chain_depth(MAX_CHAIN)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        return tuple(verifier.verify(leaf, intermediates).chain)
    except VerificationError as err:
        raise _fail("chain", "the chain does not verify to the trust domain's bundle") from err


def validate(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    trust_domain: str,
    at: float,
) -> VerifiedX509Svid:
    """Validate ``chain`` (leaf first) against ``roots`` at time ``at`` (epoch seconds)."""
    if not chain:
        raise _fail("malformed", "the chain is empty")
    leaf, intermediates = chain[0], list(chain[1:])
    moment = dt.datetime.fromtimestamp(at, tz=dt.UTC)
    try:
        spiffe_id = leaf_spiffe_id(leaf)
        if spiffe_id.trust_domain != trust_domain:
            raise _fail("trust_domain", f"the SVID is not from trust domain {trust_domain!r}")
        _check_leaf(leaf)
        for cert in intermediates:
            _check_signing_cert(cert)
        _check_validity(chain, moment)
        path = _verify_path(leaf, intermediates, roots, moment)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise _fail("malformed", "a certificate of the chain cannot be read") from err
    return VerifiedX509Svid(spiffe_id=spiffe_id, leaf=leaf, path=path)
