"""Project Wycheproof JWS vectors against :func:`zerolane.tokens.jws.verify`.

Every ``invalid`` vector must be refused. Every ``valid`` vector must be accepted when
its algorithm is one we support, and refused otherwise (HMAC, RS384, ES512...).

The vectors live next to the project (``../shared/vectors/wycheproof``). Without them
this module fails (it never skips): a CI run that lost them must not pass quietly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zerolane.tokens.jws import SUPPORTED_ALGORITHMS, JwsError, unverified_header, verify

VECTORS = Path(__file__).parents[2].parent / "shared" / "vectors" / "wycheproof"


@dataclass(frozen=True)
class Vector:
    id: str
    token: str
    keys: list[dict[str, Any]]
    valid: bool
    alg: str | None


def _keys(group: dict[str, Any]) -> list[dict[str, Any]]:
    """The group's public key(s): ``public`` if present, else ``private``; JWK or set."""
    key = group.get("public", group.get("private"))
    assert isinstance(key, dict), "a test group carries its key"
    return list(key["keys"]) if "keys" in key else [key]


def _alg(token: str) -> str | None:
    try:
        alg = unverified_header(token).get("alg")
    except JwsError:
        return None
    return alg if isinstance(alg, str) else None


def _load() -> list[Vector]:
    if not VECTORS.is_dir():
        return []  # test_the_vectors_are_present fails
    vectors = []
    for path in sorted(VECTORS.glob("*.json")):
        doc = json.loads(path.read_text())
        for group in doc.get("testGroups", []):
            for test in group["tests"]:
                if "jws" not in test:
                    continue
                jws = test["jws"]
                token = jws if isinstance(jws, str) else json.dumps(jws)
                vector_id = f"{path.stem}-{test['tcId']}-{test['comment']}"
                valid = test["result"] == "valid"
                vectors.append(Vector(vector_id, token, _keys(group), valid, _alg(token)))
    return vectors


ALL = _load()
INVALID = [v for v in ALL if not v.valid]
VALID_SUPPORTED = [v for v in ALL if v.valid and v.alg in SUPPORTED_ALGORITHMS]
VALID_UNSUPPORTED = [v for v in ALL if v.valid and v.alg not in SUPPORTED_ALGORITHMS]


def _ids(vectors: list[Vector]) -> list[str]:
    return [v.id for v in vectors]


def test_the_vectors_are_present() -> None:
    assert VECTORS.is_dir(), (
        f"Wycheproof vectors not found at {VECTORS} (expected ../shared/vectors/wycheproof "
        "next to the project root)"
    )


def test_the_vectors_exercise_es256() -> None:
    """Guard against a silently empty run: ES256 has valid and invalid vectors."""
    assert any(v.alg == "ES256" for v in VALID_SUPPORTED)
    assert sum(v.alg == "ES256" for v in INVALID) > 10
    assert len(INVALID) > 300


@pytest.mark.parametrize("vector", INVALID, ids=_ids(INVALID))
def test_invalid_vector_is_refused(vector: Vector) -> None:
    with pytest.raises(JwsError):
        verify(vector.token, vector.keys, algorithms=SUPPORTED_ALGORITHMS)


@pytest.mark.parametrize("vector", VALID_SUPPORTED, ids=_ids(VALID_SUPPORTED))
def test_valid_vector_for_a_supported_algorithm_is_accepted(vector: Vector) -> None:
    verified = verify(vector.token, vector.keys, algorithms=SUPPORTED_ALGORITHMS)
    assert verified.header["alg"] == vector.alg


@pytest.mark.parametrize("vector", VALID_UNSUPPORTED, ids=_ids(VALID_UNSUPPORTED))
def test_valid_vector_for_an_unsupported_algorithm_is_refused(vector: Vector) -> None:
    with pytest.raises(JwsError):
        verify(vector.token, vector.keys, algorithms=SUPPORTED_ALGORITHMS)


@pytest.mark.parametrize("vector", VALID_SUPPORTED, ids=_ids(VALID_SUPPORTED))
def test_default_algorithms_accept_only_es256(vector: Vector) -> None:
    """Our own tokens: without an explicit ``algorithms`` only ES256 passes."""
    if vector.alg == "ES256":
        verify(vector.token, vector.keys)
    else:
        with pytest.raises(JwsError):
            verify(vector.token, vector.keys)
