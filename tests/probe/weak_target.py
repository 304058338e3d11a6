"""Deliberately weak targets for the probe's tests: one small server that is an OAuth
authorization server, a resource server and an MCP endpoint, sound by default, with at
most one weakness switched on.

``with WeakTarget() as target:`` serves it on a loopback port in a background thread
(uvicorn, as :class:`zerolane.cli.background.BackgroundApp` runs any ASGI app). It is an
independent implementation (joserfc for every token and proof, nothing of zerolane's
verifiers), so a scenario that passes against zerolane's gateway and fails against the
matching weakness here is measured against two implementations, not one.

The authorization server (``/token``, ``/revoke``, ``/jwks``, RFC 8414 metadata):

- ``client_credentials`` with the client's id and secret (``client_secret_basic`` or
  ``client_secret_post``), ``scope`` (a subset of the client's) and RFC 8707
  ``resource`` (the target's audience by default, or :data:`OTHER_AUDIENCE`); the token
  is an ES256 JWT (``iss``, ``sub``, ``aud``, ``exp``, ``nbf``, ``iat``, ``jti``,
  ``scope``, ``client_id``) living ``expires_in`` seconds;
- with a DPoP proof on the token request the token is bound to its key (``cnf.jkt``,
  ``token_type`` ``DPoP``); without one the request is refused (``invalid_dpop_proof``),
  unless the target is :attr:`Weakness.BEARER_ONLY`, which issues bearer tokens only;
- RFC 8693 token exchange: ``subject_token`` a live token of this issuer, ``scope`` a
  subset of the subject's (else ``invalid_scope``); the child (``act`` names the client)
  records its parent and is revoked with it;
- RFC 7009 revocation: a revoked token's children (and theirs) are revoked with it.

The resource server: ``GET /data/reports/q3`` needs scope ``read``, ``DELETE
/data/reports/q3`` scope ``delete``, ``GET /admin/secret`` is never allowed, ``GET
/echo`` and ``GET /echo/legacy`` (scope ``read``) answer the headers that reached it
(without ``Authorization`` and ``DPoP``, which a sound server keeps to itself). Tokens
are verified with joserfc: ES256 only, the key chosen by ``kid`` among the issuer's (no
``jwk``/``jku``/``x5u`` header trusted, no URL a header names fetched), ``iss``,
``aud``, ``exp``/``nbf`` (no leeway), revocation; a bound token needs the ``DPoP``
scheme and a proof (RFC 9449: ``typ``, ``alg``, the ``jwk``'s thumbprint is ``cnf.jkt``,
``htm``, ``htu`` the URL as sent, ``iat`` within 60 s, ``ath``, ``jti`` spent once). A
path that is not plain (percent-encoding, dot segments, backslashes, ``;`` parameters,
empty segments) is refused, so what is decided is what is served; method-override
headers are refused; a body over 1 MiB is answered 413, a head over 16 KiB 431.

``POST /mcp`` is a streamable-HTTP MCP endpoint (JSON answers) behind the same
authentication: ``initialize``, ``notifications/initialized``, ``tools/list`` (the
token's tools only) and ``tools/call`` of ``echo`` (scope ``read``) and ``delete_all``
(scope ``delete``); a call outside the scope is a JSON-RPC error (-32003).

Each :class:`Weakness` breaks one of these checks (its comment says which), so a
scenario's test shows the attack refused by the sound target and accepted by the weak
one. :meth:`WeakTarget.sign` signs claims with the issuer's key, for tests of scenarios
that need ``ISSUER_KEY`` (an OAuth client never holds it).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import hmac
import json
import posixpath
import secrets
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote, urlsplit

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, GuestProtocol, KeySet, OKPKey, import_key

from zerolane.cli.background import free_port
from zerolane.probe.profile import Call, McpProfile, TargetProfile

CLIENT_ID = "probe-client"
#: the audience of the target's resource server
AUDIENCE = "https://rs.weak.test"
#: another resource the issuer knows (RFC 8707): a token for it is not for this target
OTHER_AUDIENCE = "https://elsewhere.weak.test"
#: what the client may ask for
CLIENT_SCOPE = ("read", "delete")
#: what the probe's credential is issued (the allowed call needs read, the forbidden delete)
PROBE_SCOPE = "read"
SECRET = b'{"secret":"the admin secret"}'
REPORT = b'{"report":"q3","revenue":1}'
MAX_BODY = 1024 * 1024
MAX_HEAD = 16 * 1024
PROOF_WINDOW = 60
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
_OVERRIDES = (b"x-http-method-override", b"x-http-method", b"x-method-override")
_TOOLS = {
    "echo": ("read", "Answers its text."),
    "delete_all": ("delete", "Deletes every report."),
}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Weakness(enum.StrEnum):
    """One way the target is wrong (at most one per instance)."""

    #: a DPoP proof's jti is never remembered: the same proof works again
    REPLAYED_PROOFS = "replayed_proofs"
    #: the token's aud is not checked: a token for another resource works here
    IGNORES_AUDIENCE = "ignores_audience"
    #: a token with alg none (no signature) is accepted
    ALG_NONE = "alg_none"
    #: the decision is made on the raw path's prefix, then the normalized path is served
    PATHS_AFTER_DECIDING = "paths_after_deciding"
    #: revoked (completed) tokens, and their children, keep working at the resource server
    KEEPS_REVOKED = "keeps_revoked"
    #: the agent's Authorization and DPoP headers reach the upstream (/echo shows them)
    PASSTHROUGH = "passthrough"
    #: /echo is sound, but /echo/legacy's upstream gets the agent's Authorization header
    #: base64-encoded (X-Forwarded-Authorization-B64): one route of several leaks
    PASSTHROUGH_SECOND_ROUTE = "passthrough_second_route"
    #: tools/list lists every tool, whatever the token's scope
    LISTS_EVERY_TOOL = "lists_every_tool"
    #: bearer tokens only: no proof is asked for, at the token endpoint or the resource
    BEARER_ONLY = "bearer_only"
    #: a bound token works without its proof (as Bearer, or DPoP with no proof)
    PROOF_OPTIONAL = "proof_optional"
    #: the proof's key is not compared with the token's cnf.jkt
    PROOF_ANY_KEY = "proof_any_key"
    #: the proof's htm is not compared with the request's method
    PROOF_ANY_METHOD = "proof_any_method"
    #: the proof's htu is not compared with the request's URL
    PROOF_ANY_URL = "proof_any_url"
    #: the proof's iat is not held to the window (stale and future proofs work)
    PROOF_ANY_TIME = "proof_any_time"
    #: a token exchange grants whatever scope is asked, beyond the subject's
    WIDER_DELEGATION = "wider_delegation"
    #: exp and nbf are not checked
    IGNORES_EXPIRY = "ignores_expiry"
    #: a token carrying its own key in a jwk header is verified with that key
    TRUSTS_JWK_HEADER = "trusts_jwk_header"
    #: a token's jku is fetched and the token verified with the key set found there
    TRUSTS_JKU_HEADER = "trusts_jku_header"
    #: a token's x5u is fetched and the token verified with the certificate's key
    TRUSTS_X5U_HEADER = "trusts_x5u_header"
    #: a token's jku or x5u URL is fetched (SSRF), though the token is then verified
    #: with the issuer's keys as it should be (and refused)
    FETCHES_KEY_URLS = "fetches_key_urls"
    #: an HS256 token is verified with the issuer's public key (PEM) as the secret
    HS256_PUBLIC_KEY = "hs256_public_key"
    #: X-HTTP-Method-Override is honoured after deciding on the request's own method
    METHOD_OVERRIDE = "method_override"
    #: no limit on the request's body or head
    NO_LIMITS = "no_limits"
    #: tools/call calls any tool, whatever the token's scope
    CALLS_EVERY_TOOL = "calls_every_tool"


class _Nonce(Exception):
    """The token request's proof lacks the server's nonce."""


class _Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class _Issued:
    jti: str
    client_id: str
    scope: frozenset[str]
    exp: int
    parent: str | None = None


@dataclass
class _State:
    """What the authorization server remembers (read by the resource server too)."""

    issued: dict[str, _Issued] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    spent_proofs: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def is_revoked(self, jti: str) -> bool:
        """Revoked itself or through any ancestor."""
        with self.lock:
            seen: set[str] = set()
            current: str | None = jti
            while current is not None and current not in seen:
                if current in self.revoked:
                    return True
                seen.add(current)
                record = self.issued.get(current)
                current = record.parent if record is not None else None
            return False

    def first_use(self, key: str, now: float) -> bool:
        with self.lock:
            for spent, until in list(self.spent_proofs.items()):
                if until < now:
                    del self.spent_proofs[spent]
            if key in self.spent_proofs:
                return False
            self.spent_proofs[key] = now + 2 * PROOF_WINDOW
            return True


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class WeakTarget:
    """The target on a loopback port: sound, or with ``weakness`` switched on.

    ``expires_in``: the lifetime of the tokens it issues (seconds); ``dpop_nonce``: the
    token endpoint asks for a server nonce in the proof (RFC 9449 section 8).
    """

    def __init__(
        self,
        weakness: Weakness | None = None,
        *,
        expires_in: int = 300,
        dpop_nonce: bool = False,
        leaks: bool = False,
    ) -> None:
        self.weakness = weakness
        self.expires_in = expires_in
        self.nonce = secrets.token_urlsafe(8) if dpop_nonce else None
        self.leaks = leaks
        #: credentials of the target's own it shows in a ``Location`` query when it
        #: ``leaks`` (the probe never held them)
        self.planted = (secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        self.client_id = CLIENT_ID
        self.client_secret = secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = self.url
        self.audience = AUDIENCE
        self.token_url = f"{self.url}/token"
        self.revoke_url = f"{self.url}/revoke"
        self.jwks_url = f"{self.url}/jwks"
        self._key = ECKey.generate_key("P-256", parameters={"kid": "weak-1", "use": "sig"})
        self._keys = KeySet([self._key])
        self.state = _State()
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            interface="asgi3",
            log_level="error",
            proxy_headers=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> WeakTarget:
        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self._server.should_exit = True
        raise RuntimeError(f"the weak target on {self.url} did not start")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def sign(self, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
        """``claims`` signed with the issuer's key (for tests that need what the probe's
        ``ISSUER_KEY`` gives: an expired or not-yet-valid token the issuer signed)."""
        protected = {"alg": "ES256", "kid": self._key.kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(protected, dict(claims), self._key, algorithms=["ES256"])

    def jwks(self) -> list[dict[str, Any]]:
        """The issuer's public keys (what ``/jwks`` serves)."""
        return [dict(self._key.as_dict(private=False))]

    def claims(self, **extra: Any) -> dict[str, Any]:
        """The claims of a token this issuer would issue now (scope read, 5 minutes)."""
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": self.client_id,
            "aud": self.audience,
            "client_id": self.client_id,
            "scope": PROBE_SCOPE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
            **extra,
        }

    def weak(self, weakness: Weakness) -> bool:
        return self.weakness is weakness

    def profile(self, *, forbidden: Call | None = None) -> TargetProfile:
        """The probe's view: GET /data/reports/q3 allowed, DELETE of it forbidden (or
        ``forbidden``), two echo routes (/echo, /echo/legacy), and the MCP endpoint
        with ``echo`` and ``delete_all``."""
        return TargetProfile(
            self.url,
            Call("GET", "/data/reports/q3"),
            forbidden or Call("DELETE", "/data/reports/q3"),
            mcp=McpProfile("/mcp", "echo", "delete_all", {"text": "hi"}),
            echo=(Call("GET", "/echo"), Call("GET", "/echo/legacy")),
        )

    # the ASGI app

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover  (no websockets here)
            return
        status, headers, body = await self._handle(scope, receive)
        if self.leaks:
            headers, body = self._leaked(scope, headers, body)
        sent_headers = [(b"content-length", str(len(body)).encode()), *headers]
        if body and not any(name == b"content-type" for name, _ in headers):
            sent_headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": sent_headers})
        await send({"type": "http.response.body", "body": body})

    def _leaked(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The answer of a resource route with what a careless server shows first: the
        request's credentials in every shape (raw, percent-encoded, base64 standard and
        URL-safe, with and without padding, the whole Authorization header and the
        client's id:secret base64'd), and a Location whose query holds credentials of
        its own. The authorization server's and MCP's answers are left as they are."""
        if scope["path"] in ("/token", "/revoke", "/jwks", "/healthz", "/mcp"):
            return headers, body
        authorization = _header(scope["headers"], b"authorization") or ""
        proof = _header(scope["headers"], b"dpop") or ""
        token = authorization.partition(" ")[2]
        pair = f"{self.client_id}:{self.client_secret}".encode()
        shown = {
            "raw": token,
            "quoted": quote(token, safe=""),
            "quoted_plus": quote_plus(proof),
            "b64_header": base64.b64encode(authorization.encode()).decode(),
            "b64_token": base64.b64encode(token.encode()).decode(),
            "b64url_token": _b64url(token.encode()),
            "b64url_proof": base64.urlsafe_b64encode(proof.encode()).decode(),
            "b64_proof_shifted": base64.b64encode(b"x:" + proof.encode()).decode(),
            "basic": base64.b64encode(pair).decode(),
            "secret_quoted": quote(self.client_secret, safe=""),
        }
        token_param, code = self.planted
        location = f"{self.url}/callback?state=1&access_token={token_param}&code={code}"
        leaked = json.dumps(shown).encode()
        return [*headers, (b"location", location.encode())], leaked + b"\n" + body

    async def _handle(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        limited = not self.weak(Weakness.NO_LIMITS)
        if limited and sum(len(name) + len(value) + 4 for name, value in headers) > MAX_HEAD:
            return _error(431, "headers_too_large", "the request head is over 16 KiB")
        try:
            body = await _body(headers, receive, MAX_BODY if limited else None)
        except _Refused as refused:
            return _error(refused.status, refused.error, refused.description)
        try:
            return await asyncio.to_thread(self._route, scope, headers, body)
        except _Refused as refused:
            return _refusal(refused)

    def _route(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        method: str = scope["method"]
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        raw = raw.split(b"?", 1)[0]
        raw_path = raw.decode("latin-1")
        if raw_path == "/healthz":
            return 200, [], b'{"ok":true}'
        if raw_path == "/.well-known/oauth-authorization-server":
            return _json(200, self._metadata())
        if raw_path == "/jwks":
            return _json(200, {"keys": self.jwks()})
        if raw_path == "/token" and method == "POST":
            try:
                return _json(200, self._token(headers, body), cache=False)
            except _Nonce:
                status, sent, answer = _error(400, "use_dpop_nonce", "use the server's nonce")
                return status, [*sent, (b"dpop-nonce", str(self.nonce).encode())], answer
        if raw_path == "/revoke" and method == "POST":
            self._revoke(headers, body)
            return 200, [], b""
        override = next((v.decode("latin-1") for n, v in headers if n in _OVERRIDES), None)
        if override is not None and not self.weak(Weakness.METHOD_OVERRIDE):
            raise _Refused(400, "invalid_request", "method-override headers are not honoured")
        url = f"http://{_header(headers, b'host') or f'127.0.0.1:{self.port}'}{raw_path}"
        if raw_path == "/mcp":
            if method != "POST":
                raise _Refused(405, "method_not_allowed", "POST JSON-RPC messages to /mcp")
            claims = self._authenticate(headers, method, url)
            return self._mcp(claims, body)
        decided, served = self._paths(raw_path)
        needed = self._needed(method, decided)
        claims = self._authenticate(headers, method, url)
        if needed not in _scope(claims):
            raise _Refused(403, "insufficient_scope", f"this request needs scope {needed}")
        return self._serve((override or method).upper(), served, headers)

    # the authorization server

    def _metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_url,
            "revocation_endpoint": self.revoke_url,
            "jwks_uri": self.jwks_url,
            "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        }

    def _client(self, headers: list[tuple[bytes, bytes]], form: Mapping[str, str]) -> str:
        """The authenticated client's id (client_secret_basic or client_secret_post)."""
        authorization = _header(headers, b"authorization")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization is not None and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:], validate=True).decode()
            except ValueError:
                raise _Refused(401, "invalid_client", "malformed basic credentials") from None
            client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
        if client_id != self.client_id or secret is None:
            raise _Refused(401, "invalid_client", "unknown client")
        if not secrets.compare_digest(secret.encode(), self.client_secret.encode()):
            raise _Refused(401, "invalid_client", "the client's secret is wrong")
        return client_id

    def _token(self, headers: list[tuple[bytes, bytes]], body: bytes) -> dict[str, Any]:
        form = _form(body)
        client_id = self._client(headers, form)
        grant = form.get("grant_type")
        resource = form.get("resource", self.audience)
        if resource not in (self.audience, OTHER_AUDIENCE):
            raise _Refused(400, "invalid_target", "unknown resource")
        parent: _Issued | None = None
        if grant == "client_credentials":
            allowed = frozenset(CLIENT_SCOPE)
            asked = frozenset(form.get("scope", PROBE_SCOPE).split())
        elif grant == TOKEN_EXCHANGE:
            if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
                raise _Refused(400, "invalid_request", "the subject is an access token")
            subject = self._subject(form.get("subject_token", ""))
            parent = self.state.issued[subject["jti"]]
            allowed = parent.scope
            asked = frozenset(form["scope"].split()) if "scope" in form else allowed
            resource = form.get("resource", subject["aud"])
        else:
            raise _Refused(400, "unsupported_grant_type", "client_credentials or token exchange")
        if self.weak(Weakness.WIDER_DELEGATION):
            allowed = allowed | asked
        if not asked or not asked <= allowed:
            raise _Refused(400, "invalid_scope", "the scope asked for is not granted")
        jkt = self._token_proof(headers)
        now = int(time.time())
        exp = now + self.expires_in if parent is None else min(now + self.expires_in, parent.exp)
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "aud": resource,
            "client_id": client_id,
            "scope": " ".join(sorted(asked)),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
        }
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        if parent is not None:
            claims["act"] = {"sub": client_id}
        token = jwt.encode(
            {"alg": "ES256", "kid": self._key.kid, "typ": "at+jwt"},
            claims,
            self._key,
            algorithms=["ES256"],
        )
        with self.state.lock:
            self.state.issued[jti] = _Issued(
                jti, client_id, asked, exp, parent.jti if parent else None
            )
        answer: dict[str, Any] = {
            "access_token": token,
            "token_type": "DPoP" if jkt is not None else "Bearer",
            "expires_in": exp - now,
            "scope": claims["scope"],
        }
        if parent is not None:
            answer["issued_token_type"] = ACCESS_TOKEN_TYPE
        return answer

    def _token_proof(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The thumbprint the new token is bound to (None: a bearer token)."""
        if self.weak(Weakness.BEARER_ONLY):
            return None
        proofs = [value for name, value in headers if name == b"dpop"]
        if len(proofs) != 1:
            raise _Refused(400, "invalid_dpop_proof", "send one DPoP proof")
        proof = proofs[0].decode("latin-1")
        jkt = self._proof(proof, "POST", self.token_url, None, None)
        if self.nonce is not None:
            claims = json.loads(jws.extract_compact(proof.encode("ascii")).payload)
            if claims.get("nonce") != self.nonce:
                raise _Nonce
        return jkt

    def _subject(self, token: str) -> dict[str, Any]:
        try:
            claims = self._verified(token)
        except _Refused:
            raise _Refused(400, "invalid_grant", "the subject token is not valid") from None
        if claims["jti"] not in self.state.issued or self.state.is_revoked(claims["jti"]):
            raise _Refused(400, "invalid_grant", "the subject token is revoked")
        return claims

    def _revoke(self, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        form = _form(body)
        client_id = self._client(headers, form)
        try:
            claims = self._verified(form.get("token", ""), check_claims=False)
        except _Refused:
            return  # RFC 7009 2.2: an invalid token is answered 200 all the same
        record = self.state.issued.get(claims.get("jti", ""))
        if record is not None and record.client_id == client_id:
            with self.state.lock:
                self.state.revoked.add(record.jti)

    # the resource server

    def _verified(self, token: str, *, check_claims: bool = True) -> dict[str, Any]:
        """The claims of a token this issuer signed (ES256, key by kid); with
        ``check_claims``, iss, jti, exp, nbf and (as the target checks it) aud too."""
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError):
            raise _Refused(401, "invalid_token", "the token is not a JWS") from None
        try:
            if header.get("alg") == "none" and self.weak(Weakness.ALG_NONE):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    decoded = jwt.decode(token, self._keys, algorithms=["none"])
            elif header.get("alg") == "HS256" and self.weak(Weakness.HS256_PUBLIC_KEY):
                return self._checked(self._hs256(token), check_claims)
            elif "jwk" in header and self.weak(Weakness.TRUSTS_JWK_HEADER):
                key = import_key(header["jwk"])
                decoded = jwt.decode(token, key, algorithms=["ES256"])
            elif "jku" in header and self.weak(Weakness.TRUSTS_JKU_HEADER):
                found = KeySet.import_key_set(json.loads(_fetched(header["jku"])))
                decoded = jwt.decode(token, found, algorithms=["ES256"])
            elif "x5u" in header and self.weak(Weakness.TRUSTS_X5U_HEADER):
                chain = x509.load_pem_x509_certificates(_fetched(header["x5u"]))
                public = (
                    chain[0]
                    .public_key()
                    .public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                )
                decoded = jwt.decode(token, ECKey.import_key(public), algorithms=["ES256"])
            else:
                if self.weak(Weakness.FETCHES_KEY_URLS):
                    for member in ("jku", "x5u"):
                        if isinstance(header.get(member), str):
                            _fetched(header[member])

                decoded = jwt.decode(token, self._by_kid, algorithms=["ES256"])
        except (JoseError, ValueError, KeyError, TypeError, httpx.HTTPError):
            raise _Refused(401, "invalid_token", "the token's signature is not valid") from None
        return self._checked(dict(decoded.claims), check_claims)

    def _hs256(self, token: str) -> dict[str, Any]:
        """The classic confusion: HMAC keyed with the public key's PEM (stdlib hmac:
        joserfc refuses an asymmetric public key as an oct key, rightly)."""
        signing_input, _, signature = token.rpartition(".")
        secret = self._key.as_pem(private=False)
        expected = _b64url(hmac.new(secret, signing_input.encode("ascii"), "sha256").digest())
        if not hmac.compare_digest(expected, signature):
            raise _Refused(401, "invalid_token", "the token's signature is not valid")
        payload = signing_input.partition(".")[2]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if not isinstance(claims, dict):
            raise _Refused(401, "invalid_token", "the token's claims are not an object")
        return claims

    def _checked(self, claims: dict[str, Any], check_claims: bool) -> dict[str, Any]:
        if not check_claims:
            return claims
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "jti": {"essential": True},
            "exp": {"essential": True},
            "nbf": {"essential": True},
        }
        if not self.weak(Weakness.IGNORES_AUDIENCE):
            options["aud"] = {"essential": True, "value": self.audience}
        checked = claims
        if self.weak(Weakness.IGNORES_EXPIRY):
            del options["exp"], options["nbf"]
            checked = {k: v for k, v in claims.items() if k not in ("exp", "nbf")}
        try:
            jwt.JWTClaimsRegistry(leeway=0, **options).validate(checked)
        except JoseError as error:
            raise _Refused(401, "invalid_token", f"the token is refused: {error.error}") from None
        return claims

    def _by_kid(self, guest: GuestProtocol) -> ECKey:
        kid = guest.headers().get("kid")
        if kid != self._key.kid:
            raise KeyError("unknown kid")
        return self._key

    def _authenticate(
        self, headers: list[tuple[bytes, bytes]], method: str, url: str
    ) -> dict[str, Any]:
        values = [value for name, value in headers if name == b"authorization"]
        if len(values) != 1:
            raise _Refused(401, "invalid_request", "send one Authorization header")
        scheme, _, token = values[0].decode("latin-1").partition(" ")
        claims = self._verified(token.strip())
        jti = claims["jti"]
        if not self.weak(Weakness.KEEPS_REVOKED) and self.state.is_revoked(jti):
            raise _Refused(401, "invalid_token", "the token is revoked")
        cnf = claims.get("cnf")
        proofs = [value for name, value in headers if name == b"dpop"]
        if not proofs and self.weak(Weakness.PROOF_OPTIONAL):
            return claims
        if isinstance(cnf, dict) and not self.weak(Weakness.BEARER_ONLY):
            if scheme.lower() != "dpop":
                raise _Refused(401, "invalid_token", "a bound token is presented as DPoP")
            if len(proofs) != 1:
                raise _Refused(401, "invalid_dpop_proof", "send one DPoP proof")
            self._proof(proofs[0].decode("latin-1"), method, url, token.strip(), cnf.get("jkt"))
        elif scheme.lower() != "bearer":
            raise _Refused(401, "invalid_token", "a bearer token is presented as Bearer")
        return claims

    def _proof(self, proof: str, method: str, url: str, token: str | None, jkt: object) -> str:
        """Verify a DPoP proof (RFC 9449 section 4.3); the thumbprint of its key."""
        try:
            header = jws.extract_compact(proof.encode("ascii")).headers()
            if header.get("typ") != "dpop+jwt" or header.get("alg") not in ("ES256", "EdDSA"):
                raise _Refused(401, "invalid_dpop_proof", "typ dpop+jwt, alg ES256 or EdDSA")
            jwk = header.get("jwk")
            if not isinstance(jwk, dict) or "d" in jwk:
                raise _Refused(401, "invalid_dpop_proof", "the proof carries a public jwk")
            key = import_key(jwk)
            if not isinstance(key, ECKey | OKPKey):
                raise _Refused(401, "invalid_dpop_proof", "an EC or OKP key")
            verified = jws.deserialize_compact(proof, key, algorithms=[header["alg"]])
            claims = json.loads(verified.payload)
        except (JoseError, ValueError, UnicodeError, TypeError):
            raise _Refused(401, "invalid_dpop_proof", "the proof does not verify") from None
        thumbprint = key.thumbprint()
        if jkt is not None and jkt != thumbprint and not self.weak(Weakness.PROOF_ANY_KEY):
            raise _Refused(401, "invalid_dpop_proof", "the proof's key is not the token's")
        if not isinstance(claims, dict):
            raise _Refused(401, "invalid_dpop_proof", "the proof's claims are an object")
        if claims.get("htm") != method and not self.weak(Weakness.PROOF_ANY_METHOD):
            raise _Refused(401, "invalid_dpop_proof", "the proof is for another method")
        if _htu(claims.get("htu")) != _htu(url) and not self.weak(Weakness.PROOF_ANY_URL):
            raise _Refused(401, "invalid_dpop_proof", "the proof is for another URL")
        iat, now = claims.get("iat"), time.time()
        if not isinstance(iat, int) or (
            abs(now - iat) > PROOF_WINDOW and not self.weak(Weakness.PROOF_ANY_TIME)
        ):
            raise _Refused(401, "invalid_dpop_proof", "the proof is too old or too new")
        if token is not None:
            ath = _b64url(hashlib.sha256(token.encode("ascii")).digest())
            if claims.get("ath") != ath:
                raise _Refused(401, "invalid_dpop_proof", "the proof is for another token")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _Refused(401, "invalid_dpop_proof", "the proof has no jti")
        replayable = self.weak(Weakness.REPLAYED_PROOFS)
        if not replayable and not self.state.first_use(f"{thumbprint}:{jti}", now):
            raise _Refused(401, "invalid_dpop_proof", "the proof was used already")
        return thumbprint

    def _paths(self, raw: str) -> tuple[str, str]:
        """The path decided on and the path served (the same, for a sound target)."""
        if self.weak(Weakness.PATHS_AFTER_DECIDING):
            served = raw
            for _ in range(3):  # %252e -> %2e -> .
                served = unquote(served)
            segments = [
                segment.split(";", 1)[0] for segment in served.replace("\\", "/").split("/")
            ]
            served = posixpath.normpath("/".join(segments) or "/")
            decided = "/data/reports/q3" if raw.startswith("/data/reports/") else raw
            return decided, served
        plain = all(c not in raw for c in "%\\;") and "//" not in raw
        if not plain or any(segment in (".", "..") for segment in raw.split("/")):
            raise _Refused(400, "invalid_request", "the path is not in its plain form")
        return raw, raw

    @staticmethod
    def _needed(method: str, path: str) -> str:
        if path == "/data/reports/q3" and method in ("GET", "HEAD"):
            return "read"
        if path == "/data/reports/q3" and method == "DELETE":
            return "delete"
        if path in ("/echo", "/echo/legacy") and method == "GET":
            return "read"
        if path == "/admin/secret":
            return "admin"  # never granted to a client
        raise _Refused(404, "not_found", "no such resource")

    def _serve(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if path == "/admin/secret":
            return 200, [], SECRET
        if path in ("/echo", "/echo/legacy"):
            hidden = () if self.weak(Weakness.PASSTHROUGH) else (b"authorization", b"dpop")
            seen = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in headers
                if name not in hidden
            }
            if path == "/echo/legacy" and self.weak(Weakness.PASSTHROUGH_SECOND_ROUTE):
                given = (_header(headers, b"authorization") or "").encode("latin-1")
                seen["x-forwarded-authorization-b64"] = base64.b64encode(given).decode()
            return _json(200, {"headers": seen})
        if path == "/data/reports/q3" and method == "DELETE":
            return _json(200, {"deleted": "q3"})
        if path == "/data/reports/q3":
            return 200, [], REPORT
        raise _Refused(404, "not_found", "no such resource")

    # the MCP endpoint

    def _mcp(
        self, claims: Mapping[str, Any], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            message = json.loads(body)
        except ValueError:
            return _json(400, _rpc_error(None, -32700, "not JSON"))
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _json(400, _rpc_error(None, -32600, "a JSON-RPC 2.0 message"))
        ident, method = message.get("id"), message.get("method")
        if "id" not in message:  # a notification (notifications/initialized)
            return 202, [], b""
        granted = _scope(claims)
        if method == "initialize":
            params = message.get("params") or {}
            return _json(
                200,
                _rpc_result(
                    ident,
                    {
                        "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                        "capabilities": {"tools": {"listChanged": False}},
                        "serverInfo": {"name": "weak-target", "version": "1"},
                    },
                ),
            )
        if method == "tools/list":
            every = self.weak(Weakness.LISTS_EVERY_TOOL)
            tools = [
                {
                    "name": name,
                    "description": description,
                    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
                }
                for name, (needed, description) in _TOOLS.items()
                if every or needed in granted
            ]
            return _json(200, _rpc_result(ident, {"tools": tools}))
        if method == "tools/call":
            params = message.get("params") or {}
            name = params.get("name")
            if name not in _TOOLS:
                return _json(200, _rpc_error(ident, -32602, "unknown tool"))
            if _TOOLS[name][0] not in granted and not self.weak(Weakness.CALLS_EVERY_TOOL):
                return _json(200, _rpc_error(ident, -32003, "the tool is outside the scope"))
            arguments = params.get("arguments") or {}
            text = str(arguments.get("text", "")) if name == "echo" else "deleted every report"
            return _json(200, _rpc_result(ident, {"content": [{"type": "text", "text": text}]}))
        return _json(200, _rpc_error(ident, -32601, "unknown method"))


# helpers


async def _body(
    headers: Iterable[tuple[bytes, bytes]], receive: Receive, limit: int | None
) -> bytes:
    declared = _header(list(headers), b"content-length")
    if declared is not None and limit is not None and int(declared) > limit:
        raise _Refused(413, "body_too_large", "the body is over 1 MiB")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise _Refused(413, "body_too_large", "the body is over 1 MiB")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _fetched(url: object) -> bytes:
    """What ``url`` (a token header's jku or x5u) serves, as a careless verifier reads
    it: whatever the header names."""
    if not isinstance(url, str):
        raise ValueError("a URL is a string")
    answer = httpx.get(url, timeout=5, follow_redirects=False, trust_env=False)
    answer.raise_for_status()
    return answer.content


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeError:
        raise _Refused(400, "invalid_request", "a form body") from None
    if any(len(values) != 1 for values in parsed.values()):
        raise _Refused(400, "invalid_request", "a parameter is sent once")
    return {name: values[0] for name, values in parsed.items()}


def _scope(claims: Mapping[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def _htu(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"


def _json(
    status: int, body: Mapping[str, Any], *, cache: bool = True
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [] if cache else [(b"cache-control", b"no-store")]
    return status, headers, json.dumps(body).encode()


def _error(
    status: int, error: str, description: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return _json(status, {"error": error, "error_description": description})


def _refusal(refused: _Refused) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, headers, body = _error(refused.status, refused.error, refused.description)
    if refused.status == 401:
        challenge = f'DPoP error="{refused.error}", algs="ES256 EdDSA"'
        headers = [*headers, (b"www-authenticate", challenge.encode())]
    return status, headers, body


def _rpc_result(ident: object, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": dict(result)}


def _rpc_error(ident: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}
