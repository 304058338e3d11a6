"""Token scenarios against zerolane's gateway: every one passes (the twin allowed, each
forgery refused with a fresh, correct proof), and each says not_applicable or
inconclusive, never pass, when it cannot tell."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.gateway.conftest import Stack
from tests.probe.conftest import gateway_profile
from tests.probe.weak_target import AUDIENCE as WEAK_AUDIENCE
from tests.probe.weak_target import OTHER_AUDIENCE, Weakness, WeakTarget
from zerolane.cli.probe_home import HomeSource
from zerolane.probe import forge
from zerolane.probe.callback import Callback
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential, CredentialSource, StaticBearer
from zerolane.probe.forge import Original
from zerolane.probe.model import Need, Outcome, Result
from zerolane.probe.oauth import ClientCredentials, ClientSecret
from zerolane.probe.profile import Call
from zerolane.probe.runner import run, run_one
from zerolane.probe.scenarios import by_id, tokens
from zerolane.probe.wire import Wire

IDS = [scenario.id for scenario in tokens.SCENARIOS]
#: the reason zerolane's gateway gives for each scenario's attacks
REASONS = {
    "token.expired": {"token.expired"},
    "token.nbf_future": {"token.not_yet_valid"},
    "token.wrong_audience": {"token.audience"},
    "token.alg_none": {"token.signature", "token.algorithm"},
    "token.hs256_public_key": {"token.signature", "token.algorithm"},
    "token.jwk_injection": {"token.signature", "token.unknown_key"},
    "token.jku_injection": {"token.signature", "token.unknown_key"},
    "token.x5u_injection": {"token.signature", "token.unknown_key"},
    "token.kid_traversal": {"token.signature", "token.unknown_key", "token.algorithm"},
}


class Limited:
    """Another source seen through: only ``meets``, and optionally a source that
    ignores the ttl or audience asked for, or hands out its tokens without their key."""

    def __init__(
        self,
        inner: CredentialSource,
        meets: frozenset[Need],
        *,
        ignore_ttl: bool = False,
        ignore_audience: bool = False,
        bearer: bool = False,
    ) -> None:
        self.inner = inner
        self.meets = meets
        self.kind = inner.kind
        self._ignore_ttl = ignore_ttl
        self._ignore_audience = ignore_audience
        self._bearer = bearer

    def issue(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        credential = self.inner.issue(
            ttl=None if self._ignore_ttl else ttl,
            audience=None if self._ignore_audience else audience,
        )
        return Credential(credential.token) if self._bearer else credential

    def complete(self, credential: Credential) -> None:
        self.inner.complete(credential)

    def revoke(self, credential: Credential) -> None:
        self.inner.revoke(credential)

    def delegate(self, credential: Credential, *, wider: bool) -> Credential:
        return self.inner.delegate(credential, wider=wider)

    def sign(self, claims: Mapping[str, Any]) -> str:
        return self.inner.sign(claims)

    def issuer_jwks(self) -> list[dict[str, Any]]:
        return self.inner.issuer_jwks()

    def close(self) -> None:
        self.inner.close()


def _context(
    stack: Stack, source: CredentialSource, *, callback: Callback | None = None, **profile: Any
) -> ProbeContext:
    profiled = dataclasses.replace(gateway_profile(stack), **profile)
    return ProbeContext(profiled, source, Wire(), callback=callback)


def _outcome(context: ProbeContext, scenario: str) -> Result:
    try:
        return run_one(by_id()[scenario], context)
    finally:
        context.wire.close()


def test_every_token_scenario_passes_against_the_gateway(gateway_context: ProbeContext) -> None:
    report = run(tokens.SCENARIOS, gateway_context)
    outcomes = {result.scenario: result.outcome for result in report.results}
    assert outcomes == dict.fromkeys(IDS, Outcome.PASS), [r.reason for r in report.results]
    for result in report.results:
        twin, *attacks = result.evidence
        assert twin.role == "twin", result.scenario
        assert twin.status == 200, result.scenario
        if result.scenario == "token.passthrough":
            assert attacks == []  # what the twin's answer holds is the verdict
            continue
        assert attacks, result.scenario
        for attack in attacks:
            assert attack.role == "attack", result.scenario
            assert attack.status == 401, result.scenario
            # each attack went with a proof, and was refused for its token
            assert attack.request_headers["authorization"].startswith("DPoP "), result.scenario
            assert "dpop" in attack.request_headers, result.scenario
            assert any(r in attack.response_excerpt for r in REASONS[result.scenario]), (
                result.scenario,
                attack.response_excerpt,
            )
    shown = repr([[e.to_json() for e in r.evidence] for r in report.results])
    assert gateway_context.credential().token not in shown
    assert "eyJ" not in shown  # no token, forged or real, and no proof in the evidence


def test_a_forgery_keeps_the_real_claims(gateway_context: ProbeContext) -> None:
    """The attack's token differs from the twin's in its header and signature only: the
    gateway's refusal is for the forgery, not for a claim the probe changed."""
    sent: list[str] = []
    wire = gateway_context.wire
    original_send = wire.send

    def spy(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(kwargs["headers"]["Authorization"]).partition(" ")[2])
        return original_send(*args, **kwargs)

    wire.send = spy  # type: ignore[method-assign]
    result = run_one(by_id()["token.alg_none"], gateway_context)
    assert result.outcome is Outcome.PASS
    twin_token, attack_token = sent
    assert Original.of(attack_token).claims == Original.of(twin_token).claims
    assert Original.of(attack_token).header["alg"] == "none"


