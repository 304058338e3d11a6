"""UpstreamCredentials against a real authorization server on loopback: what each link
is opened with, cached per task, renewed before it expires, revoked when the task is
forgotten, and every failure ``upstream.credential`` without a secret in it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest

from tests.clocks import AheadClock
from tests.gateway.mcp.oauth_server import AuthServer
from zerolane.cli.background import free_port
from zerolane.errors import InvalidInput, Unavailable
from zerolane.gateway.mcp import parse_gateway_config
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.credentials import Injection, UpstreamCredentials
from zerolane.identity.keyring import Keyring
from zerolane.policy.context import UserFacts
from zerolane.tokens.rfc9068 import TaskTokenClaims

ISSUER = "spiffe://example.org"
WORKLOAD = "spiffe://example.org/agents/reporter"
CLIENT, SECRET = "zerolane-gateway", "s3cret-Client+Key/=="
AUDIENCE = "https://crm.example.org"


def claims(task_id: str) -> TaskTokenClaims:
    return TaskTokenClaims(
        issuer=ISSUER,
        subject=WORKLOAD,
        audience=("https://mcp.example.org/mcp",),
        issued_at=0,
        not_before=0,
        expires_at=2**40,
        jti=f"jti-{task_id}",
        jkt="thumb",
        task_id=task_id,
        authorization_details=(),
    )


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    ring = Keyring(tmp_path / "keys", AheadClock())
    ring.create()
    return ring


@pytest.fixture
def auth(keyring: Keyring) -> Iterator[AuthServer]:
    server = AuthServer(
        {CLIENT: SECRET}, trusted_issuer=ISSUER, jwks={"keys": keyring.public_keys()}
    )
    with server.running():
        yield server


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "client-secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def upstream(**server: Any) -> UpstreamConfig:
    """One ``[[servers]]`` table, validated as the config file's."""
    doc = {
        "public_url": "https://mcp.example.org",
        "authorization_servers": ["https://zerolane.example.org"],
        "servers": [{"name": "crm", "destination": "crm", **server}],
    }
    return parse_gateway_config(doc, Path("/etc/zerolane")).servers[0]


def oauth(
    auth: AuthServer, secret_file: Path, *, stdio: bool = False, **changes: Any
) -> UpstreamConfig:
    credential: dict[str, Any] = {
        "type": "oauth",
        "token_endpoint": auth.token_endpoint,
        "revocation_endpoint": auth.revocation_endpoint,
        "client_id": CLIENT,
        "client_secret_file": str(secret_file),
        "audience": AUDIENCE,
        "resource": f"{AUDIENCE}/mcp",
        "scope": "crm.read",
        **changes,
    }
    if stdio:
        return upstream(command="crm-server", credential={**credential, "env": "CRM_TOKEN"})
    return upstream(url=f"{AUDIENCE}/mcp", credential=credential)


def people(**known: str) -> Any:
    def person(task_id: str) -> UserFacts | None:
        return UserFacts(known[task_id], "https://sso.example.org") if task_id in known else None

    return person


def injected(credentials: UpstreamCredentials, server: UpstreamConfig, task: str) -> Injection:
    async def main() -> Injection:
        return await credentials.for_link(server, claims(task))

    return anyio.run(main)


def bearer(injection: Injection) -> str:
    kind, _, token = injection.headers["Authorization"].partition(" ")
    assert kind == "Bearer"
    return token


