"""Certificate-bound task tokens (RFC 8705) in the core: a workload authenticated by its
X.509-SVID opens a task whose token carries ``cnf.x5t#S256``, and the token is then
accepted only with that certificate. Every refusal has its legitimate twin.

Most rows test :class:`~zerolane.tasks.auth.Authenticator` directly; the last ones go
through the Decider and need its input to carry the certificate
(``DecideInput.client_cert``, passed on to ``task_holder``).
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.identity.attestors.cases import FixedClock
from tests.identity.x509_issuer import HeldSvid, csr_for, issue
from tests.tasks.conftest import ADMIN, AGENT, FINANCE, PEER, TD, Agent, World
from zerolane.errors import Forbidden, Refusal, Unauthenticated
from zerolane.identity.ca import X509Authority
from zerolane.identity.service import AttestRequest
from zerolane.tasks.auth import WorkloadCaller
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tasks.lifecycle import OpenedTask, OpenRequest
from zerolane.tokens.rfc8705 import cert_thumbprint
from zerolane.types import TaskState, WorkloadStatus

URL = f"https://{FINANCE}/finance/q3"


def attest_x509(world: World, spiffe_id: str = AGENT, ttl: int | None = None) -> HeldSvid:
    """Register ``spiffe_id`` (once) and attest it with a CSR, as the SDK does."""
    deployment = world.deployment
    if world.any_stores.get_workload(spiffe_id) is None:
        deployment.registry.register(spiffe_id, selectors=[], owner="team", actor=ADMIN)
    key = ec.generate_private_key(ec.SECP256R1())
    join = deployment.join_tokens.create(spiffe_id, ttl=600, actor=ADMIN).token
    attested = deployment.identity.attest_all(
        AttestRequest(evidence={"join_token": join}, csr=csr_for(key), ttl=ttl)
    )
    assert attested.x509 is not None
    return HeldSvid(key, attested.x509)


def by_cert(world: World, held: HeldSvid | None) -> WorkloadCaller:
    return world.deployment.authenticator.workload_by_certificate(held.der if held else None)


def open_bound(world: World, held: HeldSvid, **options: Any) -> OpenedTask:
    return world.deployment.lifecycle.open(
        by_cert(world, held),
        OpenRequest(intent="Summarize Q3 results", playbook="reports", **options),
    )


def holder(world: World, token: str, cert: bytes | None, proof: str | None = None) -> Any:
    return world.deployment.authenticator.task_holder(
        token, proof, method="GET", url=URL, client_cert=cert
    )


@pytest.fixture
def cert_a(world: World) -> HeldSvid:
    return attest_x509(world)


def test_a_workload_is_its_x509_svid(world: World, cert_a: HeldSvid) -> None:
    caller = by_cert(world, cert_a)
    assert caller.workload.spiffe_id == AGENT
    assert (caller.svid, caller.proof, caller.jkt) == (None, None, None)
    assert caller.x5t == cert_thumbprint(cert_a.der)


def test_task_opened_by_certificate_is_bound_to_it(world: World, cert_a: HeldSvid) -> None:
    opened = open_bound(world, cert_a)
    claims = jwt.decode(opened.token, options={"verify_signature": False})
    assert claims["cnf"] == {"x5t#S256": cert_a.issued.thumbprint}
    assert opened.task.jkt == f"x5t#S256:{cert_a.issued.thumbprint}"
    event = [e for e in world.events("task.opened")][-1]
    assert event["details"]["jkt"] == opened.task.jkt


def test_token_never_outlives_its_certificate(world: World) -> None:
    short = attest_x509(world, ttl=60)
    opened = open_bound(world, short, ttl=600)
    assert opened.task.expires_at == short.issued.expires_at
    claims = jwt.decode(opened.token, options={"verify_signature": False})
    assert claims["exp"] == short.issued.expires_at


# attack rows with their twins: at decision time
def test_token_bound_to_a_presented_with_b_is_refused(world: World, cert_a: HeldSvid) -> None:
    cert_b = attest_x509(world)  # the same workload's other certificate
    token = open_bound(world, cert_a).token
    with pytest.raises(Unauthenticated) as refused:
        holder(world, token, cert_b.der)
    assert refused.value.reason == "mtls.cert_mismatch"
    accepted = holder(world, token, cert_a.der)  # the twin: the certificate it names
    assert (accepted.claims.x5t, accepted.proof) == (cert_a.issued.thumbprint, None)


def test_token_bound_to_a_certificate_needs_it_even_with_a_proof(
    world: World, cert_a: HeldSvid, agent: Agent
) -> None:
    token = open_bound(world, cert_a).token
    with pytest.raises(Unauthenticated) as refused:
        holder(world, token, None)
    assert refused.value.reason == "mtls.cert_missing"
    proof = world.proof(agent.key, "GET", URL, token)  # a DPoP proof binds nothing here
    with pytest.raises(Unauthenticated) as refused:
        holder(world, token, None, proof)
    assert refused.value.reason == "mtls.cert_missing"
    assert holder(world, token, cert_a.der).claims.task_id


def test_dpop_token_ignores_a_certificate_and_needs_its_proof(
    world: World, agent: Agent, cert_a: HeldSvid
) -> None:
    token = world.open(agent).token
    with pytest.raises(Unauthenticated) as refused:
        holder(world, token, cert_a.der)  # a certificate does not replace the proof
    assert refused.value.reason == "dpop.missing"
    proof = world.proof(agent.key, "GET", URL, token)
    assert holder(world, token, cert_a.der, proof).proof is not None


# who may authenticate by certificate
def test_expired_x509_svid_is_refused(world: World) -> None:
    held = attest_x509(world, ttl=60)
    clock = world.clock
    assert isinstance(clock, FixedClock)
    clock.t += 59
    assert by_cert(world, held).workload.spiffe_id == AGENT
    clock.t += 2
    with pytest.raises(Unauthenticated) as refused:
        by_cert(world, held)
    assert refused.value.reason == "x509.expired"


def test_x509_svid_of_another_ca_is_refused(world: World, tmp_path: Any) -> None:
    ours = attest_x509(world)
    other_domain = X509Authority(tmp_path / "other", "other.example", world.clock)
    same_name = X509Authority(tmp_path / "impostor", TD, world.clock)
    for held, reason in (
        (issue(other_domain, "spiffe://other.example/agents/a1"), "x509.trust_domain"),
        (issue(same_name, AGENT), "x509.chain"),
    ):
        with pytest.raises(Unauthenticated) as refused:
            by_cert(world, held)
        assert refused.value.reason == reason
    assert by_cert(world, ours).workload.spiffe_id == AGENT


def test_certificate_of_a_disabled_or_unknown_workload_is_refused(world: World) -> None:
    held = attest_x509(world, PEER)
    assert by_cert(world, held).workload.spiffe_id == PEER
    world.deployment.registry.set_status(PEER, WorkloadStatus.DISABLED, actor=ADMIN)
    with pytest.raises(Forbidden) as refused:
        by_cert(world, held)
    assert refused.value.reason == "workload.disabled"
    stranger = issue(world.deployment.x509_ca, f"spiffe://{TD}/agents/unregistered")
    with pytest.raises(Forbidden) as refused:
        by_cert(world, stranger)
    assert refused.value.reason == "workload.unknown"


def test_no_certificate_no_caller(world: World) -> None:
    with pytest.raises(Unauthenticated) as refused:
        by_cert(world, None)
    assert refused.value.reason == "mtls.cert_missing"


# through the Decider (DecideInput.client_cert, passed on to task_holder)
def decide(world: World, token: str, cert: bytes | None) -> Decision:
    request = DecideInput(
        method="GET",
        url=URL,
        action="read",
        resource="finance/q3",
        destination=FINANCE,
        sensitivity="internal",
        client_cert=cert,
    )
    return world.deployment.decider.decide(token, None, request)


def test_decider_allows_the_bound_certificate_only(world: World, cert_a: HeldSvid) -> None:
    cert_b = attest_x509(world)
    opened = open_bound(world, cert_a)
    for cert, reason in ((None, "mtls.cert_missing"), (cert_b.der, "mtls.cert_mismatch")):
        refused = decide(world, opened.token, cert)
        assert (refused.allowed, refused.refusal, refused.reasons) == (
            False,
            Refusal.UNAUTHENTICATED,
            (reason,),
        )
    allowed = decide(world, opened.token, cert_a.der)  # no DPoP proof at all
    assert allowed.allowed, allowed.reasons
    assert world.task(opened.task.task_id).calls_used == 1
    world.deployment.lifecycle.revoke(opened.task.task_id, actor=ADMIN)
    ended = decide(world, opened.token, cert_a.der)
    assert ended.reasons == (f"task.{TaskState.REVOKED.value}",)
