"""Who is calling: a workload (JWT-SVID + DPoP) or a task holder (task token + DPoP).

Every refusal here has its legitimate twin accepted in the same test.
"""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.tasks.conftest import ADMIN, AGENT, ISSUER, OPEN_URL, TD, Agent, World, build_world
from zerolane.errors import Forbidden, Unauthenticated
from zerolane.identity import svid
from zerolane.identity.keyring import Keyring
from zerolane.server.deployment import Deployment
from zerolane.store.memory.replay import MemoryReplayCache
from zerolane.tasks.auth import (
    Authenticator,
    TaskHolder,
    WorkloadCaller,
)
from zerolane.tokens.rfc9068 import DEFAULT_LEEWAY
from zerolane.types import WorkloadStatus

COMPLETE_URL = f"https://cp.{TD}/v1/tasks/x/complete"


def _workload(
    world: World, agent: Agent, proof: str | None, svid_token: str | None = None
) -> WorkloadCaller:
    token = svid_token or agent.svid
    return world.deployment.authenticator.workload(token, proof, method="POST", url=OPEN_URL)


def test_a_workload_is_its_svid_bound_to_the_key_that_signed_the_proof(
    world: World, agent: Agent
) -> None:
    caller = world.caller(agent)
    assert caller.workload.spiffe_id == AGENT
    assert caller.svid is not None
    assert caller.proof is not None
    assert caller.svid.spiffe_id == AGENT
    assert caller.proof.jkt == agent.jkt == caller.svid.jkt


def test_a_stolen_svid_without_its_key_is_refused(world: World, agent: Agent) -> None:
    thief = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthenticated) as refused:
        _workload(world, agent, world.proof(thief, "POST", OPEN_URL, agent.svid))
    assert refused.value.reason == "dpop.key_mismatch"
    assert world.caller(agent).workload.spiffe_id == AGENT


def test_a_workload_without_a_proof_is_refused(world: World, agent: Agent) -> None:
    with pytest.raises(Unauthenticated) as refused:
        _workload(world, agent, None)
    assert refused.value.reason == "dpop.missing"
    assert world.caller(agent).workload.spiffe_id == AGENT


@pytest.mark.parametrize(
    ("method", "url", "reason"),
    [
        ("POST", f"https://cp.{TD}/v1/decide", "dpop.htu"),
        ("POST", "https://evil.example.net/v1/tasks", "dpop.htu"),
        ("PUT", OPEN_URL, "dpop.htm"),
    ],
)
def test_a_proof_for_another_request_is_refused(
    world: World, agent: Agent, method: str, url: str, reason: str
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        _workload(world, agent, world.proof(agent.key, method, url, agent.svid))
    assert refused.value.reason == reason
    assert _workload(world, agent, world.proof(agent.key, "POST", OPEN_URL, agent.svid))


def test_a_replayed_proof_is_refused(world: World, agent: Agent) -> None:
    proof = world.proof(agent.key, "POST", OPEN_URL, agent.svid)
    assert _workload(world, agent, proof).workload.spiffe_id == AGENT
    with pytest.raises(Unauthenticated) as refused:
        _workload(world, agent, proof)
    assert refused.value.reason == "dpop.replayed"


def test_an_svid_bound_to_no_key_is_refused(world: World) -> None:
    unbound = world.agent(AGENT, bound=False)
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthenticated) as refused:
        _workload(world, unbound, world.proof(key, "POST", OPEN_URL, unbound.svid))
    assert refused.value.reason == "svid.unbound"
    assert world.caller(world.agent(AGENT)).workload.spiffe_id == AGENT


def test_an_svid_for_another_audience_is_refused(world: World, agent: Agent) -> None:
    other = svid.issue(
        world.deployment.keyring,
        world.clock,
        spiffe_id=AGENT,
        audience=["spiffe://elsewhere.org"],
        ttl=300,
        jkt=agent.jkt,
    ).token
    with pytest.raises(Unauthenticated) as refused:
        _workload(world, agent, world.proof(agent.key, "POST", OPEN_URL, other), other)
    assert refused.value.reason == "svid.aud"


def test_an_svid_of_an_unregistered_workload_is_refused(world: World, agent: Agent) -> None:
    ghost = svid.issue(
        world.deployment.keyring,
        world.clock,
        spiffe_id=f"spiffe://{TD}/agents/ghost",
        audience=[ISSUER],
        ttl=300,
        jkt=agent.jkt,
    ).token
    with pytest.raises(Forbidden) as refused:
        _workload(world, agent, world.proof(agent.key, "POST", OPEN_URL, ghost), ghost)
    assert refused.value.reason == "workload.unknown"


def test_a_disabled_workload_is_refused_and_enabled_again_accepted(
    world: World, agent: Agent
) -> None:
    world.deployment.registry.set_status(AGENT, WorkloadStatus.DISABLED, actor=ADMIN)
    with pytest.raises(Forbidden) as refused:
        world.caller(agent)
    assert refused.value.reason == "workload.disabled"
    world.deployment.registry.set_status(AGENT, WorkloadStatus.ENABLED, actor=ADMIN)
    assert world.caller(agent).workload.spiffe_id == AGENT