def test_client_credentials_header_is_a_token_for_the_upstream_cached_per_task(
    auth: AuthServer, secret_file: Path
) -> None:
    server = oauth(auth, secret_file)
    credentials = UpstreamCredentials((server,))
    first = injected(credentials, server, "task-1")
    issued = auth.introspect(bearer(first))
    assert issued is not None
    assert (issued.client_id, issued.grant) == (CLIENT, "client_credentials")
    assert issued.audience == (AUDIENCE, f"{AUDIENCE}/mcp")
    form, status = auth.requests[0]
    assert status == 200
    assert form["scope"] == "crm.read"
    assert first.env == {}
    assert SECRET not in repr(first)
    assert bearer(first) not in repr(first)
    # the same task again: the cached token; another task: a token of its own
    assert bearer(injected(credentials, server, "task-1")) == bearer(first)
    other = injected(credentials, server, "task-2")
    assert bearer(other) != bearer(first)
    assert len(auth.issued) == 2
    assert credentials.held("task-1") == credentials.held("task-2") == ["crm"]


def test_a_stdio_upstream_gets_the_token_in_its_environment(
    auth: AuthServer, secret_file: Path
) -> None:
    server = oauth(auth, secret_file, stdio=True)
    injection = injected(UpstreamCredentials((server,)), server, "task-1")
    assert injection.headers == {}
    assert auth.introspect(injection.env["CRM_TOKEN"]) is not None


def test_a_token_is_renewed_before_it_expires(auth: AuthServer, secret_file: Path) -> None:
    auth.expires_in = 100
    server = oauth(auth, secret_file)
    clock = Monotonic()
    credentials = UpstreamCredentials((server,), monotonic=clock)
    first = injected(credentials, server, "task-1")
    assert first.renew_at == clock.now + 70  # 30 s before it expires
    assert not first.due(clock.now + 69)
    assert first.due(clock.now + 70)
    clock.now += 69
    assert bearer(injected(credentials, server, "task-1")) == bearer(first)
    clock.now += 1
    assert bearer(injected(credentials, server, "task-1")) != bearer(first)


def test_forget_drops_the_tasks_tokens_and_revokes_them(
    auth: AuthServer, secret_file: Path
) -> None:
    server = oauth(auth, secret_file)
    credentials = UpstreamCredentials((server,))
    mine = bearer(injected(credentials, server, "task-1"))
    theirs = bearer(injected(credentials, server, "task-2"))
    anyio.run(credentials.forget, "task-1")
    assert auth.revocations == [mine]
    assert auth.introspect(mine) is None
    assert auth.introspect(theirs) is not None
    assert credentials.held("task-1") == []
    assert len(credentials) == 1
    assert bearer(injected(credentials, server, "task-1")) not in (mine, theirs)


