"""A small OAuth 2.0 authorization server on a loopback port, and an MCP upstream that
takes only its tokens: what the secretless-upstream tests run against.

:class:`AuthServer` stands in for an external authorization server as the gateway meets
one in a deployment:

- **Keycloak** (token exchange, "external to internal": an identity provider whose
  issuer is the deployment and whose keys come from the deployment's JWKS URL): the
  token endpoint takes ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``
  with a ``subject_token`` of type ``urn:ietf:params:oauth:token-type:jwt``, verifies
  its signature against the trusted issuer's JWKS (fetched over HTTP, as Keycloak
  does), its ``iss``, its ``aud`` (the token endpoint's URL) and its expiry, and issues
  an access token for the person the subject token names, restricted to the requested
  ``audience``. A subject token it cannot verify is ``invalid_grant`` (400).
- **Okta** (a custom authorization server, client credentials) and **Entra ID** (an
  app registration with a client secret): ``grant_type=client_credentials`` with
  ``client_secret_basic``, the token restricted to the requested ``audience`` or
  ``resource`` (RFC 8707).
- All three: a wrong client secret is ``invalid_client`` (401) — here with an
  ``error_description`` echoing what was sent, as a careless server might, so the tests
  can check the gateway never repeats it; ``expires_in`` on every token; RFC 7009
  revocation (200 whatever the token). Their token introspection (RFC 7662) is
  :meth:`AuthServer.introspect`, called in process by the upstream.

Access tokens are opaque random strings. Everything the server did is recorded for the
tests' assertions.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
import jwt
from aiohttp import web
from starlette.types import ASGIApp, Receive, Scope, Send

from zerolane.cli.background import free_port

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@dataclass
class Issued:
    """An access token the server issued."""

    token: str
    client_id: str
    grant: str
    audience: tuple[str, ...]
    subject: str
    act: dict[str, Any] | None
    expires_at: float
    revoked: bool = False


@dataclass
class AuthServer:
    """The authorization server: ``clients`` by id and secret, subject tokens trusted
    from ``trusted_issuer`` with keys at ``jwks_url``."""

    clients: dict[str, str]
    trusted_issuer: str = ""
    #: where the trusted issuer's keys are fetched from on each exchange, unless ``jwks``
    jwks_url: str = ""
    jwks: dict[str, Any] | None = None
    expires_in: int = 300
    issued: list[Issued] = field(default_factory=list)
    #: every token request: its form (subject token included) and the answer's status
    requests: list[tuple[dict[str, str], int]] = field(default_factory=list)
    subject_claims: list[dict[str, Any]] = field(default_factory=list)
    revocations: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.url}/revoke"

    def introspect(self, token: str) -> Issued | None:
        """The live token ``token`` (RFC 7662 ``active``), else None."""
        for issued in self.issued:
            if hmac.compare_digest(issued.token, token):
                live = not issued.revoked and issued.expires_at > time.time()
                return issued if live else None
        return None

    def of(self, subject: str) -> list[Issued]:
        return [issued for issued in self.issued if issued.subject == subject]

    # --- the endpoints ----------------------------------------------------------------

    def _client(self, request: web.Request) -> str | None:
        kind, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if kind.lower() != "basic":
            return None
        try:
            pair = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            return None
        client_id, _, secret = pair.partition(":")
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        return client_id

    async def _token(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        response = await self._answer(request, form)
        self.requests.append((form, response.status))
        return response

    async def _answer(self, request: web.Request, form: dict[str, str]) -> web.Response:
        client_id = self._client(request)
        if client_id is None:
            sent = request.headers.get("Authorization", "")
            return _error(401, "invalid_client", f"client authentication failed for {sent}")
        audience = tuple(form[key] for key in ("audience", "resource") if key in form)
        if not audience:
            return _error(400, "invalid_target", "name the audience")
        grant = form.get("grant_type")
        subject, act = client_id, None
        if grant == TOKEN_EXCHANGE:
            claims = await self._subject(form)
            if claims is None:
                return _error(400, "invalid_grant", "the subject token is not trusted")
            subject, act = claims["sub"], claims.get("act")
        elif grant != "client_credentials":
            return _error(400, "unsupported_grant_type", str(grant))
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + self.expires_in
        self.issued.append(Issued(token, client_id, grant, audience, subject, act, expires_at))
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if grant == TOKEN_EXCHANGE:
            body["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token"
        return web.json_response(body)

    async def _subject(self, form: dict[str, str]) -> dict[str, Any] | None:
        """The subject token's claims when it verifies against the trusted JWKS."""
        if form.get("subject_token_type") != JWT_TYPE:
            return None
        keys = jwt.PyJWKSet.from_dict(self.jwks or await self._fetch_keys())
        token = form.get("subject_token", "")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next(k for k in keys.keys if k.key_id == kid)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=self.token_endpoint,
                issuer=self.trusted_issuer,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except (jwt.PyJWTError, StopIteration):
            return None
        self.subject_claims.append(claims)
        return claims

    async def _fetch_keys(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(trust_env=False) as http,
            http.get(self.jwks_url) as response,
        ):
            found: dict[str, Any] = await response.json()
            return found

    async def _revoke(self, request: web.Request) -> web.Response:
        if self._client(request) is None:
            return _error(401, "invalid_client", "client authentication failed")
        token = str((await request.post()).get("token", ""))
        self.revocations.append(token)
        for issued in self.issued:
            if hmac.compare_digest(issued.token, token):
                issued.revoked = True
        return web.Response(status=200)

    @contextmanager
    def running(self) -> Iterator[AuthServer]:
        """Served on its loopback port, in a thread of its own."""
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/revoke", self._revoke)
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.run_until_complete(runner.cleanup())
            loop.close()


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=status)


@dataclass
class Seen:
    """One HTTP request the upstream received: its method and headers (lowercased)."""

    method: str
    headers: dict[str, str]

    @property
    def bearer(self) -> str:
        kind, _, token = self.headers.get("authorization", "").partition(" ")
        return token if kind.lower() == "bearer" else ""


class BearerGate:
    """An MCP server's front door: every request needs ``Authorization: Bearer <t>``
    with ``t`` a live token of ``server`` for ``audience`` (401 otherwise); every
    request is recorded (``seen``) before the check."""

    def __init__(self, app: ASGIApp, server: AuthServer, audience: str) -> None:
        self.app = app
        self.server = server
        self.audience = audience
        self.seen: list[Seen] = []
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        seen = Seen(scope["method"], headers)
        self.seen.append(seen)
        issued = self.server.introspect(seen.bearer) if seen.bearer else None
        if issued is None or self.audience not in issued.audience:
            self.refused += 1
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"www-authenticate", b'Bearer error="invalid_token"')],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)
