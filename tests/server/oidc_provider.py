"""A small OpenID provider for the consent page's sign-in tests: aiohttp on loopback.

``/authorize`` signs the configured person in at once and sends the browser back with a
code (or with ``error`` when set); ``/token`` exchanges a code once (PKCE S256, the
redirect URI it was issued for, the client's secret by HTTP Basic) for an ID token
signed with an ES256 key published at ``/jwks``. ``claims`` overrides what the ID token
says (a wrong ``nonce``, ``aud``...). :func:`sign_in_home` makes a home whose consent
page signs people in with it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import threading
import time
import tomllib
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import tomli_w
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.server.oauth_fixtures import oauth_home
from zerolane.fsutil import write_private
from zerolane.server.deployment import Deployment

CLIENT_ID = "zl-consent"
CLIENT_SECRET = "s3cret-of-the-consent-page"
SUBJECT = "alice@corp.example"


@dataclass
class _Code:
    redirect_uri: str
    nonce: str
    challenge: str
    used: bool = False


@dataclass
class TestProvider:
    """The provider; ``with`` it to serve on a free loopback port."""

    __test__ = False

    subject: str = SUBJECT
    #: an ``error`` for ``/authorize`` to answer with instead of a code
    error: str | None = None
    #: what the ID token says beside (or instead of) the usual
    claims: dict[str, Any] = field(default_factory=dict)
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    #: the name its URL uses (``localhost``: another site than ``127.0.0.1``)
    host: str = "127.0.0.1"
    url: str = ""
    #: show a page whose button signs in (the navigation back then starts at the
    #: provider's site, as after a real login form), instead of redirecting at once
    interactive: bool = False
    #: what each ``/authorize`` request asked for
    requests: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, _Code] = field(default_factory=dict)

    def __enter__(self) -> TestProvider:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/authorize", self._authorize)
            app.router.add_post("/approve", self._approve)
            app.router.add_post("/token", self._token)
            app.router.add_get("/jwks", self._jwks)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            ready.set()

        def run() -> None:
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test OpenID provider did not start")
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": self.subject,
            "aud": CLIENT_ID,
            "nonce": nonce,
            "iat": now,
            "exp": now + 300,
            **self.claims,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "k1"})

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.requests.append(query)
        if self.interactive:
            fields = "".join(
                f'<input type=hidden name="{escape(k)}" value="{escape(v)}">'
                for k, v in query.items()
            )
            html = f'<form method=post action="/approve">{fields}<button>Continue</button></form>'
            return web.Response(text=html, content_type="text/html")
        return self._answer(query)

    async def _approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        return self._answer({k: str(v) for k, v in form.items()})

    def _answer(self, query: dict[str, str]) -> web.Response:
        back = query["redirect_uri"]
        if self.error is not None:
            answer = {"error": self.error, "state": query.get("state", "")}
        else:
            code = secrets.token_urlsafe(16)
            self._codes[code] = _Code(back, query["nonce"], query["code_challenge"])
            answer = {"code": code, "state": query["state"]}
        raise web.HTTPFound(f"{back}?{urlencode(answer)}")

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {basic}":
            return web.json_response({"error": "invalid_client"}, status=401)
        found = self._codes.get(str(form.get("code")))
        if found is None or found.used or form.get("redirect_uri") != found.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        found.used = True
        verifier = str(form.get("code_verifier"))
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != found.challenge:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response(
            {
                "access_token": "opaque",
                "token_type": "Bearer",
                "id_token": self.id_token(found.nonce),
            }
        )

    async def _jwks(self, _: web.Request) -> web.Response:
        jwk = {**ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": "k1"}
        return web.json_response({"keys": [jwk]})


def sign_in_home(
    home: Path, provider: TestProvider, *, public_url: str, resource: str, local_user: bool
) -> Deployment:
    """A home with ``[oauth]`` on whose consent page signs people in with ``provider``."""
    oauth_home(home, public_url=public_url, resource=resource, bearer=False).close()
    path = home / "zerolane.toml"
    doc = tomllib.loads(path.read_text())
    doc["users"] = {
        "issuers": [
            {
                "name": "corp",
                "issuer": provider.url,
                "audience": CLIENT_ID,
                "jwks_url": f"{provider.url}/jwks",
                "algorithms": ["ES256"],
            }
        ]
    }
    doc["oauth"]["sign_in"] = [
        {
            "issuer": "corp",
            "display_name": "Corp SSO",
            "client_id": CLIENT_ID,
            "client_secret_file": "corp-secret",
            "authorization_endpoint": f"{provider.url}/authorize",
            "token_endpoint": f"{provider.url}/token",
            "scopes": ["openid", "email"],
        }
    ]
    if not local_user:
        del doc["oauth"]["local_user"]
    write_private(path, tomli_w.dumps(doc).encode())
    write_private(home / "corp-secret", (CLIENT_SECRET + "\n").encode())
    return Deployment.open(home)