def test_token_exchange_sends_a_subject_token_naming_the_person_signed_by_the_deployment(
    auth: AuthServer, secret_file: Path, keyring: Keyring
) -> None:
    server = oauth(auth, secret_file, grant="token_exchange")
    credentials = UpstreamCredentials((server,), person=people(t1="alice"), sign=keyring.sign)
    token = bearer(injected(credentials, server, "t1"))
    issued = auth.introspect(token)
    assert issued is not None
    assert (issued.subject, issued.grant) == (
        "alice",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    )
    (subject,) = auth.subject_claims
    assert subject["iss"] == ISSUER
    assert subject["aud"] == auth.token_endpoint
    assert subject["act"] == {"sub": WORKLOAD}
    assert 0 < subject["exp"] - subject["iat"] <= 60
    form, _ = auth.requests[0]
    assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert form["requested_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert jwt.get_unverified_header(form["subject_token"])["kid"] == keyring.active_kid()


def test_token_exchange_refuses_a_task_without_a_verified_person(
    auth: AuthServer, secret_file: Path, keyring: Keyring
) -> None:
    server = oauth(auth, secret_file, grant="token_exchange")
    credentials = UpstreamCredentials((server,), person=people(), sign=keyring.sign)
    with pytest.raises(Unavailable) as refused:
        injected(credentials, server, "t1")
    assert refused.value.reason == "upstream.credential"
    assert "no verified person" in refused.value.message
    assert auth.requests == []


def test_a_subject_token_the_server_does_not_trust_is_refused(
    auth: AuthServer, secret_file: Path, tmp_path: Path
) -> None:
    other = Keyring(tmp_path / "other", AheadClock())
    other.create()
    server = oauth(auth, secret_file, grant="token_exchange")
    credentials = UpstreamCredentials((server,), person=people(t1="alice"), sign=other.sign)
    with pytest.raises(Unavailable) as refused:
        injected(credentials, server, "t1")
    assert refused.value.message == (
        "upstream crm: the authorization server refused: HTTP 400 (invalid_grant)"
    )


def test_a_wrong_client_secret_fails_without_the_secret_in_the_error_or_the_logs(
    auth: AuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret")
    wrong.chmod(0o600)
    server = oauth(auth, wrong)
    credentials = UpstreamCredentials((server,))
    with caplog.at_level(logging.DEBUG), pytest.raises(Unavailable) as refused:
        injected(credentials, server, "task-1")
    assert refused.value.reason == "upstream.credential"
    assert refused.value.message == (
        "upstream crm: the authorization server refused: HTTP 401 (invalid_client)"
    )
    # the server's description echoes the Authorization header it got
    assert auth.requests[0][1] == 401
    for text in (refused.value.message, caplog.text, repr(credentials)):
        assert "not-the-secret" not in text
        assert "Basic" not in text


def test_an_unreachable_server_is_upstream_credential(secret_file: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/token"
    credential = {
        "type": "oauth",
        "token_endpoint": endpoint,
        "client_id": CLIENT,
        "client_secret_file": str(secret_file),
        "audience": AUDIENCE,
    }
    server = upstream(url=f"{AUDIENCE}/mcp", credential=credential)
    with pytest.raises(Unavailable) as refused:
        injected(UpstreamCredentials((server,)), server, "task-1")
    assert refused.value.reason == "upstream.credential"
    assert "unreachable" in refused.value.message


def static(**credential: Any) -> UpstreamConfig:
    return upstream(url="https://wiki.example.org/mcp", credential={"type": "static", **credential})


def test_static_secrets_are_read_at_startup(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("wiki-key\n")
    key.chmod(0o600)
    server = static(secret_file=str(key), header="X-Api-Key")
    injection = injected(UpstreamCredentials((server,)), server, "t")
    assert injection.headers == {"X-Api-Key": "wiki-key"}
    assert injection.renew_at is None
    key.chmod(0o644)
    with pytest.raises(InvalidInput) as refused:
        UpstreamCredentials((server,))
    assert refused.value.reason == "grant.file_mode"
    os.environ.pop("ZL_TEST_MISSING", None)
    with pytest.raises(InvalidInput) as missing:
        UpstreamCredentials((static(secret_env="ZL_TEST_MISSING"),))
    assert missing.value.reason == "grant.env"


def test_token_exchange_needs_the_deployments_key(auth: AuthServer, secret_file: Path) -> None:
    server = oauth(auth, secret_file, grant="token_exchange")
    with pytest.raises(Unavailable) as refused:
        injected(UpstreamCredentials((server,)), server, "t1")
    assert refused.value.reason == "upstream.credential"
    assert auth.requests == []


def test_the_gateways_own_session_gets_a_token_of_its_own_or_none(
    auth: AuthServer, secret_file: Path, keyring: Keyring
) -> None:
    server = oauth(auth, secret_file)
    credentials = UpstreamCredentials((server,))
    mine = anyio.run(credentials.for_gateway, server)
    issued = auth.introspect(bearer(mine))
    assert issued is not None
    assert issued.subject == CLIENT
    assert credentials.held("") == []  # no task's
    anyio.run(credentials.forget, "task-1")
    assert auth.revocations == []
    exchanged = oauth(auth, secret_file, grant="token_exchange")
    with pytest.raises(Unavailable) as refused:
        anyio.run(UpstreamCredentials((exchanged,), sign=keyring.sign).for_gateway, exchanged)
    assert "exchanged for a task's person" in refused.value.message
