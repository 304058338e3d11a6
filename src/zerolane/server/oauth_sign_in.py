"""Signing in on the consent page through an OpenID provider (``[[oauth.sign_in]]``).

The control plane is the provider's relying party (OpenID Connect Core 1.0, section 3.1:
authorization code flow, with PKCE S256):

1. from the consent page, ``POST /oauth/sign-in`` (the page's id and CSRF token, and
   its cookie) starts a sign-in: a fresh ``state`` (used once, bound to that page and
   its CSRF token, which a cookie for the callback alone carries too, ``SameSite=Lax``
   so that the redirect from the provider's site sends it), ``nonce`` and PKCE
   verifier are kept, and the browser is sent to the provider's
   ``authorization_endpoint``;
2. the provider sends it back to ``/oauth/callback`` with a code (or an ``error``);
   the code is exchanged at its ``token_endpoint`` (client secret by HTTP Basic for a
   confidential client; no redirects, no proxies from the environment, 5 s timeout,
   at most :data:`MAX_BODY` bytes), and the ID token is verified by
   :class:`~zerolane.identity.users.UserTokenVerifier` (the ``[[users.issuers]]``
   entry: ``iss``, signature, ``aud`` = ``client_id``, ``exp``), then here: issued by
   the provider the sign-in went to, ``nonce`` the one sent, ``azp`` (if any) the
   ``client_id``.

Every refusal is a :class:`SignInRefused`, shown on the page and audited by the
caller; nothing is ever sent to the MCP client for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus, urlencode, urlsplit

import httpx

from zerolane.errors import Unauthenticated
from zerolane.identity.users import UserTokenVerifier, VerifiedUser
from zerolane.server.oauth_state import SignIn
from zerolane.settings.oauth import SignInConfig
from zerolane.tokens import jws

MAX_BODY = 64 * 1024
TIMEOUT = 5.0
_MAX_SECRET_FILE = 4096
_MAX_ERROR = 200

#: POSTs a form (with optional headers) and returns (status, body); raises SignInRefused
Post = Callable[[str, Mapping[str, str], Mapping[str, str]], tuple[int, bytes]]


class SignInRefused(Exception):
    """A sign-in refused: ``reason`` the audit reason, ``message`` shown to the person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def post_form(url: str, form: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, bytes]:
    """POST ``form`` to ``url``: no redirects, no proxies from the environment, 5 s
    timeout, body at most :data:`MAX_BODY` bytes."""
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", url, data=dict(form), headers={"Accept": "application/json", **headers}
            ) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise SignInRefused(
                        "oauth.sign_in_token", "the sign-in service's answer is too large"
                    )
            return response.status_code, bytes(body)
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError):
        raise SignInRefused(
            "oauth.sign_in_token", "the sign-in service could not be reached: try again later"
        ) from None


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _secret(path: Path) -> str:
    """The client secret in ``path`` (a small regular file, mode 0600)."""
    unusable = SignInRefused(
        "oauth.sign_in_config", "this sign-in is not set up right: tell an administrator"
    )
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_SECRET_FILE:
            raise unusable
        if info.st_mode & 0o077:
            raise unusable
        secret = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise unusable from None
    if not secret:
        raise unusable
    return secret


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider the consent page offers: ``issuer`` (its users.issuers name) and
    the button's ``label``."""

    issuer: str
    label: str


class OidcSignIn:
    def __init__(
        self,
        entries: Sequence[SignInConfig],
        *,
        home: Path,
        users: UserTokenVerifier,
        callback_url: str,
        post: Post = post_form,
    ) -> None:
        self._entries = {entry.issuer: entry for entry in entries}
        self._home = home
        self._users = users
        self.callback_url = callback_url
        self._post = post

    @property
    def providers(self) -> list[Provider]:
        return [Provider(e.issuer, e.label) for e in self._entries.values()]

    @property
    def origins(self) -> list[str]:
        """Where the consent page's sign-in forms lead (its ``form-action``)."""
        return sorted({_origin(e.authorization_endpoint) for e in self._entries.values()})

    def start(self, issuer: str, page_id: str, csrf: str, expires_at: float) -> SignIn:
        """A new sign-in through ``issuer`` for a page (``ValueError``: not offered)."""
        entry = self._entries.get(issuer)
        if entry is None:
            raise ValueError("pick one of the sign-in services offered")
        sign_in = SignIn(
            page_id=page_id,
            csrf=csrf,
            issuer=issuer,
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            expires_at=expires_at,
        )
        return sign_in

    def authorization_url(self, sign_in: SignIn, state: str) -> str:
        """Where the browser goes to sign in: the provider's authorization request."""
        entry = self._entries[sign_in.issuer]
        query = {
            "response_type": "code",
            "client_id": entry.client_id,
            "redirect_uri": self.callback_url,
            "scope": " ".join(entry.scopes),
            "state": state,
            "nonce": sign_in.nonce,
            "code_challenge": _s256(sign_in.verifier),
            "code_challenge_method": "S256",
        }
        parts = urlsplit(entry.authorization_endpoint)
        joined = f"{parts.query}&{urlencode(query)}" if parts.query else urlencode(query)
        return parts._replace(query=joined).geturl()

    @staticmethod
    def issuer_error(error: str) -> SignInRefused:
        shown = "".join(c for c in error[:_MAX_ERROR] if c.isprintable())
        return SignInRefused("oauth.sign_in_issuer", f"the sign-in service refused: {shown}")

    def finish(self, sign_in: SignIn, code: str) -> VerifiedUser:
        """The person the provider's ``code`` proves (:class:`SignInRefused`)."""
        entry = self._entries.get(sign_in.issuer)
        if entry is None:
            raise SignInRefused("oauth.sign_in_config", "this sign-in service is not offered")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.callback_url,
            "code_verifier": sign_in.verifier,
        }
        headers: dict[str, str] = {}
        if entry.client_secret_file is None:
            form["client_id"] = entry.client_id
        else:  # RFC 6749 section 2.3.1: both form-encoded, then Basic
            secret = _secret(self._home / entry.client_secret_file)
            pair = f"{quote_plus(entry.client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        status, body = self._post(entry.token_endpoint, form, headers)
        id_token = _id_token(status, body)
        try:
            user = self._users.verify(id_token)
        except Unauthenticated as err:
            raise SignInRefused(err.reason, f"the sign-in was refused: {err.message}") from None
        claims = jws.unverified_claims(id_token) or {}  # verified just above
        if user.issuer_name != sign_in.issuer:
            raise SignInRefused("id_token.unknown_issuer", "the ID token is from another issuer")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), sign_in.nonce.encode()
        ):
            raise SignInRefused("id_token.nonce", "the ID token was not issued for this sign-in")
        azp = claims.get("azp")
        if azp is not None and azp != entry.client_id:
            raise SignInRefused("id_token.audience", "the ID token was issued to another client")
        return user


def _id_token(status: int, body: bytes) -> str:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if status != 200:
        error = doc.get("error") if isinstance(doc, dict) else None
        shown = error if isinstance(error, str) else f"HTTP {status}"
        raise SignInRefused(
            "oauth.sign_in_token",
            "the sign-in service refused the code: "
            + "".join(c for c in shown[:_MAX_ERROR] if c.isprintable()),
        )
    id_token = doc.get("id_token") if isinstance(doc, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise SignInRefused("oauth.sign_in_token", "the sign-in service sent no ID token")
    return id_token