def test_an_expired_short_lived_token_is_refused(stack: Stack, home_source: HomeSource) -> None:
    """Without the issuer's key: a 3 s token, used at once (the twin), then again after
    its exp and the leeway (the probe waits about 9 s: documented, capped at 10)."""
    source = Limited(home_source, frozenset({Need.SHORT_LIVED}))
    result = _outcome(_context(stack, source), "token.expired")
    assert result.outcome is Outcome.PASS, result.reason
    twin, attack = result.evidence
    assert twin.status == 200
    assert attack.status == 401
    assert "token.expired" in attack.response_excerpt


def test_a_token_longer_lived_than_the_probe_waits_is_inconclusive(
    stack: Stack, home_source: HomeSource
) -> None:
    source = Limited(home_source, frozenset({Need.SHORT_LIVED}), ignore_ttl=True)
    result = _outcome(_context(stack, source), "token.expired")
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "waits at most" in result.reason


def test_a_refused_twin_is_inconclusive_never_a_pass(stack: Stack, home_source: HomeSource) -> None:
    """The gateway refuses a bound token presented without its key: every scenario's
    twin fails, and none is a pass."""
    source = Limited(home_source, HomeSource.meets, bearer=True)
    context = _context(stack, source)
    try:
        report = run(tokens.SCENARIOS, context)
    finally:
        context.wire.close()
    assert {r.scenario: r.outcome for r in report.results} == dict.fromkeys(
        IDS, Outcome.INCONCLUSIVE
    )
    short = Limited(home_source, frozenset({Need.SHORT_LIVED}), bearer=True)
    assert _outcome(_context(stack, short), "token.expired").outcome is Outcome.INCONCLUSIVE


def test_an_issuer_that_ignores_the_other_audience_is_inconclusive(
    stack: Stack, home_source: HomeSource
) -> None:
    source = Limited(home_source, HomeSource.meets, ignore_audience=True)
    result = _outcome(_context(stack, source), "token.wrong_audience")
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "did not issue a token for elsewhere" in result.reason


def test_an_echo_route_that_does_not_echo_is_inconclusive(
    stack: Stack, home_source: HomeSource
) -> None:
    """An allowed route that answers something else proves nothing about passthrough."""
    context = _context(stack, home_source, echo=Call("GET", "/finance/download/16"))
    result = _outcome(context, "token.passthrough")
    assert result.outcome is Outcome.INCONCLUSIVE
    assert tokens.ECHO_MARKER in result.reason


