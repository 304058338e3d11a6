"""The suite every attestor must pass (one folder per attestor, one shared suite)."""

from __future__ import annotations

import pytest

from tests.identity.attestors.cases import CASES, AttestorCase, FixedClock
from zerolane.identity.attestors.base import AttestationError
from zerolane.identity.selectors import parse_selector


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> AttestorCase:
    return CASES[request.param](FixedClock())


def test_good_evidence_is_attested(case: AttestorCase) -> None:
    attested = case.attestor.attest(case.good())
    assert attested.method == case.attestor.method
    assert attested.selectors, "an attestation proves at least one selector"
    for selector in attested.selectors:
        parse_selector(selector)
    if case.spiffe_id is not None:
        assert attested.spiffe_id == case.spiffe_id


@pytest.mark.parametrize("junk", [None, 123, "", "garbage", {}, [], "a.b.c", b"\x00"])
def test_malformed_evidence_is_refused_with_a_reason(case: AttestorCase, junk: object) -> None:
    with pytest.raises(AttestationError) as info:
        case.attestor.attest(junk)
    assert info.value.reason
    case.attestor.attest(case.good())  # the legitimate twin still works


def test_bad_evidence_is_refused(case: AttestorCase) -> None:
    assert case.bad, "a case lists evidence that must be refused"
    for evidence in case.bad:
        with pytest.raises(AttestationError):
            case.attestor.attest(evidence)
    case.attestor.attest(case.good())


def test_single_use_evidence_is_refused_the_second_time(case: AttestorCase) -> None:
    evidence = case.good()
    case.attestor.attest(evidence)
    if case.single_use:
        with pytest.raises(AttestationError):
            case.attestor.attest(evidence)
    else:
        case.attestor.attest(evidence)
