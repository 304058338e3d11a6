"""The token itself: is a token accepted past its time, for another audience, with a
forged signature or header; and does the agent's token travel past the target?

Every forgery keeps the real token's claims (``cnf.jkt`` too) and goes out with a
fresh, correct proof of the credential's key, so the token's forgery is the only
difference from the legitimate twin (:mod:`zerolane.probe.forge` builds them).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import replace

from zerolane.probe import forge
from zerolane.probe.callback import CallbackUnavailable, Fetch
from zerolane.probe.context import FRESH, ProbeContext
from zerolane.probe.credentials import Credential
from zerolane.probe.model import Exchange, Need, Outcome, Result, Scenario
from zerolane.probe.profile import Call
from zerolane.probe.runner import judge
from zerolane.probe.wire import forms

#: the audience of a token meant for another enforcement point (wrong-audience)
ELSEWHERE = "urn:zerolane:probe:elsewhere"
#: how long ago a re-signed token expired, and how far ahead its ``nbf`` is: beyond
#: any sensible clock leeway (verifiers allow seconds to a few minutes)
EXPIRED_AGO = 3600
NOT_YET_FOR = 600
#: a short-lived token (no issuer key): its lifetime, the leeway the probe waits out
#: past its ``exp`` (zerolane's verifiers allow 5 s), and the longest the probe waits
SHORT_TTL = 3
EXPIRY_LEEWAY = 5
MAX_WAIT = 10.0
#: the header the passthrough scenario sends to see that the echo route echoes (not an
#: ``X-Zerolane-`` one: zerolane's gateway keeps those to itself)
ECHO_MARKER = "X-Probe-Echo-Marker"
#: seconds the jku / x5u scenarios wait for a fetch of their URL after a refusal (a
#: target may fetch a key set after it answered, in the background)
FETCH_GRACE = 0.5


def _not_a_jwt(scenario: str) -> Result:
    return Result(
        scenario,
        Outcome.NOT_APPLICABLE,
        "the credential's token is not a JWT: there are no claims to forge a token with",
    )


def _as(context: ProbeContext, credential: Credential, token: str) -> Credential:
    """``token`` presented as ``credential`` is (its key proves it), masked in the
    evidence like every token the probe holds."""
    context.wire.remember(token)
    return Credential(token, credential.key, handle=credential.handle)


def _attack(context: ProbeContext, credential: Credential, token: str) -> Exchange:
    return context.send("attack", context.profile.allowed, _as(context, credential, token))


def _forged(
    scenario: str,
    context: ProbeContext,
    forge_all: Callable[[str], list[str]],
) -> Result:
    """The twin with the real token, then each forgery of it with a fresh proof."""
    credential = context.credential()
    try:
        tokens = forge_all(credential.token)
    except forge.NotAJwt:
        return _not_a_jwt(scenario)
    if not tokens:
        return Result(scenario, Outcome.NOT_APPLICABLE, "nothing to forge a token with")
    twin = context.twin(credential)
    return judge(scenario, twin, [_attack(context, credential, token) for token in tokens])


# time


def _retimed(scenario: str, context: ProbeContext, *, expired: bool) -> Result:
    """The issuer's key signs the real claims again: unchanged for the twin, with the
    times moved for the attack."""
    credential = context.credential()
    try:
        claims = forge.Original.of(credential.token).claims
    except forge.NotAJwt:
        return _not_a_jwt(scenario)
    now = int(context.clock())
    lifetime = max(60, int(claims.get("exp", now + 300)) - int(claims.get("iat", now)))
    if expired:
        exp = now - EXPIRED_AGO
        moved = {"iat": exp - lifetime, "nbf": exp - lifetime, "exp": exp}
    else:
        moved = {"iat": now, "nbf": now + NOT_YET_FOR, "exp": now + NOT_YET_FOR + lifetime}
    resigned = _as(context, credential, context.source.sign(claims))
    twin = context.twin(resigned)
    attack = _attack(context, credential, context.source.sign({**claims, **moved}))
    return judge(scenario, twin, [attack])


def _waited_out(context: ProbeContext) -> Result:
    """A token issued for :data:`SHORT_TTL` seconds, used at once (the twin) and again
    once it expired and :data:`EXPIRY_LEEWAY` passed (at most :data:`MAX_WAIT`)."""
    credential = context.fresh(ttl=SHORT_TTL)
    issued = context.clock()
    twin = context.twin(credential)
    try:
        expires = float(forge.Original.of(credential.token).claims["exp"])
    except (forge.NotAJwt, KeyError, TypeError, ValueError):
        expires = issued + SHORT_TTL  # an opaque token: the lifetime asked for
    if not twin.accepted:
        return judge("token.expired", twin, [])
    wait = expires + EXPIRY_LEEWAY + 1 - context.clock()
    if wait > MAX_WAIT:
        return Result(
            "token.expired",
            Outcome.INCONCLUSIVE,
            f"asked for a {SHORT_TTL} s token, the issuer gave one valid {wait:.0f} s more "
            f"(the probe waits at most {MAX_WAIT:.0f} s)",
            (twin,),
        )
    time.sleep(max(0.0, wait))
    attack = context.send("attack", context.profile.allowed, credential)
    return judge("token.expired", twin, [attack])


def _expired(context: ProbeContext) -> Result:
    met = context.meets()
    if Need.ISSUER_KEY in met:
        return _retimed("token.expired", context, expired=True)
    if Need.SHORT_LIVED in met:
        return _waited_out(context)
    return Result(
        "token.expired",
        Outcome.NOT_APPLICABLE,
        "the credentials offer neither the issuer's key nor a short-lived token",
    )


def _nbf_future(context: ProbeContext) -> Result:
    return _retimed("token.nbf_future", context, expired=False)


# audience


def _wrong_audience(context: ProbeContext) -> Result:
    credential = context.credential()
    twin = context.twin(credential)
    other = context.fresh(audience=ELSEWHERE)
    try:
        audience = forge.Original.of(other.token).claims.get("aud")
        ours = forge.Original.of(credential.token).claims.get("aud")
    except forge.NotAJwt:
        audience = ours = None
    named = {audience} if isinstance(audience, str) else set(audience or ())
    here = {ours} if isinstance(ours, str) else set(ours or ())
    if here and here <= named:
        return Result(
            "token.wrong_audience",
            Outcome.INCONCLUSIVE,
            "the token asked for another audience is for every audience the twin's is: "
            "the issuer did not issue a token for elsewhere",
            (twin,),
        )
    attack = context.send("attack", context.profile.allowed, other)
    return judge("token.wrong_audience", twin, [attack])


# passthrough


def _passthrough(context: ProbeContext) -> Result:
    """Each echo route of the profile called right: ``fail`` if any shows the agent's
    token or proof (raw or encoded), ``inconclusive`` if any could not be checked (its
    twin refused, or no echo of the marker), ``pass`` only when every one was."""
    credential = context.credential()
    checked: list[tuple[Exchange, list[str]]] = []
    unchecked: list[Result] = []
    for echo in context.profile.echoes:
        found = _echoed(context, credential, echo)
        if isinstance(found, Result):
            unchecked.append(found)
        else:
            checked.append(found)
    evidence = tuple(twin for twin, _ in checked)
    leaked = [(twin, seen) for twin, seen in checked if seen]
    if not leaked and unchecked:  # a route that says nothing: nothing passes
        said = unchecked[0]
        others = tuple(e for result in unchecked[1:] for e in result.evidence)
        return replace(said, evidence=(*said.evidence, *others, *evidence))
    if leaked:
        seen = leaked[0][1]
        routes = ", ".join(f"{t.method} {t.url}" for t, _ in leaked)
        return Result(
            "token.passthrough",
            Outcome.FAIL,
            f"the agent's {' and '.join(seen)} came back from the upstream ({routes}): the "
            "target passes the client's credential on instead of its own",
            evidence,
        )
    named = "route's upstream" if len(checked) == 1 else f"{len(checked)} routes' upstreams"
    return Result(
        "token.passthrough",
        Outcome.PASS,
        f"the echo {named} answer holds neither the agent's token nor its proof",
        evidence,
    )


def _echoed(
    context: ProbeContext, credential: Credential, echo: Call
) -> tuple[Exchange, list[str]] | Result:
    """The echo route's twin and which of the token and proof came back in it (in any
    form :func:`zerolane.probe.wire.forms` gives), or the ``inconclusive`` result when
    the route could not be checked."""
    url = context.profile.absolute(echo.path)
    proof = context.proof(credential, echo.method, url) if credential.key is not None else None
    marker = secrets.token_hex(16)
    twin = context.send(
        "twin", echo, credential, proof=proof or FRESH, headers={ECHO_MARKER: marker}
    )
    if not twin.accepted:
        return judge("token.passthrough", twin, [])
    if marker.encode() not in twin.body:
        return Result(
            "token.passthrough",
            Outcome.INCONCLUSIVE,
            f"the echo route {echo.method} {echo.path} did not echo the {ECHO_MARKER} header "
            "the probe sent: its answer says nothing about what reached the upstream",
            (twin,),
        )
    secrets_sent = {"token": credential.token}
    if proof is not None:
        secrets_sent["proof"] = proof
    body = twin.body.decode("latin-1")
    seen = [  # in the order sent: the token, then its proof
        name
        for name, value in secrets_sent.items()
        if any(form in body for form in forms(value))
        or any(
            context.wire.mask(value) in shown or value in shown
            for shown in twin.response_headers.values()
        )
    ]
    return twin, seen


# forged signatures and headers


def _alg_none(context: ProbeContext) -> Result:
    return _forged("token.alg_none", context, lambda token: [forge.alg_none(token)])


def _hs256_public_key(context: ProbeContext) -> Result:
    def forge_all(token: str) -> list[str]:
        forge.Original.of(token)  # a JWT, before the issuer's keys are asked for
        return [
            forge.hs256(token, secret, kid=jwk.get("kid"))
            for jwk in context.source.issuer_jwks()
            for _, secret in forge.public_key_forms(jwk)
        ]

    return _forged("token.hs256_public_key", context, forge_all)


def _jwk_injection(context: ProbeContext) -> Result:
    key = forge.ProbeKey()

    def forge_all(token: str) -> list[str]:
        real = forge.Original.of(token).header.get("kid")
        kids = [None, real] if isinstance(real, str) else [None]
        return [forge.with_jwk(token, key, kid=kid) for kid in kids]

    return _forged("token.jwk_injection", context, forge_all)


def _by_url(scenario: str, context: ProbeContext, member: str) -> Result:
    """The real claims signed by a key of the probe's, the token's ``jku`` (a JWK Set)
    or ``x5u`` (a certificate chain) naming where the probe serves that key: a target
    that dereferences the header gets a key that verifies the forgery. Fetching the URL
    at all is a ``fail`` (RFC 8725 3.10: a header makes the verifier request any URL
    an attacker names), whether the token was then refused or not."""
    key = forge.ProbeKey()
    urls: list[str] = []

    def forge_all(token: str) -> list[str]:
        forge.Original.of(token)  # a JWT, before the listener is started
        if member == "jku":
            url = context.callback.publish("jwks.json", key.jwks(), "application/jwk-set+json")
            urls.append(url)
            return [forge.with_jku(token, key, url)]
        url = context.callback.publish(
            "chain.pem", key.certificate_pem(), "application/pem-certificate-chain"
        )
        urls.append(url)
        return [forge.with_x5u(token, key, url)]

    try:
        result = _forged(scenario, context, forge_all)
    except CallbackUnavailable as error:
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            f"the probe could not serve the key its {member} names ({error}): a target that "
            "fetches it would refuse for want of a key, so a refusal proves nothing "
            "(set callback_url, docs/probe.md)",
        )
    if not urls:  # not a JWT: nothing was published, nothing sent
        return result
    (url,) = urls
    wait = 0.0 if result.outcome is Outcome.FAIL else FETCH_GRACE
    fetched = context.callback.fetches(url, wait=wait)
    if not fetched:
        if result.outcome is Outcome.PASS:
            reason = f"{result.reason}; the target never fetched the {member} URL {url}"
            return replace(result, reason=reason)
        return result
    first = fetched[0]
    accepted = result.outcome is Outcome.FAIL
    decided = (
        "and accepted the token signed with the key it found there"
        if accepted
        else "(an SSRF exposure: a token's header makes it request any URL) and then "
        "refused the token"
    )
    reason = (
        f"the target fetched {url}, the {member} the token named ({len(fetched)} request(s), "
        f"the first from {first.client}, User-Agent {first.user_agent!r}) {decided}"
    )
    shown = [_fetched(context, fetch, url) for fetch in fetched]
    return Result(scenario, Outcome.FAIL, reason, (*result.evidence, *shown))


def _fetched(context: ProbeContext, fetch: Fetch, url: str) -> Exchange:
    """A request of the target's for the probe's key material, as evidence: the request
    is the target's, the response what the probe's listener answered."""
    return Exchange(
        "callback",
        fetch.method,
        context.wire.mask(url),
        {"user-agent": context.wire.mask(fetch.user_agent), "x-from": fetch.client},
        0,
        200,
        {},
        "",
        0.0,
    )


def _jku_injection(context: ProbeContext) -> Result:
    return _by_url("token.jku_injection", context, "jku")


def _x5u_injection(context: ProbeContext) -> Result:
    return _by_url("token.x5u_injection", context, "x5u")


def _kid_traversal(context: ProbeContext) -> Result:
    return _forged(
        "token.kid_traversal",
        context,
        lambda token: [forge.with_kid(token, kid) for kid in forge.TRAVERSAL_KIDS],
    )


SCENARIOS = (
    Scenario(
        id="token.expired",
        title="Expired token",
        attack=(
            "Present a correctly signed token past its exp: the real claims re-signed "
            "with the issuer's key an hour expired, or a short-lived token once it ran out."
        ),
        expect="Refused: a token is good until its exp (and a few seconds' leeway), no later.",
        surface="http",
        run=_expired,
    ),
    Scenario(
        id="token.nbf_future",
        title="Token not yet valid",
        attack="Present the real claims re-signed with the issuer's key, nbf ten minutes ahead.",
        expect="Refused: a token is not good before its nbf.",
        surface="http",
        run=_nbf_future,
        needs=frozenset({Need.ISSUER_KEY}),
    ),
    Scenario(
        id="token.wrong_audience",
        title="Token for another audience",
        attack=(
            "Present a token the same issuer gave for another enforcement point "
            "(a confused deputy passing on what it received)."
        ),
        expect="Refused: a token is good only where its aud names.",
        surface="http",
        run=_wrong_audience,
        needs=frozenset({Need.OTHER_AUDIENCE}),
    ),
    Scenario(
        id="token.passthrough",
        title="Agent's token passed to the upstream",
        attack=(
            "Call each route whose upstream echoes what reached it and look for the "
            "agent's token or proof, raw or encoded, in the answer."
        ),
        expect=(
            "Neither comes back: the target presents its own credential upstream, never "
            "the client's."
        ),
        surface="http",
        run=_passthrough,
        needs=frozenset({Need.ECHO}),
    ),
    Scenario(
        id="token.alg_none",
        title="Unsigned token (alg: none)",
        attack="Present the real claims with alg none and an empty signature.",
        expect="Refused: an unsigned token proves nothing.",
        surface="http",
        run=_alg_none,
    ),
    Scenario(
        id="token.hs256_public_key",
        title="HS256 keyed with the issuer's public key",
        attack=(
            "Present the real claims signed HS256 with each issuer public key's PEM, DER "
            "and JWK JSON as the HMAC secret (algorithm confusion)."
        ),
        expect="Refused: the algorithm is the key's, never the token's choice.",
        surface="http",
        run=_hs256_public_key,
        needs=frozenset({Need.ISSUER_JWKS}),
    ),
    Scenario(
        id="token.jwk_injection",
        title="Key embedded in the token (jwk header)",
        attack="Present the real claims signed by the probe's own key, that key in a jwk header.",
        expect="Refused: a token cannot bring the key it is verified with.",
        surface="http",
        run=_jwk_injection,
    ),
    Scenario(
        id="token.jku_injection",
        title="Key set URL named by the token (jku header)",
        attack=(
            "Present the real claims signed by the probe's key, jku naming a JWK Set of "
            "that key the probe serves itself."
        ),
        expect=(
            "Refused, the URL never fetched: keys come from the issuer's configured JWKS, "
            "not from the token."
        ),
        surface="http",
        run=_jku_injection,
    ),
    Scenario(
        id="token.x5u_injection",
        title="Certificate URL named by the token (x5u header)",
        attack=(
            "Present the real claims signed by the probe's key, x5u naming a certificate "
            "of that key the probe serves itself."
        ),
        expect=(
            "Refused, the URL never fetched: keys come from the issuer's configured JWKS, "
            "not from the token."
        ),
        surface="http",
        run=_x5u_injection,
    ),
    Scenario(
        id="token.kid_traversal",
        title="kid path traversal",
        attack=(
            "Present the real claims signed HS256 with an empty key, kid naming /dev/null "
            "through ../ and absolute paths."
        ),
        expect="Refused: a kid selects among known keys; it is never a path or a query.",
        surface="http",
        run=_kid_traversal,
    ),
)