def test_what_the_credentials_lack_is_not_applicable(stack: Stack, home_source: HomeSource) -> None:
    """A static bearer token (no issuer key, no short life, no other audience, no key
    set) and a target without an echo route: those scenarios are not applicable."""
    token = home_source.issue().token
    context = _context(stack, StaticBearer(token), echo=None)
    try:
        report = run(tokens.SCENARIOS, context)
    finally:
        context.wire.close()
    outcomes = {r.scenario: r.outcome for r in report.results}
    needing = {
        "token.expired",
        "token.nbf_future",
        "token.wrong_audience",
        "token.passthrough",
        "token.hs256_public_key",
    }
    assert {s for s, o in outcomes.items() if o is Outcome.NOT_APPLICABLE} == needing
    # the rest run: the gateway refuses a bearer twin, so they cannot pass either
    assert all(outcomes[s] is Outcome.INCONCLUSIVE for s in set(IDS) - needing)


@pytest.mark.parametrize("meets", [frozenset(), HomeSource.meets])
def test_an_opaque_token_has_nothing_to_forge(
    stack: Stack, home_source: HomeSource, meets: frozenset[Need]
) -> None:
    """A token that is not a JWT: every forgery (and the re-signed expiry) is not
    applicable, without a request sent."""
    forging = set(IDS) - {"token.wrong_audience", "token.passthrough"}
    if not meets:
        forging -= {"token.expired", "token.nbf_future", "token.hs256_public_key"}
    source = Limited(StaticBearer("opaque-token-of-another-kind"), meets)
    context = _context(stack, source)
    try:
        results = [run_one(by_id()[scenario], context) for scenario in sorted(forging)]
    finally:
        context.wire.close()
    for result in results:
        assert result.outcome is Outcome.NOT_APPLICABLE, result.scenario
        assert "not a JWT" in result.reason
        assert result.evidence == ()


def test_a_key_set_without_public_keys_is_not_applicable(
    stack: Stack, home_source: HomeSource
) -> None:
    class SharedSecret(Limited):
        def issuer_jwks(self) -> list[dict[str, Any]]:
            return [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]

    context = _context(stack, SharedSecret(home_source, HomeSource.meets))
    assert _outcome(context, "token.hs256_public_key").outcome is Outcome.NOT_APPLICABLE


# against the weak target: each weakness is the one failure


def _weak_context(target: WeakTarget, *, issuer_key: bool = True) -> ProbeContext:
    """The probe as it meets a target that is not zerolane: a client-credentials
    source (its JWKS, another audience), plus, for the re-signed scenarios, the
    issuer's key (what a zerolane home gives; here the test holds the weak issuer's)."""
    client = ClientSecret(target.client_id, target.client_secret, "client_secret_basic")
    oauth = ClientCredentials(
        target.token_url,
        client=client,
        scope="read",
        resource=WEAK_AUDIENCE,
        other_audience=OTHER_AUDIENCE,
        jwks_uri=target.jwks_url,
    )

    class Signing(Limited):
        def sign(self, claims: Mapping[str, Any]) -> str:
            return target.sign(claims)

    extra = {Need.ISSUER_KEY} if issuer_key else set()
    source = Signing(oauth, oauth.meets | extra)
    return ProbeContext(target.profile(), source, Wire())


def _weak_outcomes(target: WeakTarget, *, issuer_key: bool = True) -> dict[str, Outcome]:
    context = _weak_context(target, issuer_key=issuer_key)
    try:
        report = run(tokens.SCENARIOS, context)
    finally:
        context.close()
        context.wire.close()
    return {result.scenario: result.outcome for result in report.results}


WEAKNESSES = {
    Weakness.IGNORES_AUDIENCE: {"token.wrong_audience"},
    Weakness.ALG_NONE: {"token.alg_none"},
    Weakness.PASSTHROUGH: {"token.passthrough"},
    Weakness.PASSTHROUGH_SECOND_ROUTE: {"token.passthrough"},
    Weakness.IGNORES_EXPIRY: {"token.expired", "token.nbf_future"},
    Weakness.TRUSTS_JWK_HEADER: {"token.jwk_injection"},
    Weakness.HS256_PUBLIC_KEY: {"token.hs256_public_key"},
    Weakness.TRUSTS_JKU_HEADER: {"token.jku_injection"},
    Weakness.TRUSTS_X5U_HEADER: {"token.x5u_injection"},
    # fetching the URL a header names is the finding, whatever is decided after
    Weakness.FETCHES_KEY_URLS: {"token.jku_injection", "token.x5u_injection"},
}


