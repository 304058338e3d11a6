"""Sender constraint and proof of possession (RFC 9449): is a token usable without its
key, and is a proof usable twice, elsewhere or by another key?"""

from __future__ import annotations

from zerolane.probe.context import ProbeContext
from zerolane.probe.model import Need, Result, Scenario
from zerolane.probe.runner import judge


def _no_proof(context: ProbeContext) -> Result:
    credential = context.credential()
    twin = context.twin(credential)
    call = context.profile.allowed
    attacks = [
        context.send("attack", call, credential, proof=None),
        context.send(
            "attack",
            call,
            credential,
            proof=None,
            headers={"Authorization": f"Bearer {credential.token}"},
        ),
    ]
    return judge("token.no_proof", twin, attacks)


def _replayed(context: ProbeContext) -> Result:
    credential = context.credential()
    call = context.profile.allowed
    url = context.profile.absolute(call.path)
    proof = context.proof(credential, call.method, url)
    twin = context.send("twin", call, credential, proof=proof)
    attack = context.send("attack", call, credential, proof=proof)
    return judge("proof.replayed", twin, [attack])


SCENARIOS = (
    Scenario(
        id="token.no_proof",
        title="Token without its proof",
        attack="Present the key-bound token with no DPoP proof, as DPoP and as Bearer.",
        expect="Refused: a sender-constrained token is nothing without a proof of its key.",
        surface="http",
        run=_no_proof,
        needs=frozenset({Need.PROOF_KEY}),
    ),
    Scenario(
        id="proof.replayed",
        title="Proof replayed",
        attack="Send the same DPoP proof (same jti) a second time.",
        expect="Refused: a proof's jti is spent by its first use.",
        surface="http",
        run=_replayed,
        needs=frozenset({Need.PROOF_KEY}),
    ),
)
