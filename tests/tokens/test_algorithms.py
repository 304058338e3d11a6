"""The one table of algorithms: what the enforcement points advertise and what the
proof verifiers pick for a key come from it."""

from __future__ import annotations

import pytest

from zerolane.tokens.algorithms import (
    ALGORITHMS,
    DPOP_ALGS,
    DPOP_ALGS_HEADER,
    SUPPORTED_ALGORITHMS,
    algorithm_for_key,
)


def test_the_dpop_challenge_advertises_exactly_the_proof_algorithms() -> None:
    assert DPOP_ALGS_HEADER == "ES256 EdDSA"
    assert set(DPOP_ALGS) <= SUPPORTED_ALGORITHMS


def test_no_symmetric_or_unsigned_algorithm_is_in_the_table() -> None:
    assert not {"none", "HS256", "HS384", "HS512"} & SUPPORTED_ALGORITHMS
    assert {spec.kty for spec in ALGORITHMS.values()} == {"EC", "OKP", "RSA"}


@pytest.mark.parametrize(
    ("kty", "crv", "alg"),
    [("EC", "P-256", "ES256"), ("OKP", "Ed25519", "EdDSA")],
)
def test_a_proof_key_names_its_algorithm(kty: str, crv: str, alg: str) -> None:
    assert algorithm_for_key(kty, crv) == alg


@pytest.mark.parametrize(
    ("kty", "crv"),
    [("EC", "P-384"), ("RSA", None), ("OKP", "X25519"), ("EC", "secp256k1"), ("oct", None)],
)
def test_other_keys_cannot_sign_a_proof(kty: str, crv: str | None) -> None:
    assert algorithm_for_key(kty, crv) is None


def test_an_rsa_key_never_names_one_algorithm() -> None:
    assert algorithm_for_key("RSA", None, among=SUPPORTED_ALGORITHMS) is None
    assert algorithm_for_key("EC", "P-384", among=SUPPORTED_ALGORITHMS) == "ES384"