@pytest.mark.parametrize("weakness", [None, *WEAKNESSES], ids=str)
def test_each_weakness_is_the_one_failure(weakness: Weakness | None) -> None:
    """Against a sound independent target every token scenario passes; with one
    weakness switched on, the matching scenarios fail and every other still passes."""
    with WeakTarget(weakness) as target:
        outcomes = _weak_outcomes(target)
    failing = WEAKNESSES.get(weakness, set()) if weakness is not None else set()
    assert outcomes == {
        scenario: Outcome.FAIL if scenario in failing else Outcome.PASS for scenario in IDS
    }


def test_an_expired_short_lived_token_accepted_is_a_failure() -> None:
    """Without the issuer's key, a target whose tokens live 2 s: the probe waits the
    token out (about 8 s) and the target that ignores exp accepts it."""
    with WeakTarget(Weakness.IGNORES_EXPIRY, expires_in=2) as target:
        context = _weak_context(target, issuer_key=False)
        assert Need.SHORT_LIVED in context.meets()
        try:
            result = run_one(by_id()["token.expired"], context)
        finally:
            context.close()
            context.wire.close()
    assert result.outcome is Outcome.FAIL, result.reason
    twin, attack = result.evidence
    assert twin.status == 200
    assert attack.status == 200


def test_a_passed_on_token_is_named_but_never_shown() -> None:
    """The echo shows the agent's token and proof: the result says so, and its
    evidence (the echo's answer) masks both."""
    with WeakTarget(Weakness.PASSTHROUGH) as target:
        context = _weak_context(target)
        try:
            result = run_one(by_id()["token.passthrough"], context)
            token = context.credential().token
        finally:
            context.close()
            context.wire.close()
    assert result.outcome is Outcome.FAIL
    assert "token and proof came back" in result.reason
    assert "/echo, GET" in result.reason  # both routes leak
    assert "/echo/legacy)" in result.reason
    for twin in result.evidence:
        assert token.encode() in twin.body  # what the verdict read
        shown = repr(twin.to_json())
        assert token not in shown
        assert "eyJ" not in shown


def test_one_leaking_route_of_several_fails_and_only_it_is_named() -> None:
    """/echo is sound, /echo/legacy hands the agent's Authorization header to its
    upstream base64-encoded: checking the first route alone would pass; checking
    every echo route the profile names fails, naming the leaking route."""
    with WeakTarget(Weakness.PASSTHROUGH_SECOND_ROUTE) as target:
        context = _weak_context(target)
        first_only = ProbeContext(
            dataclasses.replace(target.profile(), echo=Call("GET", "/echo")),
            context.source,
            Wire(),
        )
        try:
            every = run_one(by_id()["token.passthrough"], context)
            one = run_one(by_id()["token.passthrough"], first_only)
        finally:
            context.close()
            context.wire.close()
            first_only.wire.close()
    assert every.outcome is Outcome.FAIL
    assert "the agent's token came back" in every.reason  # the proof did not
    assert "/echo/legacy)" in every.reason
    assert "/echo," not in every.reason
    assert [e.url.rsplit("/", 1)[1] for e in every.evidence] == ["echo", "legacy"]
    assert one.outcome is Outcome.PASS
    assert "the echo route's upstream answer" in one.reason


def test_every_echo_route_checked_is_named_in_a_pass() -> None:
    with WeakTarget() as target:
        context = _weak_context(target)
        try:
            result = run_one(by_id()["token.passthrough"], context)
        finally:
            context.close()
            context.wire.close()
    assert result.outcome is Outcome.PASS
    assert "the echo 2 routes' upstreams answer" in result.reason
    assert [e.role for e in result.evidence] == ["twin", "twin"]


def test_a_route_that_cannot_be_checked_makes_the_rest_inconclusive(
    stack: Stack, home_source: HomeSource
) -> None:
    """A sound echo route and one that echoes nothing: no pass for what was not
    checked; the evidence keeps both."""
    echoes = (Call("GET", "/finance/download/16"), gateway_profile(stack).echoes[0])
    context = _context(stack, home_source, echo=echoes)
    result = _outcome(context, "token.passthrough")
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "GET /finance/download/16 did not echo" in result.reason
    assert len(result.evidence) == 2


