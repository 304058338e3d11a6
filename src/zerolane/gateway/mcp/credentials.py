"""Secretless upstreams: the credential each upstream session is opened with.

An upstream whose config has a ``credential`` gets it from the gateway, on the
connection the gateway opens for one agent session: a header on every request of an
HTTP link, environment variables of a stdio server's process. The agent never sees it.

- ``static``: one secret for every task (a 0600 file, or an environment variable), read
  at startup so a bad file or a missing variable stops the gateway.
- ``oauth``: an access token for the upstream from an external authorization server,
  asked for with ``client_credentials`` or, for the task's verified person, with token
  exchange (RFC 8693): the subject token is a JWT the gateway signs with the
  deployment's key (``sub`` the person, ``iss`` the deployment, ``aud`` the token
  endpoint, ``act`` the task's workload), which the authorization server trusts
  through the deployment's JWKS. A task acting for no verified person gets no such
  token (``upstream.credential``).

Tokens are cached per task and upstream, never shared between tasks, reused until
:data:`RENEW_MARGIN` seconds before they expire, and dropped (revoked when the upstream
names a ``revocation_endpoint``, RFC 7009) by :meth:`UpstreamCredentials.forget` once
the task's last agent session has ended. Nothing here logs a secret or a token.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from zerolane.errors import InvalidInput, Unavailable
from zerolane.gateway.mcp.config import McpCredential, UpstreamConfig
from zerolane.gateway.mcp.oauth_client import (
    REASON,
    AccessToken,
    ClientAuth,
    request_token,
    revoke_token,
)
from zerolane.grants.base import check_header_value, read_private_file, render_format
from zerolane.policy.context import UserFacts
from zerolane.store.ports import TaskStore
from zerolane.tokens.rfc9068 import TaskTokenClaims

__all__ = ["Injection", "UpstreamCredentials", "person_in"]

log = logging.getLogger(__name__)

#: RFC 8693's grant and token type identifiers (names, not secrets)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
#: a cached token is renewed this long before it expires
RENEW_MARGIN = 30.0
#: how long a token whose server gave no ``expires_in`` is reused
UNSTATED_SECONDS = 60.0
#: the subject token's lifetime (it is used at once, for one exchange)
SUBJECT_TOKEN_SECONDS = 60
#: tokens held at most, over all tasks and upstreams
MAX_CACHED = 10_000
#: whose tokens the gateway's own sessions (its tool catalog) use: no task's
GATEWAY = ""

#: signs a JWT claims set with the deployment's active key (``Keyring.sign``)
Sign = Callable[[dict[str, Any], str], str]
#: the verified person a task acts for (None: none)
Person = Callable[[str], UserFacts | None]


@dataclass(frozen=True, slots=True)
class Injection:
    """What one link is opened with: ``headers`` (HTTP) or ``env`` (stdio); ``renew_at``
    (``time.monotonic``): when it should be asked for again (None: never)."""

    headers: dict[str, str] = field(default_factory=dict, repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    renew_at: float | None = None

    def due(self, now: float | None = None) -> bool:
        """True once the credential should be renewed."""
        if self.renew_at is None:
            return False
        return (time.monotonic() if now is None else now) >= self.renew_at


@dataclass(frozen=True, slots=True)
class _Cached:
    token: AccessToken
    renew_at: float
    server: UpstreamConfig


def person_in(tasks: TaskStore) -> Person:
    """The verified person of a task, as recorded when it was opened (blocking)."""

    def person(task_id: str) -> UserFacts | None:
        task = tasks.get_task(task_id)
        if task is None or task.user_subject is None or task.user_issuer is None:
            return None
        return UserFacts(subject=task.user_subject, issuer=task.user_issuer)

    return person


def _read_secret(path: Path | None, env: str | None, what: str) -> str:
    if path is not None:
        raw = read_private_file(path)
        try:
            secret = raw.decode("ascii")
        except UnicodeDecodeError as err:
            raise InvalidInput("grant.value", f"the secret for {what} is not ASCII") from err
    else:
        assert env is not None
        secret = os.environ.get(env, "")
        if not secret:
            raise InvalidInput(
                "grant.env", f"{what}: environment variable {env} is not set or empty"
            )
    if not secret or not all(" " <= c <= "~" for c in secret):
        raise InvalidInput("grant.value", f"the secret for {what} must be printable ASCII")
    return secret


class UpstreamCredentials:
    """The credentials of the upstreams that have one, and the tokens held per task."""

    def __init__(
        self,
        servers: tuple[UpstreamConfig, ...],
        *,
        person: Person | None = None,
        sign: Sign | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read every static secret and client secret now (a bad file or a missing
        variable is refused here, at startup)."""
        self._person = person
        self._sign = sign
        self._monotonic = monotonic
        self._static: dict[str, str] = {}
        self._clients: dict[str, ClientAuth] = {}
        for server in servers:
            credential = server.credential
            what = f"upstream {server.name}"
            if credential is None:
                continue
            if credential.type == "static":
                secret = _read_secret(credential.secret_file, credential.secret_env, what)
                self._static[server.name] = _value(server, credential, secret)
                continue
            assert credential.client_id is not None
            secret = _read_secret(credential.client_secret_file, credential.client_secret_env, what)
            self._clients[server.name] = ClientAuth(credential.client_id, secret)
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._locks: dict[tuple[str, str], anyio.Lock] = {}

    def __repr__(self) -> str:  # never show a secret
        return f"UpstreamCredentials(static={sorted(self._static)}, oauth={sorted(self._clients)})"

    def __len__(self) -> int:
        """The tokens held now."""
        return len(self._cache)

    def held(self, task_id: str) -> list[str]:
        """The upstreams a token is held for, for task ``task_id``."""
        return sorted(server for task, server in self._cache if task == task_id and task_id)

    async def for_link(self, server: UpstreamConfig, claims: TaskTokenClaims) -> Injection:
        """What a new link of ``claims``'s task to ``server`` is opened with;
        :class:`Unavailable` (``upstream.credential``) when it cannot be had."""
        credential = server.credential
        if credential is None:
            return Injection()
        if credential.type == "static":
            return _inject(server, credential, self._static[server.name], None)
        token, renew_at = await self._token(claims.task_id, server, credential, claims)
        try:
            value = _value(server, credential, token.value)
        except InvalidInput as err:
            raise Unavailable(REASON, f"upstream {server.name}: {err.message}") from err
        return _inject(server, credential, value, renew_at)

    async def for_gateway(self, server: UpstreamConfig) -> Injection:
        """What the gateway's own session with ``server`` (its tool catalog, no task) is
        opened with: a static secret, or a client-credentials token of the gateway's.
        An upstream whose tokens are exchanged for a person gets none
        (:class:`Unavailable`): agents list its tools in their own sessions."""
        credential = server.credential
        if credential is None:
            return Injection()
        if credential.type == "static":
            return _inject(server, credential, self._static[server.name], None)
        if credential.grant == "token_exchange":
            raise Unavailable(
                REASON,
                f"upstream {server.name}: its tokens are exchanged for a task's person, so"
                " the gateway has no session of its own with it",
            )
        token, renew_at = await self._token(GATEWAY, server, credential, None)
        return _inject(server, credential, _value(server, credential, token.value), renew_at)

    async def forget(self, task_id: str) -> None:
        """Drop the tokens held for ``task_id`` (its last session ended), revoking each
        at its upstream's ``revocation_endpoint`` when there is one."""
        keys = [key for key in self._cache if key[0] == task_id]
        dropped = [self._cache.pop(key) for key in keys]
        for key in [key for key in self._locks if key[0] == task_id]:
            del self._locks[key]
        if dropped:
            log.info("MCP task %s: %d upstream token(s) dropped", task_id[:8], len(dropped))
        for entry in dropped:
            credential = entry.server.credential
            assert credential is not None
            if credential.revocation_endpoint is None:
                continue
            what = f"upstream {entry.server.name}"
            try:
                await revoke_token(
                    credential.revocation_endpoint,
                    self._clients[entry.server.name],
                    entry.token.value,
                    what=what,
                )
            except Unavailable as err:
                log.warning("MCP task %s: token not revoked: %s", task_id[:8], err.message)

    # --- tokens -----------------------------------------------------------------------

    async def _token(
        self,
        task_id: str,
        server: UpstreamConfig,
        credential: McpCredential,
        claims: TaskTokenClaims | None,
    ) -> tuple[AccessToken, float]:
        key = (task_id, server.name)
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None and self._monotonic() < cached.renew_at:
                return cached.token, cached.renew_at
            form = await self._grant(server, credential, claims)
            assert credential.token_endpoint is not None
            token = await request_token(
                credential.token_endpoint,
                self._clients[server.name],
                form,
                what=f"upstream {server.name}",
            )
            now = self._monotonic()
            lifetime = token.expires_in if token.expires_in is not None else UNSTATED_SECONDS
            renew_at = now + max(lifetime - RENEW_MARGIN, lifetime / 2)
            self._keep(key, _Cached(token, renew_at, server), now)
            return token, renew_at

    def _keep(self, key: tuple[str, str], entry: _Cached, now: float) -> None:
        if key not in self._cache and len(self._cache) >= MAX_CACHED:
            for stale in [k for k, held in self._cache.items() if held.renew_at <= now]:
                del self._cache[stale]
        if key in self._cache or len(self._cache) < MAX_CACHED:
            self._cache[key] = entry
        else:
            log.warning("MCP upstream tokens: %d held, this one is not kept", MAX_CACHED)

    async def _grant(
        self, server: UpstreamConfig, credential: McpCredential, claims: TaskTokenClaims | None
    ) -> list[tuple[str, str]]:
        """The token request's form (RFC 6749 §4.4, RFC 8693 §2.1, RFC 8707)."""
        if credential.grant == "client_credentials":
            form = [("grant_type", "client_credentials")]
        else:
            assert claims is not None
            assert credential.token_endpoint is not None
            if self._person is None or self._sign is None:
                raise Unavailable(
                    REASON,
                    f"upstream {server.name}: the gateway has not the deployment's signing"
                    " key, so it cannot exchange tokens",
                )
            person = await anyio.to_thread.run_sync(self._person, claims.task_id)
            if person is None:
                raise Unavailable(
                    REASON,
                    f"upstream {server.name}: the task acts for no verified person,"
                    " and this upstream's token is exchanged for one",
                )
            subject = await anyio.to_thread.run_sync(
                self._subject_token, credential.token_endpoint, person, claims
            )
            form = [
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", JWT_TOKEN_TYPE),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
            ]
        if credential.audience is not None:
            form.append(("audience", credential.audience))
        if credential.resource is not None:
            form.append(("resource", credential.resource))
        if credential.scope is not None:
            form.append(("scope", credential.scope))
        return form

    def _subject_token(self, endpoint: str, person: UserFacts, claims: TaskTokenClaims) -> str:
        """A short-lived JWT naming the person, signed with the deployment's key."""
        assert self._sign is not None  # checked by the caller
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": claims.issuer,
            "sub": person.subject,
            "aud": endpoint,
            "iat": now,
            "nbf": now,
            "exp": now + SUBJECT_TOKEN_SECONDS,
            "jti": secrets.token_urlsafe(16),
            "act": {"sub": claims.subject},
        }
        return self._sign(body, "JWT")


def _value(server: UpstreamConfig, credential: McpCredential, secret: str) -> str:
    """The injected value: ``secret`` in the credential's format, fit for its place."""
    value = render_format(credential.format, secret)
    if server.url is not None:
        return check_header_value(value, f"the credential of upstream {server.name}")
    if "\x00" in value:
        raise InvalidInput("grant.value", f"the credential of upstream {server.name} holds NUL")
    return value


def _inject(
    server: UpstreamConfig, credential: McpCredential, value: str, renew_at: float | None
) -> Injection:
    if server.url is not None:
        return Injection(headers={credential.header_name: value}, renew_at=renew_at)
    assert credential.env is not None
    return Injection(env={credential.env: value}, renew_at=renew_at)
