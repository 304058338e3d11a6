"""The gateway as an OAuth client of an external authorization server (RFC 6749).

Two calls: :func:`request_token` posts a grant to the token endpoint and returns the
access token it issues; :func:`revoke_token` revokes one (RFC 7009). The client
authenticates with ``client_secret_basic`` (RFC 6749 §2.3.1: id and secret
form-urlencoded, then Basic). Each call has its own connection: nothing is taken from
the environment (no proxy, no netrc), redirects are not followed, the whole exchange
is bounded in time and the answer in size. A failure is
:class:`~zerolane.errors.Unavailable` (``upstream.credential``) naming the server and
what went wrong (the server's ``error`` code at most): never the secret, the token or
the server's free-text description, which may echo either.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote_plus

import aiohttp

from zerolane.errors import Unavailable

REASON = "upstream.credential"
#: the whole exchange with the authorization server, connection included
TOKEN_SECONDS = 10.0
REVOKE_SECONDS = 5.0
#: the largest token endpoint answer read
MAX_ANSWER_BYTES = 64 * 1024
#: the longest access token taken (it goes in a header or an environment variable)
MAX_TOKEN_CHARS = 16 * 1024
#: an ``error`` code is shown only when it looks like one (RFC 6749 §5.2)
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """The gateway's client credentials at one authorization server."""

    client_id: str
    secret: str = field(repr=False)

    def header(self) -> str:
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.secret)}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token as issued: its value (never shown) and ``expires_in`` (None when
    the server did not say)."""

    value: str = field(repr=False)
    expires_in: float | None


def _session(seconds: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=seconds),
        trust_env=False,
    )


async def _post(
    url: str, auth: ClientAuth, form: Sequence[tuple[str, str]], seconds: float, what: str
) -> tuple[int, bytes]:
    headers = {"Authorization": auth.header(), "Accept": "application/json"}
    try:
        async with (
            _session(seconds) as http,
            http.post(url, data=list(form), headers=headers, allow_redirects=False) as response,
        ):
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    break
            return response.status, bytes(body)
    except TimeoutError as err:
        raise Unavailable(REASON, f"{what}: the authorization server did not answer") from err
    except (aiohttp.ClientError, OSError) as err:
        raise Unavailable(
            REASON, f"{what}: the authorization server is unreachable ({type(err).__name__})"
        ) from err


def _error_code(body: bytes) -> str:
    try:
        found = json.loads(body)
    except ValueError:
        return ""
    code = found.get("error") if isinstance(found, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""


def _parse(body: bytes, what: str) -> AccessToken:
    def bad(why: str) -> Unavailable:
        return Unavailable(REASON, f"{what}: the authorization server's answer {why}")

    if len(body) > MAX_ANSWER_BYTES:
        raise bad("is too large")
    try:
        found = json.loads(body)
    except ValueError as err:
        raise bad("is not JSON") from err
    if not isinstance(found, dict):
        raise bad("is not a JSON object")
    token = found.get("access_token")
    if not isinstance(token, str) or not _TOKEN_CHARS.fullmatch(token):
        raise bad("holds no usable access_token")
    if len(token) > MAX_TOKEN_CHARS:
        raise bad("holds an access token that is too long")
    kind = found.get("token_type")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise bad("is not a bearer token")
    expires = found.get("expires_in")
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= 0
    ):
        raise bad("has an invalid expires_in")
    return AccessToken(token, float(expires) if expires is not None else None)


async def request_token(
    url: str, auth: ClientAuth, form: Sequence[tuple[str, str]], *, what: str
) -> AccessToken:
    """The access token ``url`` issues for the grant in ``form``; ``what`` names the
    upstream in a failure."""
    status, body = await _post(url, auth, form, TOKEN_SECONDS, what)
    if status != 200:
        code = _error_code(body[:MAX_ANSWER_BYTES])
        said = f" ({code})" if code else ""
        raise Unavailable(REASON, f"{what}: the authorization server refused: HTTP {status}{said}")
    return _parse(body, what)


async def revoke_token(url: str, auth: ClientAuth, token: str, *, what: str) -> None:
    """Revoke an access token (RFC 7009); :class:`Unavailable` when it could not be."""
    form = [("token", token), ("token_type_hint", "access_token")]
    status, _ = await _post(url, auth, form, REVOKE_SECONDS, what)
    if status != 200:
        raise Unavailable(REASON, f"{what}: the revocation endpoint answered HTTP {status}")
