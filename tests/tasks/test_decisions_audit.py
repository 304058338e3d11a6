"""The audit log names what it saw (issue 13 item 2): a request refused after its task
token verified (a replayed proof, a proof signed by another key, another certificate)
is recorded with the workload as actor, the task as subject and the token's id, the
proof's id and the keys, never the token or the proof themselves; an allow names its
token and proof too. Each refusal has its legitimate twin, allowed."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.x509_issuer import HeldSvid
from tests.tasks.conftest import AGENT, FINANCE, Agent, World
from tests.tasks.test_auth_mtls import attest_x509, open_bound
from tests.tasks.test_decisions_proofs import _decide
from zerolane.detection.replay import ReplayDetector
from zerolane.detection.seen import Seen
from zerolane.settings.detection import ReplaySettings
from zerolane.tasks.decisions import DecideInput
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

URL = f"https://{FINANCE}/finance/q3"
READ = DecideInput(
    method="GET",
    url=URL,
    action="read",
    resource="finance/q3",
    destination=FINANCE,
    sensitivity="internal",
)


def _last(world: World) -> dict[str, Any]:
    return world.events("decision")[-1]


def _log_text(world: World) -> str:
    """The whole audit log as stored (every event's body)."""
    return "\n".join(r.body for r in world.any_stores.read_events(0, 100_000))


def _proof_jti(proof: str) -> str:
    payload = proof.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    jti = claims["jti"]
    assert isinstance(jti, str)
    return jti


def test_an_allow_names_its_token_and_proof(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    proof = world.proof(agent.key, "GET", URL, opened.token)
    assert world.deployment.decider.decide(opened.token, proof, READ).allowed
    event = _last(world)
    assert (event["actor"]["id"], event["subject"]) == (AGENT, opened.task.task_id)
    claims_jti = opened.task.token_jti
    assert event["details"]["token_id"] == claims_jti
    assert event["details"]["proof_jti"] == _proof_jti(proof)
    assert event["details"]["jkt"] == agent.jkt
    assert opened.token not in _log_text(world)
    assert proof not in _log_text(world)


def test_a_replayed_proof_is_recorded_with_its_task_token_and_key(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent)
    proofs = []
    for mode in ("sync", "async"):
        replay = world.proof(agent.key, "GET", URL, opened.token)
        proofs.append(replay)
        assert _decide(world.deployment, mode, opened.token, replay).allowed  # the twin
        refused = _decide(world.deployment, mode, opened.token, replay)
        assert (refused.allowed, refused.reasons) == (False, ("dpop.replayed",))
        event = _last(world)
        assert event["reason"] == "dpop.replayed"
        assert event["actor"] == {"type": "workload", "id": AGENT}
        assert event["subject"] == opened.task.task_id
        details = event["details"]
        assert details["task_id"] == opened.task.task_id
        assert details["workload"] == AGENT
        assert details["token_id"] == opened.task.token_jti
        assert details["proof_jti"] == _proof_jti(replay)
        assert details["proof_jkt"] == details["expected_jkt"] == agent.jkt
    text = _log_text(world)
    assert opened.token not in text
    assert opened.token.split(".")[2] not in text  # not even the token's signature
    for proof in proofs:
        assert proof.split(".")[2] not in text  # nor a proof's


def test_a_proof_signed_by_another_key_names_both_keys(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    thief = ec.generate_private_key(ec.SECP256R1())
    forged = world.proof(thief, "GET", URL, opened.token)
    refused = world.deployment.decider.decide(opened.token, forged, READ)
    assert refused.reasons == ("dpop.key_mismatch",)
    event = _last(world)
    assert (event["actor"]["id"], event["subject"]) == (AGENT, opened.task.task_id)
    details = event["details"]
    assert details["expected_jkt"] == agent.jkt
    assert details["proof_jkt"] == thumbprint(proof_jwk(thief)) != agent.jkt
    assert details["proof_jti"] == _proof_jti(forged)
    assert details["token_id"] == opened.task.token_jti
    # the twin: the holder's own key is allowed
    assert world.ask(agent, opened.token).allowed
    assert opened.token not in _log_text(world)
    assert forged not in _log_text(world)


def test_a_proof_refused_before_its_signature_names_no_proof(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    proof = world.proof(agent.key, "GET", URL, opened.token)
    tampered = proof[:-4] + ("AAAA" if not proof.endswith("AAAA") else "BBBB")
    refused = world.deployment.decider.decide(opened.token, tampered, READ)
    assert refused.reasons == ("dpop.signature",)
    details = _last(world)["details"]
    assert _last(world)["subject"] == opened.task.task_id  # the token verified
    assert "proof_jti" not in details
    assert "proof_jkt" not in details
    assert details["expected_jkt"] == agent.jkt
    refused = world.deployment.decider.decide(opened.token, None, READ)  # no proof
    assert refused.reasons == ("dpop.missing",)
    assert _last(world)["details"]["token_id"] == opened.task.token_jti


def test_a_proof_for_another_url_names_it(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    elsewhere = make_proof(
        agent.key,
        method="GET",
        url=f"https://{FINANCE}/finance/q4",
        access_token=opened.token,
        iat=int(world.clock.now()),
    )
    refused = asyncio.run(world.deployment.decider.decide_async(opened.token, elsewhere, READ))
    assert refused.reasons == ("dpop.htu",)
    details = _last(world)["details"]
    assert details["proof_jti"] == _proof_jti(elsewhere)
    assert details["proof_jkt"] == agent.jkt


def test_an_unverified_token_stays_unauthenticated(world: World, agent: Agent) -> None:
    proof = world.proof(agent.key, "GET", URL, "not-a-token")
    refused = world.deployment.decider.decide("not-a-token", proof, READ)
    assert not refused.allowed
    event = _last(world)
    assert (event["actor"]["id"], event["subject"]) == ("unauthenticated", "unknown")
    assert "task_id" not in event["details"]
    assert "proof_jti" not in event["details"]


def test_another_certificate_names_both(world: World) -> None:
    cert_a = attest_x509(world)
    cert_b: HeldSvid = attest_x509(world)
    opened = open_bound(world, cert_a)
    request = dataclasses.replace(READ, client_cert=cert_b.der)
    refused = world.deployment.decider.decide(opened.token, None, request)
    assert refused.reasons == ("mtls.cert_mismatch",)
    event = _last(world)
    assert (event["actor"]["id"], event["subject"]) == (AGENT, opened.task.task_id)
    details = event["details"]
    assert details["expected_x5t"] == cert_a.issued.thumbprint
    assert details["presented_x5t"] == cert_b.issued.thumbprint
    twin = dataclasses.replace(READ, client_cert=cert_a.der)
    assert world.deployment.decider.decide(opened.token, None, twin).allowed


def test_the_replay_detector_attributes_a_replay_to_its_task(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    proof = world.proof(agent.key, "GET", URL, opened.token)
    assert world.deployment.decider.decide(opened.token, proof, READ).allowed
    assert not world.deployment.decider.decide(opened.token, proof, READ).allowed
    detector = ReplayDetector(ReplaySettings())
    found = [
        d for r in world.any_stores.read_events(0, 100_000) for d in detector.observe(Seen.of(r))
    ]
    assert len(found) == 1  # the allow (the twin) did not fire
    assert (found[0].task_id, found[0].workload) == (opened.task.task_id, AGENT)
    assert found[0].subject == opened.task.task_id