def test_a_task_token_cannot_open_tasks_in_place_of_an_svid(world: World, agent: Agent) -> None:
    token = world.open(agent).token
    with pytest.raises(Unauthenticated) as refused:
        _workload(world, agent, world.proof(agent.key, "POST", OPEN_URL, token), token)
    assert refused.value.reason == "svid.typ"


def test_an_expired_svid_is_refused(world: World, agent: Agent) -> None:
    claims = jwt.decode(agent.svid, options={"verify_signature": False})
    world.clock.t = claims["exp"] - 1  # the twin first: a deployment's clock never goes back
    assert world.caller(agent).workload.spiffe_id == AGENT
    world.clock.t = claims["exp"] + svid.LEEWAY
    with pytest.raises(Unauthenticated) as refused:
        world.caller(agent)
    assert refused.value.reason == "svid.expired"


# task holders


def _holder(world: World, token: str, proof: str | None, audience: str | None = None) -> TaskHolder:
    return world.deployment.authenticator.task_holder(
        token, proof, method="POST", url=COMPLETE_URL, audience=audience
    )


def test_a_task_holder_is_its_token_bound_to_the_key_that_signed_the_proof(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent)
    holder = _holder(
        world, opened.token, world.proof(agent.key, "POST", COMPLETE_URL, opened.token)
    )
    assert holder.claims.task_id == opened.task.task_id
    assert holder.claims.subject == AGENT
    assert holder.proof is not None
    assert holder.proof.jkt == holder.claims.jkt == agent.jkt
    assert holder.token == opened.token


def test_an_svid_is_not_a_task_token(world: World, agent: Agent) -> None:
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, agent.svid, world.proof(agent.key, "POST", COMPLETE_URL, agent.svid))
    assert refused.value.reason == "token.typ"


def test_a_stolen_task_token_without_its_key_is_refused(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    thief = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, opened.token, world.proof(thief, "POST", COMPLETE_URL, opened.token))
    assert refused.value.reason == "dpop.key_mismatch"
    assert _holder(world, opened.token, world.proof(agent.key, "POST", COMPLETE_URL, opened.token))


def test_a_proof_made_for_another_token_is_refused(world: World, agent: Agent) -> None:
    first, second = world.open(agent), world.open(agent)
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, second.token, world.proof(agent.key, "POST", COMPLETE_URL, first.token))
    assert refused.value.reason == "dpop.ath"
    with pytest.raises(Unauthenticated) as unbound:
        _holder(world, second.token, world.proof(agent.key, "POST", COMPLETE_URL, None))
    assert unbound.value.reason == "dpop.ath"
    assert _holder(world, second.token, world.proof(agent.key, "POST", COMPLETE_URL, second.token))


def test_a_tampered_task_token_is_refused(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    header, _, signature = opened.token.split(".")
    claims = jwt.decode(opened.token, options={"verify_signature": False})
    claims["authorization_details"][0]["actions"].append("delete")
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    forged = f"{header}.{forged_payload}.{signature}"
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, forged, world.proof(agent.key, "POST", COMPLETE_URL, forged))
    assert refused.value.reason == "token.signature"


def test_a_task_token_for_another_audience_is_refused(world: World, agent: Agent) -> None:
    opened = world.open(agent, audience=["https://gw.example.org"])
    with pytest.raises(Unauthenticated) as refused:
        _holder(
            world,
            opened.token,
            world.proof(agent.key, "POST", COMPLETE_URL, opened.token),
            audience="https://other-gw.example.org",
        )
    assert refused.value.reason == "token.audience"
    holder = _holder(
        world,
        opened.token,
        world.proof(agent.key, "POST", COMPLETE_URL, opened.token),
        audience="https://gw.example.org",
    )
    assert holder.claims.audience == (ISSUER, "https://gw.example.org")


def test_an_expired_task_token_is_refused(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    world.clock.t = opened.task.expires_at + DEFAULT_LEEWAY
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, opened.token, world.proof(agent.key, "POST", COMPLETE_URL, opened.token))
    assert refused.value.reason == "token.expired"


def test_a_cached_task_token_is_refused_once_it_expires(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    for _ in range(2):  # the second is answered from the verified-token cache
        proof = world.proof(agent.key, "POST", COMPLETE_URL, opened.token)
        assert _holder(world, opened.token, proof).claims.task_id == opened.task.task_id
    world.clock.t = opened.task.expires_at + DEFAULT_LEEWAY
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, opened.token, world.proof(agent.key, "POST", COMPLETE_URL, opened.token))
    assert refused.value.reason == "token.expired"


