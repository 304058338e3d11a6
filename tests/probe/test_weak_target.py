"""The weak target is what it says: the probe's scenarios pass against the sound one and
fail against the matching weakness (through the client-credentials source), and each
weakness lets through an attack the sound target refuses."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwk import ECKey

from tests.probe.weak_target import AUDIENCE, OTHER_AUDIENCE, Weakness, WeakTarget
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential, IssuerRefused
from zerolane.probe.model import Exchange, Need, Outcome
from zerolane.probe.oauth import ClientCredentials, ClientSecret
from zerolane.probe.profile import Call
from zerolane.probe.runner import run
from zerolane.probe.scenarios import proof
from zerolane.probe.wire import Wire
from zerolane.tokens.jws import unverified_claims
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import proof_jwk

GET = Call("GET", "/data/reports/q3")


@pytest.fixture(scope="module")
def sound() -> Iterator[WeakTarget]:
    with WeakTarget() as target:
        yield target


def context_of(target: WeakTarget) -> ProbeContext:
    source = ClientCredentials(
        target.token_url,
        client=ClientSecret(target.client_id, target.client_secret),
        scope="read",
        resource=AUDIENCE,
        revocation_endpoint=target.revoke_url,
        exchange=True,
        other_audience=OTHER_AUDIENCE,
        wider_scope="delete",
    )
    return ProbeContext(target.profile(), source, Wire())


@pytest.fixture
def probe(sound: WeakTarget) -> Iterator[ProbeContext]:
    context = context_of(sound)
    yield context
    context.close()
    context.wire.close()


def outcomes(target: WeakTarget) -> dict[str, Outcome]:
    context = context_of(target)
    try:
        report = run(proof.SCENARIOS, context)
    finally:
        context.close()
        context.wire.close()
    return {result.scenario: result.outcome for result in report.results}


def expected(
    failed: set[str], *, otherwise: Outcome = Outcome.PASS, bound: bool = True
) -> dict[str, Outcome]:
    """The proof scenarios' outcomes: ``failed`` fail, the rest ``otherwise``; without
    a bound credential (``bound=False``) those needing a key are not applicable."""
    return {
        scenario.id: Outcome.FAIL
        if scenario.id in failed
        else otherwise
        if bound or Need.PROOF_KEY not in scenario.needs
        else Outcome.NOT_APPLICABLE
        for scenario in proof.SCENARIOS
    }


# the scenarios


def test_the_proof_scenarios_pass_against_the_sound_target(sound: WeakTarget) -> None:
    assert {"token.no_proof", "proof.replayed"} <= set(outcomes(sound))
    assert outcomes(sound) == expected(set())


@pytest.mark.parametrize(
    ("weakness", "failed", "bound"),
    [
        (Weakness.REPLAYED_PROOFS, {"proof.replayed"}, True),
        (Weakness.PROOF_OPTIONAL, {"token.no_proof", "token.replayed_elsewhere"}, True),
        (Weakness.BEARER_ONLY, {"token.replayed_elsewhere"}, False),
        (Weakness.PROOF_ANY_KEY, {"proof.other_key"}, True),
        (Weakness.PROOF_ANY_METHOD, {"proof.other_method"}, True),
        (Weakness.PROOF_ANY_URL, {"proof.other_url"}, True),
        (Weakness.PROOF_ANY_TIME, {"proof.stale_iat", "proof.future_iat"}, True),
    ],
)
def test_the_proof_scenarios_find_the_weakness(
    weakness: Weakness, failed: set[str], bound: bool
) -> None:
    present = {scenario.id for scenario in proof.SCENARIOS}
    with WeakTarget(weakness) as weak:
        found = outcomes(weak)
    assert found == {
        scenario: outcome for scenario, outcome in expected(failed & present, bound=bound).items()
    }
    assert Outcome.FAIL in found.values() or not failed & present


# each weakness, by hand: the attack is refused by the sound target, accepted by the weak


def raw_get(context: ProbeContext, credential: Credential, raw: str) -> Exchange:
    url = context.profile.url + raw
    return context.send(
        "attack", GET, credential, raw_path=raw, proof=context.proof(credential, "GET", url)
    )


def unsigned(claims: dict[str, object]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jws.serialize_compact(
            {"alg": "none"}, json.dumps(claims).encode(), None, algorithms=["none"]
        )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256_with_public_key(target: WeakTarget, claims: dict[str, object]) -> str:
    """The forgery: HMAC keyed with the issuer's public key as PEM (stdlib hmac, since
    joserfc rightly refuses an asymmetric public key as an oct key)."""
    public = ECKey.import_key(target.jwks()[0]).as_pem(private=False)
    header = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(public, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def bound_claims(credential: Credential) -> dict[str, object]:
    claims = unverified_claims(credential.token)
    assert claims is not None
    return claims


def with_token(credential: Credential, token: str) -> Credential:
    return Credential(token, credential.key, credential.handle)


def mcp(context: ProbeContext, method: str, params: dict[str, object]) -> dict[str, object]:
    call = Call(
        "POST",
        "/mcp",
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
        (("Content-Type", "application/json"),),
    )
    answer = json.loads(context.send("attack", call, context.credential()).body)
    assert isinstance(answer, dict)
    return answer


def replayed(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    once = context.proof(credential, "GET", target.url + GET.path)
    assert context.send("twin", GET, credential, proof=once).accepted
    return context.send("attack", GET, credential, proof=once).accepted


def other_audience(target: WeakTarget, context: ProbeContext) -> bool:
    return context.send("attack", GET, context.fresh(audience=OTHER_AUDIENCE)).accepted


def alg_none(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    forged = with_token(credential, unsigned(bound_claims(credential)))
    return context.send("attack", GET, forged).accepted


def paths(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    attacks = [
        "/data/reports/%2e%2e/%2e%2e/admin/secret",
        "/data/reports/..%2f..%2fadmin/secret",
        "/data/reports/%252e%252e/%252e%252e/admin/secret",
        "/data/reports/..\\..\\admin\\secret",
        "/data/reports/..;/..;/admin/secret",
    ]
    answers = [raw_get(context, credential, raw) for raw in attacks]
    leaked = [answer.accepted and b"secret" in answer.body for answer in answers]
    assert len(set(leaked)) == 1
    return leaked[0]


def revoked(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.fresh()
    context.source.revoke(credential)
    return context.send("attack", GET, credential).accepted


def child_of_revoked(target: WeakTarget, context: ProbeContext) -> bool:
    parent = context.fresh()
    child = context.source.delegate(parent, wider=False)
    context.source.revoke(parent)
    return context.send("attack", GET, child).accepted


def passthrough(target: WeakTarget, context: ProbeContext) -> bool:
    answer = context.send("attack", Call("GET", "/echo"), context.credential())
    seen = json.loads(answer.body)["headers"]
    return "authorization" in seen or "dpop" in seen


def passthrough_second_route(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    answer = context.send("attack", Call("GET", "/echo/legacy"), credential)
    seen = json.loads(answer.body)["headers"]
    forwarded = base64.b64decode(seen.get("x-forwarded-authorization-b64", ""))
    return credential.token.encode() in forwarded


def every_tool_listed(target: WeakTarget, context: ProbeContext) -> bool:
    answer = mcp(context, "tools/list", {})
    result = answer["result"]
    assert isinstance(result, dict)
    return "delete_all" in [tool["name"] for tool in result["tools"]]


def every_tool_called(target: WeakTarget, context: ProbeContext) -> bool:
    assert "result" in mcp(context, "tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    return "result" in mcp(context, "tools/call", {"name": "delete_all", "arguments": {}})


def bearer_elsewhere(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    bearer = Credential(credential.token)
    return context.send("attack", GET, bearer, proof=None).accepted


def proof_optional(target: WeakTarget, context: ProbeContext) -> bool:
    return context.send("attack", GET, context.credential(), proof=None).accepted


def proof_by(
    change: Callable[[ProbeContext, Credential], str],
) -> Callable[[WeakTarget, ProbeContext], bool]:
    def attack(target: WeakTarget, context: ProbeContext) -> bool:
        credential = context.credential()
        return context.send("attack", GET, credential, proof=change(context, credential)).accepted

    return attack


def wider(target: WeakTarget, context: ProbeContext) -> bool:
    try:
        context.source.delegate(context.fresh(), wider=True)
    except IssuerRefused:
        return False
    return True


def expired(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    assert credential.key is not None
    now = int(time.time())
    claims = target.claims(
        cnf={"jkt": thumbprint(proof_jwk(credential.key))},
        iat=now - 600,
        nbf=now - 600,
        exp=now - 300,
    )
    return context.send("attack", GET, with_token(credential, target.sign(claims))).accepted


def jwk_header(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    own = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "kid": "weak-1", "typ": "at+jwt", "jwk": own.as_dict(private=False)}
    token = jws.serialize_compact(
        header, json.dumps(bound_claims(credential)).encode(), own, algorithms=["ES256"]
    )
    return context.send("attack", GET, with_token(credential, token)).accepted


def _key_by_url(context: ProbeContext, member: str) -> tuple[bool, bool]:
    """A token signed by a key of the test's own, ``member`` (jku or x5u) naming where
    that key is served (a JWK Set or a self-signed certificate, built here with
    joserfc and cryptography): whether it was accepted, and whether the URL was
    fetched."""
    credential = context.credential()
    own = ECKey.generate_key("P-256", parameters={"kid": "own-1"})
    if member == "jku":
        document = json.dumps({"keys": [own.as_dict(private=False)]}).encode()
    else:
        private = own.private_key
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "own")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(1)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(private, hashes.SHA256())
        )
        document = certificate.public_bytes(serialization.Encoding.PEM)
    url = context.callback.publish(member, document, "application/octet-stream")
    header = {"alg": "ES256", "typ": "at+jwt", member: url}
    if member == "jku":
        header["kid"] = "own-1"
    token = jws.serialize_compact(
        header, json.dumps(bound_claims(credential)).encode(), own, algorithms=["ES256"]
    )
    accepted = context.send("attack", GET, with_token(credential, token)).accepted
    return accepted, bool(context.callback.fetches(url))


def jku_header(target: WeakTarget, context: ProbeContext) -> bool:
    return _key_by_url(context, "jku")[0]


def x5u_header(target: WeakTarget, context: ProbeContext) -> bool:
    return _key_by_url(context, "x5u")[0]


def key_url_fetched(target: WeakTarget, context: ProbeContext) -> bool:
    """The URL is fetched (the token is refused either way when only that is weak)."""
    fetched = [_key_by_url(context, member) for member in ("jku", "x5u")]
    if target.weak(Weakness.FETCHES_KEY_URLS):
        assert [accepted for accepted, _ in fetched] == [False, False]
    return all(was_fetched for _, was_fetched in fetched)


def hs256(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    token = hs256_with_public_key(target, bound_claims(credential))
    return context.send("attack", GET, with_token(credential, token)).accepted


def method_override(target: WeakTarget, context: ProbeContext) -> bool:
    answer = context.send(
        "attack", GET, context.credential(), headers={"X-HTTP-Method-Override": "DELETE"}
    )
    return answer.accepted and b"deleted" in answer.body


def no_limits(target: WeakTarget, context: ProbeContext) -> bool:
    credential = context.credential()
    big_body = context.send("attack", GET, credential, body=b"x" * (1024 * 1024 + 1))
    big_head = context.send("attack", GET, credential, headers={"X-Padding": "a" * 17000})
    assert big_body.accepted == big_head.accepted
    return big_body.accepted


ATTACKS: dict[Weakness, Callable[[WeakTarget, ProbeContext], bool]] = {
    Weakness.REPLAYED_PROOFS: replayed,
    Weakness.IGNORES_AUDIENCE: other_audience,
    Weakness.ALG_NONE: alg_none,
    Weakness.PATHS_AFTER_DECIDING: paths,
    Weakness.KEEPS_REVOKED: revoked,
    Weakness.PASSTHROUGH: passthrough,
    Weakness.PASSTHROUGH_SECOND_ROUTE: passthrough_second_route,
    Weakness.LISTS_EVERY_TOOL: every_tool_listed,
    Weakness.BEARER_ONLY: bearer_elsewhere,
    Weakness.PROOF_OPTIONAL: proof_optional,
    Weakness.PROOF_ANY_KEY: proof_by(
        lambda c, cred: c.proof(
            cred, "GET", c.profile.absolute(GET.path), key=ec.generate_private_key(ec.SECP256R1())
        )
    ),
    Weakness.PROOF_ANY_METHOD: proof_by(
        lambda c, cred: c.proof(cred, "DELETE", c.profile.absolute(GET.path))
    ),
    Weakness.PROOF_ANY_URL: proof_by(
        lambda c, cred: c.proof(cred, "GET", c.profile.absolute("/echo"))
    ),
    Weakness.PROOF_ANY_TIME: proof_by(
        lambda c, cred: c.proof(
            cred, "GET", c.profile.absolute(GET.path), iat=int(time.time()) - 600
        )
    ),
    Weakness.WIDER_DELEGATION: wider,
    Weakness.IGNORES_EXPIRY: expired,
    Weakness.TRUSTS_JWK_HEADER: jwk_header,
    Weakness.TRUSTS_JKU_HEADER: jku_header,
    Weakness.TRUSTS_X5U_HEADER: x5u_header,
    Weakness.FETCHES_KEY_URLS: key_url_fetched,
    Weakness.HS256_PUBLIC_KEY: hs256,
    Weakness.METHOD_OVERRIDE: method_override,
    Weakness.NO_LIMITS: no_limits,
    Weakness.CALLS_EVERY_TOOL: every_tool_called,
}


def test_every_weakness_has_its_attack() -> None:
    assert set(ATTACKS) == set(Weakness)


@pytest.mark.parametrize("weakness", list(Weakness))
def test_the_weakness_lets_through_what_the_sound_target_refuses(
    sound: WeakTarget, probe: ProbeContext, weakness: Weakness
) -> None:
    attack = ATTACKS[weakness]
    assert probe.twin().status == 200
    assert attack(sound, probe) is False
    with WeakTarget(weakness) as weak:
        context = context_of(weak)
        try:
            assert context.twin().status == 200
            assert attack(weak, context) is True
        finally:
            context.close()
            context.wire.close()


def test_child_after_revoked_parent(sound: WeakTarget, probe: ProbeContext) -> None:
    assert child_of_revoked(sound, probe) is False
    with WeakTarget(Weakness.KEEPS_REVOKED) as weak:
        context = context_of(weak)
        try:
            assert child_of_revoked(weak, context) is True
        finally:
            context.close()
            context.wire.close()
