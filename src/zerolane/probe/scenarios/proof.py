"""Sender constraint and proof of possession (RFC 9449): is a token usable without its
key, and is a proof usable twice, elsewhere, by another key, for another request or at
another time?

Each scenario's credential is its own (:meth:`ProbeContext.credential`): a target that
watches for theft (zerolane's detectors) marks a task whose token came with a refused
proof and keeps it from sensitive data afterwards (``risk.high``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.probe.context import ProbeContext
from zerolane.probe.model import Need, Outcome, Result, Scenario
from zerolane.probe.runner import judge
from zerolane.tokens.rfc9449 import PrivateKey

#: how far a stale or future proof's ``iat`` is from now (RFC 9449 leaves the window to
#: the server; minutes, not ten of them, is what servers accept)
SKEW_SECONDS = 600
#: the methods a proof for another method is made for (the first that differs)
_OTHER_METHODS = ("DELETE", "POST", "PUT", "GET")
#: a path of the target that is not the allowed request's
OTHER_PATH = "/zerolane-probe/elsewhere"
#: an origin that is not the target's
OTHER_ORIGIN = "https://elsewhere.zerolane-probe.invalid"


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


def _replayed_elsewhere(context: ProbeContext) -> Result:
    credential = context.credential()
    twin = context.twin(credential)
    thief = context.wire.elsewhere()
    try:
        url = context.profile.absolute(context.profile.allowed.path)
        attack = thief.send(
            "attack",
            context.profile.allowed.method,
            url,
            headers={"Authorization": f"Bearer {credential.token}"},
            body=context.profile.allowed.body,
        )
    finally:
        thief.close()
    result = judge("token.replayed_elsewhere", twin, [attack])
    if result.outcome is Outcome.PASS and attack.status is None:
        # no answer from the other client is not a refusal: nothing is known
        return replace(
            result,
            outcome=Outcome.INCONCLUSIVE,
            reason=f"the other client got no answer ({attack.error}): nothing is known",
        )
    return result


def _replayed(context: ProbeContext) -> Result:
    credential = context.credential()
    call = context.profile.allowed
    url = context.profile.absolute(call.path)
    proof = context.proof(credential, call.method, url)
    twin = context.send("twin", call, credential, proof=proof)
    attack = context.send("attack", call, credential, proof=proof)
    return judge("proof.replayed", twin, [attack])


def _misbound(
    context: ProbeContext,
    scenario: str,
    *,
    method: str | None = None,
    urls: Sequence[str] | None = None,
    key: PrivateKey | None = None,
    iat: int | None = None,
) -> Result:
    """The allowed request made right (the twin), then with a proof that differs in the
    one thing named: signed by ``key``, for ``method``, for each of ``urls``, at ``iat``."""
    credential = context.credential()
    twin = context.twin(credential)
    call = context.profile.allowed
    attacks = [
        context.send(
            "attack",
            call,
            credential,
            proof=context.proof(credential, method or call.method, url, key=key, iat=iat),
        )
        for url in urls or [context.profile.absolute(call.path)]
    ]
    return judge(scenario, twin, attacks)


def _other_key(context: ProbeContext) -> Result:
    thief_key = ec.generate_private_key(ec.SECP256R1())
    return _misbound(context, "proof.other_key", key=thief_key)


def _other_method(context: ProbeContext) -> Result:
    allowed = context.profile.allowed.method.upper()
    method = next(m for m in _OTHER_METHODS if m != allowed)
    return _misbound(context, "proof.other_method", method=method)


def _other_url(context: ProbeContext) -> Result:
    path = context.profile.allowed.path.split("?", 1)[0]
    other_path = OTHER_PATH if path != OTHER_PATH else OTHER_PATH + "-2"
    urls = [context.profile.absolute(other_path), OTHER_ORIGIN + path]
    return _misbound(context, "proof.other_url", urls=urls)


def _skewed(context: ProbeContext, scenario: str, skew: int) -> Result:
    return _misbound(context, scenario, iat=int(context.clock()) + skew)


def _stale_iat(context: ProbeContext) -> Result:
    return _skewed(context, "proof.stale_iat", -SKEW_SECONDS)


def _future_iat(context: ProbeContext) -> Result:
    return _skewed(context, "proof.future_iat", SKEW_SECONDS)


_BOUND = frozenset({Need.PROOF_KEY})

SCENARIOS = (
    Scenario(
        id="token.no_proof",
        title="Token without its proof",
        attack="Present the key-bound token with no DPoP proof, as DPoP and as Bearer.",
        expect="Refused: a sender-constrained token is nothing without a proof of its key.",
        surface="http",
        run=_no_proof,
        needs=_BOUND,
    ),
    Scenario(
        id="token.replayed_elsewhere",
        title="Token replayed from another client",
        attack=(
            "Present the token as a bearer token from a new client and connection, with "
            "nothing but the token (what a thief who copied it from a log holds)."
        ),
        expect=(
            "Refused: the target is sender-constrained (DPoP or mTLS), so a copied token "
            "without its key is worthless; a target that accepts it takes bearer tokens."
        ),
        surface="http",
        run=_replayed_elsewhere,
    ),
    Scenario(
        id="proof.replayed",
        title="Proof replayed",
        attack="Send the same DPoP proof (same jti) a second time.",
        expect="Refused: a proof's jti is spent by its first use.",
        surface="http",
        run=_replayed,
        needs=_BOUND,
    ),
    Scenario(
        id="proof.other_key",
        title="Proof signed by another key",
        attack=(
            "Present the token with a correct proof of the request signed by a key of the "
            "probe's own (a token stolen without its key)."
        ),
        expect="Refused: the proof's key must be the one the token names (cnf.jkt).",
        surface="http",
        run=_other_key,
        needs=_BOUND,
    ),
    Scenario(
        id="proof.other_method",
        title="Proof for another method",
        attack="Send the allowed request with a proof made for another method (htm).",
        expect="Refused: a proof binds the request's method.",
        surface="http",
        run=_other_method,
        needs=_BOUND,
    ),
    Scenario(
        id="proof.other_url",
        title="Proof for another URL",
        attack=(
            "Send the allowed request with a proof made for another path of the target and "
            "with one made for another origin (htu)."
        ),
        expect="Refused: a proof binds the request's URL (scheme, host, port and path).",
        surface="http",
        run=_other_url,
        needs=_BOUND,
    ),
    Scenario(
        id="proof.stale_iat",
        title="Proof with a stale iat",
        attack=f"Send a proof whose iat is {SKEW_SECONDS // 60} minutes in the past.",
        expect="Refused: a proof is accepted only within a short window around its iat.",
        surface="http",
        run=_stale_iat,
        needs=_BOUND,
    ),
    Scenario(
        id="proof.future_iat",
        title="Proof with a future iat",
        attack=f"Send a proof whose iat is {SKEW_SECONDS // 60} minutes in the future.",
        expect="Refused: a proof made ahead of time (signed now, kept for later) is not accepted.",
        surface="http",
        run=_future_iat,
        needs=_BOUND,
    ),
)
