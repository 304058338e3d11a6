"""The OAuth credential sources against the weak target's authorization server (a sound
one unless a test says otherwise): tokens issued, DPoP-bound, revoked, exchanged, and
every refusal an :class:`IssuerRefused` that shows no secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.probe.weak_target import AUDIENCE, OTHER_AUDIENCE, Weakness, WeakTarget
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential, IssuerRefused, NotOffered
from zerolane.probe.model import Need
from zerolane.probe.oauth import (
    WIDER_SCOPE,
    ClientCredentials,
    ClientSecret,
    Grant,
    TokenExchange,
)
from zerolane.probe.wire import Wire
from zerolane.tokens.jws import unverified_claims
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import proof_jwk


@pytest.fixture(scope="module")
def target() -> Iterator[WeakTarget]:
    with WeakTarget() as served:
        yield served


def client_of(target: WeakTarget, **options: Any) -> ClientCredentials:
    method = options.pop("method", "client_secret_basic")
    secret = ClientSecret(target.client_id, target.client_secret, method)
    options.setdefault("scope", "read")
    options.setdefault("resource", AUDIENCE)
    return ClientCredentials(target.token_url, client=secret, **options)


@pytest.fixture
def source(target: WeakTarget) -> Iterator[ClientCredentials]:
    made = client_of(
        target,
        revocation_endpoint=target.revoke_url,
        exchange=True,
        other_audience=OTHER_AUDIENCE,
    )
    yield made
    made.close()


def status_at(target: WeakTarget, credential: Credential) -> int | None:
    """What the resource server answers the allowed request made right with it."""
    wire = Wire()
    try:
        context = ProbeContext(target.profile(), client_of(target), wire)
        return context.twin(credential).status
    finally:
        wire.close()


def claims_of(credential: Credential) -> dict[str, Any]:
    claims = unverified_claims(credential.token)
    assert claims is not None
    return claims


# issuing


def test_a_client_credentials_grant_is_bound_to_a_key_of_its_own(
    target: WeakTarget, source: ClientCredentials
) -> None:
    first, second = source.issue(), source.issue()
    assert first.key is not None
    assert second.key is not None
    assert first.scheme == "DPoP"
    assert claims_of(first)["cnf"]["jkt"] == thumbprint(proof_jwk(first.key))
    assert claims_of(second)["cnf"]["jkt"] != claims_of(first)["cnf"]["jkt"]
    assert claims_of(first)["aud"] == AUDIENCE
    assert claims_of(first)["scope"] == "read"
    assert isinstance(first.handle, Grant)
    assert first.handle.scope == "read"
    assert status_at(target, first) == 200
    assert status_at(target, second) == 200


def test_client_secret_post_authenticates_too(target: WeakTarget) -> None:
    made = client_of(target, method="client_secret_post")
    try:
        assert status_at(target, made.issue()) == 200
    finally:
        made.close()


def test_a_wrong_secret_is_refused_without_showing_it(target: WeakTarget) -> None:
    wrong = "not-the-secret-" + target.client_secret[:4]
    made = ClientCredentials(target.token_url, client=ClientSecret(target.client_id, wrong))
    with pytest.raises(IssuerRefused) as refused:
        made.issue()
    made.close()
    assert refused.value.status == 401
    assert refused.value.reason.startswith("invalid_client")
    assert refused.value.url == target.token_url
    assert wrong not in str(refused.value)
    assert wrong not in repr(made)
    # the secret, and the id:secret pair Basic authentication base64-encodes
    assert made.secrets() == (wrong, f"{target.client_id}:{wrong}")
    odd = ClientCredentials(target.token_url, client=ClientSecret("probe client", "a+b/c=d"))
    assert odd.secrets() == ("a+b/c=d", "probe%20client:a%2Bb%2Fc%3Dd", "probe client:a+b/c=d")
    odd.close()


def test_a_grant_without_a_proof_is_refused_by_a_server_that_binds(target: WeakTarget) -> None:
    made = client_of(target, dpop=False)
    with pytest.raises(IssuerRefused) as refused:
        made.issue()
    made.close()
    assert refused.value.status == 400
    assert refused.value.reason.startswith("invalid_dpop_proof")


def test_a_server_that_does_not_bind_gives_a_bearer_credential() -> None:
    with WeakTarget(Weakness.BEARER_ONLY) as bearer:
        made = client_of(bearer)
        credential = made.issue()
        assert credential.key is None
        assert credential.scheme == "Bearer"
        assert "cnf" not in claims_of(credential)
        assert status_at(bearer, credential) == 200
        made.close()


def test_the_proof_carries_the_servers_nonce_when_it_asks() -> None:
    with WeakTarget(dpop_nonce=True) as strict:
        made = client_of(strict)
        credential = made.issue()
        assert credential.key is not None
        assert status_at(strict, credential) == 200
        made.close()


def test_a_token_for_another_audience(target: WeakTarget, source: ClientCredentials) -> None:
    elsewhere = source.issue(audience="urn:whatever:the:scenario:names")
    assert claims_of(elsewhere)["aud"] == OTHER_AUDIENCE
    assert status_at(target, elsewhere) == 401
    plain = client_of(target)
    try:
        with pytest.raises(IssuerRefused) as refused:
            plain.issue(audience="https://unknown.example")  # sent as asked: the AS says no
        assert refused.value.reason.startswith("invalid_target")
    finally:
        plain.close()


def test_ttl_is_not_the_clients_to_choose(target: WeakTarget, source: ClientCredentials) -> None:
    credential = source.issue(ttl=1)
    claims = claims_of(credential)
    assert claims["exp"] - claims["iat"] == target.expires_in


# what the source offers


def test_what_a_fully_configured_source_meets(source: ClientCredentials) -> None:
    met = {Need.SECOND_CREDENTIAL, Need.LIFECYCLE, Need.DELEGATION, Need.OTHER_AUDIENCE}
    assert source.meets == frozenset(met)
    assert source.meets == frozenset(met)  # asked again: no second grant to learn it


def test_a_plain_source_meets_little(target: WeakTarget) -> None:
    made = client_of(target)
    try:
        assert made.meets == frozenset({Need.SECOND_CREDENTIAL})
        with pytest.raises(NotOffered):
            made.revoke(made.issue())
        with pytest.raises(NotOffered):
            made.delegate(made.issue(), wider=False)
        with pytest.raises(NotOffered):
            made.issuer_jwks()
        with pytest.raises(NotOffered):
            made.sign({"sub": "x"})
    finally:
        made.close()


def test_short_lived_when_the_server_issues_short_tokens() -> None:
    with WeakTarget(expires_in=2) as short:
        made = client_of(short)
        assert Need.SHORT_LIVED in made.meets
        spare = made.issue()  # the grant meets asked for is handed out first
        assert claims_of(spare)["exp"] - claims_of(spare)["iat"] == 2
        assert made.issue().token != spare.token
        made.close()


def test_meets_says_when_no_credential_can_be_had(target: WeakTarget) -> None:
    made = ClientCredentials(target.token_url, client=ClientSecret(target.client_id, "wrong"))
    with pytest.raises(IssuerRefused):
        _ = made.meets
    made.close()


def test_the_issuers_metadata_names_the_endpoints(target: WeakTarget) -> None:
    made = ClientCredentials(
        client=ClientSecret(target.client_id, target.client_secret),
        issuer=target.issuer,
        scope="read",
    )
    try:
        assert made.token_endpoint == target.token_url
        assert {Need.LIFECYCLE, Need.ISSUER_JWKS} <= made.meets
        credential = made.issue()
        keys = made.issuer_jwks()
        assert [key["kid"] for key in keys] == ["weak-1"]
        assert all("d" not in key for key in keys)
        verified = jwt.decode(credential.token, KeySet.import_key_set({"keys": keys}))
        assert verified.claims["iss"] == target.issuer
    finally:
        made.close()


# ending credentials


@pytest.mark.parametrize("end", ["complete", "revoke"])
def test_an_ended_credential_is_refused_at_the_target(
    target: WeakTarget, source: ClientCredentials, end: str
) -> None:
    credential = source.issue()
    assert status_at(target, credential) == 200
    getattr(source, end)(credential)
    assert status_at(target, credential) == 401


def test_revoking_twice_is_no_error(target: WeakTarget, source: ClientCredentials) -> None:
    credential = source.issue()
    source.revoke(credential)
    source.revoke(credential)  # RFC 7009: an invalid token is answered 200 too
    assert status_at(target, credential) == 401


def test_close_ends_even_when_revocation_fails() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer"})
        return httpx.Response(503)

    made = mocked(
        handle,
        issuer=None,
        token_endpoint="https://as.example/token",
        revocation_endpoint="https://as.example/revoke",
        dpop=False,
    )
    credential = made.issue()
    with pytest.raises(IssuerRefused, match="status 503"):
        made.revoke(credential)
    made.close()  # tries once more, and ends all the same


def test_close_revokes_what_is_still_open(target: WeakTarget) -> None:
    made = client_of(target, revocation_endpoint=target.revoke_url)
    credential = made.issue()
    assert status_at(target, credential) == 200
    made.close()
    assert status_at(target, credential) == 401


def test_a_revocation_the_server_refuses(target: WeakTarget, source: ClientCredentials) -> None:
    credential = source.issue()
    wrong = ClientCredentials(
        target.token_url,
        client=ClientSecret(target.client_id, "wrong"),
        revocation_endpoint=target.revoke_url,
    )
    with pytest.raises(IssuerRefused) as refused:
        wrong.revoke(credential)
    wrong.close()
    assert refused.value.status == 401
    assert status_at(target, credential) == 200


# delegation


def test_a_child_is_bound_to_its_own_key_and_dies_with_its_parent(
    target: WeakTarget, source: ClientCredentials
) -> None:
    parent = source.issue()
    child = source.delegate(parent, wider=False)
    assert child.key is not None
    assert parent.key is not None
    assert claims_of(child)["cnf"]["jkt"] != claims_of(parent)["cnf"]["jkt"]
    assert claims_of(child)["act"] == {"sub": target.client_id}
    assert claims_of(child)["scope"] == "read"
    assert status_at(target, child) == 200
    source.revoke(parent)
    assert status_at(target, child) == 401


def test_a_wider_child_is_refused(target: WeakTarget, source: ClientCredentials) -> None:
    parent = source.issue()
    with pytest.raises(IssuerRefused) as refused:
        source.delegate(parent, wider=True)
    assert refused.value.status == 400
    assert refused.value.reason.startswith("invalid_scope")
    with WeakTarget(Weakness.WIDER_DELEGATION) as lax:
        made = client_of(lax, exchange=True, wider_scope="delete")
        wider = made.delegate(made.issue(), wider=True)
        assert claims_of(wider)["scope"] == "delete read"
        made.close()
    assert WIDER_SCOPE == "zerolane-probe-wider"


# token exchange as the source


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("given", ["value", "file", "env"])
def test_token_exchange_of_a_given_token(
    target: WeakTarget,
    source: ClientCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: str,
) -> None:
    subject = source.issue().token
    choices: dict[str, dict[str, Any]] = {
        "value": {"subject_token": subject},
        "file": {"subject_token_file": write(tmp_path / "token", subject + "\n")},
        "env": {"subject_token_env": "PROBE_SUBJECT"},
    }
    options = choices[given]
    monkeypatch.setenv("PROBE_SUBJECT", subject)
    made = TokenExchange(
        target.token_url,
        client=ClientSecret(target.client_id, target.client_secret, "client_secret_post"),
        revocation_endpoint=target.revoke_url,
        **options,
    )
    try:
        assert made.kind == "token_exchange"
        assert Need.DELEGATION in made.meets
        exchanged = made.issue()
        assert exchanged.token != subject
        assert exchanged.key is not None
        assert status_at(target, exchanged) == 200
        assert subject in made.secrets()
        child = made.delegate(exchanged, wider=False)
        assert status_at(target, child) == 200
        made.revoke(exchanged)
        assert status_at(target, child) == 401
    finally:
        made.close()


def test_token_exchange_refusals(target: WeakTarget, tmp_path: Path) -> None:
    client = ClientSecret(target.client_id, target.client_secret)
    with pytest.raises(ValueError, match="one subject token"):
        TokenExchange(target.token_url, client=client)
    with pytest.raises(ValueError, match="one subject token"):
        TokenExchange(target.token_url, client=client, subject_token="a", subject_token_env="B")
    forged = TokenExchange(target.token_url, client=client, subject_token="not-a-token")
    with pytest.raises(IssuerRefused) as refused:
        forged.issue()
    assert refused.value.reason.startswith("invalid_grant")
    forged.close()
    missing = TokenExchange(target.token_url, client=client, subject_token_file=tmp_path / "no")
    with pytest.raises(IssuerRefused, match="cannot be read"):
        missing.issue()
    assert missing.secrets()[0] == target.client_secret
    missing.close()
    anonymous = TokenExchange(target.token_url, subject_token="t")
    with pytest.raises(IssuerRefused) as refused:
        anonymous.issue()  # this server authenticates its clients
    assert refused.value.status == 401
    anonymous.close()
    empty = TokenExchange(
        target.token_url, client=client, subject_token_file=write(tmp_path / "empty", "\n")
    )
    with pytest.raises(IssuerRefused, match="empty"):
        empty.issue()
    empty.close()


# what the server answers, when it answers badly


def mocked(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> ClientCredentials:
    options.setdefault("issuer", "https://as.example/tenant")
    endpoint = options.pop("token_endpoint", None)
    return ClientCredentials(
        endpoint,
        client=ClientSecret("c", "s"),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        **options,
    )


def metadata(request: httpx.Request, **members: Any) -> httpx.Response:
    assert request.url.path == "/.well-known/oauth-authorization-server/tenant"
    return httpx.Response(200, json={"issuer": "https://as.example/tenant", **members})


def test_metadata_must_name_the_issuer() -> None:
    made = mocked(lambda r: httpx.Response(200, json={"issuer": "https://evil.example"}))
    with pytest.raises(IssuerRefused, match="another issuer"):
        made.issue()
    made.close()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "no token endpoint"),
        ({"token_endpoint": 7}, "not a URL"),
    ],
)
def test_metadata_without_a_usable_token_endpoint(members: dict[str, Any], message: str) -> None:
    made = mocked(lambda r: metadata(r, **members))
    with pytest.raises(IssuerRefused, match=message):
        made.issue()
    made.close()


def test_a_metadata_endpoint_that_is_not_http() -> None:
    made = mocked(lambda r: metadata(r, token_endpoint="file:///etc/passwd"))
    with pytest.raises(ValueError, match="http"):
        made.issue()
    made.close()


def token_server(answer: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/.well-known/"):
            return metadata(
                request,
                token_endpoint="https://as.example/token",
                jwks_uri="https://as.example/jwks",
            )
        return answer

    return handle


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(200, content=b"<html>"), "not JSON"),
        (httpx.Response(200, json=["a"]), "not an object"),
        (httpx.Response(200, json={"token_type": "DPoP"}), "no token"),
        (httpx.Response(200, json={"access_token": "t", "token_type": "MAC"}), "token type"),
        (httpx.Response(200, content=b"x" * (300 * 1024)), "too large"),
        (httpx.Response(500, content=b"oops"), "status 500"),
        (httpx.Response(400, json={"error": "invalid_request"}), "invalid_request"),
        (httpx.Response(400, headers={"DPoP-Nonce": "n"}, content=b"<html>"), "status 400"),
    ],
)
def test_a_token_answer_that_is_no_token(answer: httpx.Response, message: str) -> None:
    made = mocked(token_server(answer))
    with pytest.raises(IssuerRefused, match=message):
        made.issue()
    made.close()


def test_a_dpop_token_nobody_asked_for() -> None:
    answer = httpx.Response(200, json={"access_token": "t", "token_type": "DPoP"})
    made = mocked(token_server(answer), dpop=False)
    with pytest.raises(IssuerRefused, match="unasked"):
        made.issue()
    made.close()


def test_a_jwks_that_holds_no_keys() -> None:
    made = mocked(token_server(httpx.Response(200, json={"keys": "none"})))
    with pytest.raises(IssuerRefused, match="no list of keys"):
        made.issuer_jwks()
    made.close()


def test_an_issuer_that_does_not_answer() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    made = mocked(down)
    with pytest.raises(IssuerRefused, match="did not answer"):
        made.issue()
    made.close()


def test_what_a_source_is_told_is_checked() -> None:
    client = ClientSecret("c", "s")
    with pytest.raises(ValueError, match="token endpoint"):
        ClientCredentials(client=client)
    with pytest.raises(ValueError, match="http"):
        ClientCredentials("ftp://as.example/token", client=client)
    with pytest.raises(ValueError, match="id and a secret"):
        ClientSecret("c", "")
    with pytest.raises(ValueError, match="authentication method"):
        ClientSecret("c", "s", "private_key_jwt")  # type: ignore[arg-type]
    hidden = ClientSecret("c", "very-secret-value")
    assert "very-secret-value" not in repr(hidden)
    assert "very-secret-value" not in repr(ClientCredentials("https://as.example/t", client=hidden))


def test_without_rfc_8414_metadata_the_openid_configuration_is_read() -> None:
    """A server with no RFC 8414 document (404) but an OpenID Connect one: its
    endpoints are found there (appended to the issuer's path, not inserted)."""
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/tenant/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": "https://as.example/tenant",
                    "token_endpoint": "https://as.example/tenant/token",
                    "jwks_uri": "https://as.example/tenant/jwks",
                },
            )
        return httpx.Response(404, json={"error": "not_found"})

    made = mocked(answer)
    assert made.token_endpoint == "https://as.example/tenant/token"
    assert made.jwks_uri == "https://as.example/tenant/jwks"
    assert made.revocation_endpoint is None
    assert asked == [
        "/.well-known/oauth-authorization-server/tenant",
        "/tenant/.well-known/openid-configuration",
    ]  # fetched once
    made.close()


def test_the_openid_configuration_must_name_the_issuer_too() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/openid-configuration"):
            return httpx.Response(200, json={"issuer": "https://evil.example"})
        return httpx.Response(404)

    with pytest.raises(IssuerRefused, match="another issuer"):
        mocked(answer).issue()


def test_a_metadata_error_other_than_404_is_not_papered_over() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(503)

    with pytest.raises(IssuerRefused, match="503"):
        mocked(answer).issue()
    assert asked == ["/.well-known/oauth-authorization-server/tenant"]