# jku and x5u: the probe serves the key the header names, and sees who fetches it


def _url_scenario(target: WeakTarget, scenario: str, **context: Any) -> Result:
    probe = _weak_context(target)
    if context:
        probe = ProbeContext(probe.profile, probe.source, probe.wire, **context)
    try:
        return run_one(by_id()[scenario], probe)
    finally:
        probe.close()
        probe.wire.close()


@pytest.mark.parametrize(
    ("scenario", "member"), [("token.jku_injection", "jku"), ("token.x5u_injection", "x5u")]
)
def test_a_sound_target_never_fetches_the_url_and_refuses(scenario: str, member: str) -> None:
    with WeakTarget() as target:
        result = _url_scenario(target, scenario)
    assert result.outcome is Outcome.PASS
    assert f"never fetched the {member} URL http://127.0.0.1:" in result.reason
    assert [e.role for e in result.evidence] == ["twin", "attack"]


@pytest.mark.parametrize(
    ("scenario", "member", "weakness"),
    [
        ("token.jku_injection", "jku", Weakness.TRUSTS_JKU_HEADER),
        ("token.x5u_injection", "x5u", Weakness.TRUSTS_X5U_HEADER),
    ],
)
def test_a_target_that_verifies_with_the_fetched_key_fails(
    scenario: str, member: str, weakness: Weakness
) -> None:
    with WeakTarget(weakness) as target:
        result = _url_scenario(target, scenario)
    assert result.outcome is Outcome.FAIL
    assert f"the {member} the token named" in result.reason
    assert "accepted the token signed with the key it found there" in result.reason
    twin, attack, fetched = result.evidence
    assert (twin.status, attack.status) == (200, 200)
    assert fetched.role == "callback"
    assert fetched.request_headers["user-agent"].startswith("python-httpx/")
    assert fetched.request_headers["x-from"].startswith("127.0.0.1:")
    assert fetched.url.startswith("http://127.0.0.1:")
    assert fetched.url in result.reason


@pytest.mark.parametrize("scenario", ["token.jku_injection", "token.x5u_injection"])
def test_a_target_that_fetches_the_url_fails_though_it_refuses(scenario: str) -> None:
    """Fetching an attacker's URL from a token header is an SSRF exposure: a fail, with
    the refusal and the fetch both in the evidence."""
    with WeakTarget(Weakness.FETCHES_KEY_URLS) as target:
        result = _url_scenario(target, scenario)
    assert result.outcome is Outcome.FAIL
    assert "SSRF exposure" in result.reason
    assert "refused the token" in result.reason
    assert [e.role for e in result.evidence] == ["twin", "attack", "callback"]
    assert result.evidence[1].status == 401


def test_a_listener_that_cannot_start_is_inconclusive() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with WeakTarget(Weakness.TRUSTS_JKU_HEADER) as target:
            result = _url_scenario(
                target, "token.jku_injection", callback=Callback(f"http://127.0.0.1:{port}")
            )
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "could not serve the key its jku names" in result.reason
    assert "callback_url" in result.reason


def test_an_opaque_token_publishes_nothing(stack: Stack) -> None:
    listener = Callback()
    context = _context(stack, StaticBearer("an-opaque-token"), callback=listener)
    try:
        result = run_one(by_id()["token.x5u_injection"], context)
    finally:
        context.close()
        context.wire.close()
    assert result.outcome is Outcome.NOT_APPLICABLE
    assert listener.port == 0  # never started


def test_a_refused_twin_without_a_fetch_stays_inconclusive(stack: Stack) -> None:
    """A token the gateway does not know: the twin is refused, the URL never fetched:
    nothing is known, and nothing is said about a fetch."""
    unknown = forge.with_jwk(
        jwt.encode({"alg": "ES256"}, {"sub": "x"}, ECKey.generate_key("P-256")),
        forge.ProbeKey(),
    )
    context = _context(stack, StaticBearer(unknown))
    try:
        result = run_one(by_id()["token.jku_injection"], context)
    finally:
        context.close()
        context.wire.close()
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "fetched" not in result.reason