def test_a_cached_task_token_is_refused_once_its_key_is_no_longer_published(
    world: World, agent: Agent
) -> None:
    opened = world.open(agent)
    _holder(world, opened.token, world.proof(agent.key, "POST", COMPLETE_URL, opened.token))
    world.deployment.keyring.rotate(publish_for=60)
    world.clock.t += 59  # the retired key is still published
    _holder(world, opened.token, world.proof(agent.key, "POST", COMPLETE_URL, opened.token))
    world.clock.t += 1
    assert world.clock.t < opened.task.expires_at
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, opened.token, world.proof(agent.key, "POST", COMPLETE_URL, opened.token))
    assert refused.value.reason == "token.unknown_key"


def _looking_only_when_asked(world: World) -> tuple[Keyring, Authenticator]:
    """An authenticator whose keyring never looks at the disk again on its own (as if
    the next look were always far away), as in a gateway process while another
    process rotates the keys."""
    keyring = Keyring(world.deployment.home / "keys", world.clock, monotonic=lambda: 0.0)
    authenticator = Authenticator(
        trust_domain=TD,
        keyring=keyring,
        workloads=world.stores,
        replay=MemoryReplayCache(),
        proofs=world.stores,
        clock=world.clock,
    )
    return keyring, authenticator


def test_a_task_token_signed_by_a_key_rotated_in_elsewhere_is_accepted_at_once(
    world: World, agent: Agent
) -> None:
    keyring, authenticator = _looking_only_when_asked(world)
    before = world.open(agent)
    proof = world.proof(agent.key, "POST", COMPLETE_URL, before.token)
    authenticator.task_holder(before.token, proof, method="POST", url=COMPLETE_URL)
    old, new = world.deployment.keyring.rotate(publish_for=600)  # "another process"
    assert [k["kid"] for k in keyring.public_keys()] == [old]  # not looked at since
    opened = world.open(agent)
    assert jwt.get_unverified_header(opened.token)["kid"] == new
    proof = world.proof(agent.key, "POST", COMPLETE_URL, opened.token)
    holder = authenticator.task_holder(opened.token, proof, method="POST", url=COMPLETE_URL)
    assert holder.claims.task_id == opened.task.task_id
    assert {k["kid"] for k in keyring.public_keys()} == {old, new}


def test_an_svid_signed_by_a_key_rotated_in_elsewhere_is_accepted_at_once(
    world: World, agent: Agent
) -> None:
    keyring, authenticator = _looking_only_when_asked(world)
    proof = world.proof(agent.key, "POST", OPEN_URL, agent.svid)
    authenticator.workload(agent.svid, proof, method="POST", url=OPEN_URL)
    old, new = world.deployment.keyring.rotate(publish_for=600)  # "another process"
    newcomer = world.agent(f"spiffe://{TD}/agents/newcomer")
    assert jwt.get_unverified_header(newcomer.svid)["kid"] == new
    assert [k["kid"] for k in keyring.public_keys()] == [old]
    proof = world.proof(newcomer.key, "POST", OPEN_URL, newcomer.svid)
    caller = authenticator.workload(newcomer.svid, proof, method="POST", url=OPEN_URL)
    assert caller.workload.spiffe_id == newcomer.spiffe_id


def test_a_task_token_naming_an_unknown_key_is_refused(world: World, agent: Agent) -> None:
    opened = world.open(agent)
    _, payload, signature = opened.token.split(".")
    other = {**jwt.get_unverified_header(opened.token), "kid": "not-a-published-kid"}
    renamed = jwt.utils.base64url_encode(json.dumps(other).encode()).decode()
    token = f"{renamed}.{payload}.{signature}"
    with pytest.raises(Unauthenticated) as refused:
        _holder(world, token, world.proof(agent.key, "POST", COMPLETE_URL, token))
    assert refused.value.reason == "token.unknown_key"


def test_a_workload_proof_is_spent_for_every_process_and_restart(tmp_path: Path) -> None:
    """A control-plane request (open a task, delegate, ask for a grant) replayed at
    another process of the deployment, or after a restart, is refused: the proof is
    spent in the store, not only in this process's cache."""
    sqlite_world = build_world(tmp_path / "sqlite-home", "sqlite:///zerolane.db")
    try:
        caller = sqlite_world.agent(AGENT)
        proof = sqlite_world.proof(caller.key, "POST", OPEN_URL, caller.svid)
        first = sqlite_world.deployment.authenticator
        assert first.workload(caller.svid, proof, method="POST", url=OPEN_URL)
        restarted = Deployment.open(sqlite_world.deployment.home, sqlite_world.clock)
        try:
            again = restarted.authenticator
            with pytest.raises(Unauthenticated) as refused:
                again.workload(caller.svid, proof, method="POST", url=OPEN_URL)
            assert refused.value.reason == "dpop.replayed"
            fresh = sqlite_world.proof(caller.key, "POST", OPEN_URL, caller.svid)
            assert again.workload(caller.svid, fresh, method="POST", url=OPEN_URL)
        finally:
            restarted.close()
    finally:
        sqlite_world.deployment.close()
