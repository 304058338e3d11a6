"""End to end: init and up as real processes, a join token attested over HTTP."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.e2e.conftest import Server, run
from zerolane.tokens.rfc7638 import thumbprint

pytestmark = pytest.mark.e2e
TD = "example.org"
AGENT = "spiffe://example.org/agents/builder"


def _public_jwk() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    full = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {k: full[k] for k in ("kty", "crv", "x", "y")}


def test_join_token_attestation_end_to_end(tmp_path: Path, server_factory: type[Server]) -> None:
    home = tmp_path / "home"
    init = run("init", "--trust-domain", TD, "--home", str(home))
    admin = init.stdout.strip().splitlines()[-1]
    assert admin.startswith("zla_")
    assert admin not in (home / "zerolane.toml").read_text()

    run("workload", "register", AGENT, "--home", str(home))
    token = run("attest", "join-token", AGENT, "--ttl", "5m", "--home", str(home)).stdout.strip()

    server = server_factory(home)
    server.start()
    jwk = _public_jwk()
    first = httpx.post(f"{server.url}/v1/attest", json={"join_token": token, "public_jwk": jwk})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["spiffe_id"] == AGENT

    # The SVID verifies with PyJWT against the published key set, and nothing else.
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
    assert all("d" not in key for key in jwks["keys"])
    header = jwt.get_unverified_header(body["svid"])
    assert set(header) == {"alg", "kid", "typ"}
    signing_key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(
        body["svid"], signing_key.key, algorithms=["ES256"], audience=f"spiffe://{TD}"
    )
    assert claims["sub"] == AGENT
    assert claims["cnf"] == {"jkt": thumbprint(jwk)}
    assert claims["exp"] - claims["iat"] == 300
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(body["svid"], signing_key.key, algorithms=["ES256"], audience="other")

    # The same join token a second time is refused, and that refusal is audited.
    second = httpx.post(f"{server.url}/v1/attest", json={"join_token": token})
    assert second.status_code == 401
    assert second.json()["reason"] == "join_token.used"

    bundle = httpx.get(f"{server.url}/.well-known/spiffe-bundle").json()
    assert bundle["spiffe_sequence"] == 1
    assert [k["use"] for k in bundle["keys"]] == ["jwt-svid", "x509-svid"]  # + the X.509 CA
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'zerolane_attestations_total{outcome="denied",reason="join_token.used"} 1.0' in metrics
    server.stop()

    tail = run("audit", "tail", "--json", "-n", "50", "--home", str(home)).stdout
    events = [json.loads(line) for line in tail.splitlines()]
    kinds = [(e["kind"], e["outcome"], e["reason"]) for e in events]
    assert ("attestation", "success", "ok") in kinds
    assert ("svid.issued", "success", "ok") in kinds
    assert ("attestation", "denied", "join_token.used") in kinds
    assert token not in tail
    assert body["svid"] not in tail

    assert run("audit", "verify", "--home", str(home)).returncode == 0

    # An insider edits one event in the database: verification names it.
    db = sqlite3.connect(home / "zerolane.db")
    with db:
        db.execute(
            "UPDATE audit_events SET body = replace(body, 'denied', 'success') "
            "WHERE kind = 'attestation' AND outcome = 'denied'"
        )
    edited_seq = next(
        e["seq"] for e in events if e["kind"] == "attestation" and e["outcome"] == "denied"
    )
    db.close()
    broken = run("audit", "verify", "--home", str(home), check=False)
    assert broken.returncode == 1
    assert f"BROKEN at event {edited_seq}" in broken.stderr


def test_init_refuses_an_existing_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run("init", "--trust-domain", TD, "--home", str(home))
    keys_before = sorted(p.name for p in (home / "keys").iterdir())
    again = run("init", "--trust-domain", TD, "--home", str(home), check=False)
    assert again.returncode == 2
    assert "home.exists" in again.stderr
    assert sorted(p.name for p in (home / "keys").iterdir()) == keys_before


def test_invalid_spiffe_id_exits_2_naming_the_rule(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run("init", "--trust-domain", TD, "--home", str(home))
    bad = run("workload", "register", "spiffe://example.org/a//b", "--home", str(home), check=False)
    assert bad.returncode == 2
    assert "spiffe_id.empty_segment" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    good = run("workload", "register", "spiffe://example.org/a/b", "--home", str(home))
    assert good.returncode == 0
