"""Credentials from an OAuth 2.0 authorization server, for targets that are not zerolane:
a client-credentials grant (:class:`ClientCredentials`) or a token exchange of a token
the probe is given (:class:`TokenExchange`).

What a source offers follows from what it is told about the authorization server (or
finds in its RFC 8414 metadata, or its OpenID Connect configuration, given the
``issuer``):

- every grant is a new credential (``SECOND_CREDENTIAL``);
- ``dpop`` (the default): each grant gets an EC P-256 key of its own and a DPoP proof
  goes with the token request (RFC 9449); an answer with ``token_type`` ``DPoP`` is a
  key-bound credential (``PROOF_KEY``), ``Bearer`` a bearer one: the server did not bind
  it, and the probe says so rather than pretend;
- a revocation endpoint (RFC 7009): ``LIFECYCLE``; completing a credential and revoking
  it are the same request there;
- ``other_audience``: ``OTHER_AUDIENCE`` (a token of the same issuer for that resource);
- ``exchange`` (RFC 8693 at the token endpoint): ``DELEGATION``; a child asks for the
  parent's scope, a ``wider`` one for it and ``wider_scope`` too;
- a JWKS URI: ``ISSUER_JWKS``;
- ``SHORT_LIVED`` when the tokens the server issues live at most ``short_lived_within``
  seconds (``expires_in``, learnt from a first grant): a client cannot choose a token's
  lifetime, so ``issue(ttl=...)`` is ignored and a scenario reads the token's ``exp``.

The issuer's signing key is never held (no ``ISSUER_KEY``). Nothing here logs or
reports a secret: the client secret and the subject token are kept out of ``repr``, and
an issuer's refusal carries its ``error`` code and description only.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.probe.credentials import Credential, IssuerRefused, NotOffered, read_secret_file
from zerolane.probe.model import Need
from zerolane.tokens.rfc9449 import PrivateKey, make_proof

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105  (a URN)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105  (a URN)
#: the scope a wider delegation asks for besides its parent's (no parent holds it)
WIDER_SCOPE = "zerolane-probe-wider"
#: tokens living at most this long (seconds) are short-lived enough to watch expire: the
#: expiry scenario waits at most 10 s, for the token's exp and 5 s of leeway besides
#: (``zerolane.probe.scenarios.tokens``: ``MAX_WAIT``, ``EXPIRY_LEEWAY``)
SHORT_LIVED_WITHIN = 4
#: characters of an issuer's error description kept in a refusal
_REASON_CHARS = 200
#: bytes of an issuer's answer read at most (metadata, JWKS, token responses)
_MAX_ANSWER = 256 * 1024

AuthMethod = Literal["client_secret_basic", "client_secret_post"]


@dataclass(frozen=True)
class _Answer:
    """An answer of the issuer, read whole (at most ``_MAX_ANSWER`` bytes)."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True)
class Grant:
    """What the source remembers of a credential it issued (the ``handle``)."""

    scope: str | None
    audience: str | None
    expires_in: int | None
    token_type: str


@dataclass(frozen=True)
class ClientSecret:
    """A confidential client's id and secret, sent as ``method`` says (RFC 6749 2.3.1)."""

    client_id: str
    secret: str = field(repr=False)
    method: AuthMethod = "client_secret_basic"

    def __post_init__(self) -> None:
        if not self.client_id or not self.secret:
            raise ValueError("a client has an id and a secret")
        if self.method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError(f"unknown client authentication method: {self.method!r}")


class _OAuthSource:
    """What both sources share: the token endpoint, DPoP, revocation, exchange, JWKS."""

    kind = "oauth"

    def __init__(
        self,
        token_endpoint: str | None = None,
        *,
        client: ClientSecret | None = None,
        issuer: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        other_audience: str | None = None,
        audience_parameter: Literal["resource", "audience"] = "resource",
        dpop: bool = True,
        revocation_endpoint: str | None = None,
        jwks_uri: str | None = None,
        exchange: bool = False,
        wider_scope: str = WIDER_SCOPE,
        short_lived_within: int = SHORT_LIVED_WITHIN,
        timeout: float = 10.0,
        verify: bool | str = True,
        http: httpx.Client | None = None,
    ) -> None:
        if token_endpoint is None and issuer is None:
            raise ValueError("a token endpoint, or an issuer to discover it from")
        for name, url in (
            ("token_endpoint", token_endpoint),
            ("issuer", issuer),
            ("revocation_endpoint", revocation_endpoint),
            ("jwks_uri", jwks_uri),
        ):
            if url is not None:
                _check_url(name, url)
        self._token_endpoint = token_endpoint
        self._client = client
        self._issuer = issuer
        self._scope = scope
        self._resource = resource
        self._other_audience = other_audience
        self._audience_parameter = audience_parameter
        self._dpop = dpop
        self._revocation_endpoint = revocation_endpoint
        self._jwks_uri = jwks_uri
        self._exchange = exchange
        self._wider_scope = wider_scope
        self._short_lived_within = short_lived_within
        self._http = http or httpx.Client(
            timeout=timeout, verify=verify, follow_redirects=False, trust_env=False
        )
        self._metadata: dict[str, Any] | None = None
        self._expires_in: int | None = None
        self._observed = False
        self._spare: Credential | None = None
        self._open: list[Credential] = []

    def __repr__(self) -> str:
        shown = self._token_endpoint or self._issuer
        return f"{type(self).__name__}({shown!r}, client={self._client!r})"

    # what the server offers

    def _discovered(self, member: str) -> str | None:
        """``member`` of the issuer's RFC 8414 metadata, or its OpenID Connect
        configuration when the server has no RFC 8414 document (404): fetched once, None
        without an issuer. The document must name the configured issuer (RFC 8414 3.3,
        OpenID Connect Discovery 4.3)."""
        if self._issuer is None:
            return None
        if self._metadata is None:
            url = _well_known(self._issuer)
            try:
                metadata = self._json("GET", url, what="the issuer's metadata")
            except IssuerRefused as refused:
                if refused.status != 404:
                    raise
                # no RFC 8414 document: OpenID Connect Discovery 1.0 section 4
                url = _openid_configuration(self._issuer)
                metadata = self._json("GET", url, what="the issuer's OpenID configuration")
            if metadata.get("issuer") != self._issuer:
                raise IssuerRefused(None, "the metadata names another issuer", url=url)
            self._metadata = metadata
        value = self._metadata.get(member)
        if value is None:
            return None
        if not isinstance(value, str):
            raise IssuerRefused(None, f"the metadata's {member} is not a URL", url=self._issuer)
        _check_url(member, value)
        return value

    @property
    def token_endpoint(self) -> str:
        endpoint = self._token_endpoint or self._discovered("token_endpoint")
        if endpoint is None:
            raise IssuerRefused(None, "the issuer names no token endpoint", url=self._issuer or "")
        return endpoint

    @property
    def revocation_endpoint(self) -> str | None:
        return self._revocation_endpoint or self._discovered("revocation_endpoint")

    @property
    def jwks_uri(self) -> str | None:
        return self._jwks_uri or self._discovered("jwks_uri")

    @property
    def meets(self) -> frozenset[Need]:
        """What the source can do. The first call may ask the issuer (its metadata, one
        grant to learn ``expires_in``): :class:`IssuerRefused` if it says no."""
        met = {Need.SECOND_CREDENTIAL}
        if self.revocation_endpoint is not None:
            met.add(Need.LIFECYCLE)
        if self.jwks_uri is not None:
            met.add(Need.ISSUER_JWKS)
        if self._other_audience is not None:
            met.add(Need.OTHER_AUDIENCE)
        if self._exchange:
            met.add(Need.DELEGATION)
        if not self._observed:
            self._spare = self.issue()
        if self._expires_in is not None and self._expires_in <= self._short_lived_within:
            met.add(Need.SHORT_LIVED)
        return frozenset(met)

    # the port

    def issue(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        """A new grant. ``ttl`` is not the client's to choose (ignored); ``audience``
        asks for a token for another resource: ``other_audience`` when one is
        configured (the resource the issuer is known to serve besides the target),
        else the audience as given."""
        if self._spare is not None and audience is None:
            spare, self._spare = self._spare, None
            return spare
        resource = self._resource
        if audience is not None:
            resource = self._other_audience or audience
        return self._issue(resource)

    def _issue(self, resource: str | None) -> Credential:
        raise NotOffered("this source issues nothing by itself")  # pragma: no cover

    def complete(self, credential: Credential) -> None:
        """Completing a credential is revoking it (RFC 7009): nothing else ends a grant."""
        self.revoke(credential)

    def revoke(self, credential: Credential) -> None:
        endpoint = self.revocation_endpoint
        if endpoint is None:
            raise NotOffered("no revocation endpoint is known")
        form = {"token": credential.token, "token_type_hint": "access_token"}
        response = self._post(endpoint, form, proof=None)
        if response.status_code != 200:
            raise _refused(response, endpoint)
        if credential in self._open:
            self._open.remove(credential)

    def delegate(self, credential: Credential, *, wider: bool) -> Credential:
        """A token exchange (RFC 8693) of ``credential``: the parent's scope, or with
        ``wider`` the parent's and :data:`WIDER_SCOPE` (refused by a sound issuer)."""
        if not self._exchange:
            raise NotOffered("the token endpoint is not known to exchange tokens")
        grant: Grant | None = credential.handle if isinstance(credential.handle, Grant) else None
        scope = grant.scope if grant is not None else self._scope
        if wider:
            scope = " ".join(filter(None, (scope, self._wider_scope)))
        return self._exchanged(
            credential.token,
            ACCESS_TOKEN_TYPE,
            scope=scope,
            resource=grant.audience if grant is not None else self._resource,
        )

    def sign(self, claims: Mapping[str, Any]) -> str:
        raise NotOffered("the probe does not hold the authorization server's key")

    def issuer_jwks(self) -> list[dict[str, Any]]:
        uri = self.jwks_uri
        if uri is None:
            raise NotOffered("no JWKS URI is known")
        keys = self._json("GET", uri, what="the issuer's JWKS").get("keys")
        if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
            raise IssuerRefused(None, "the JWKS holds no list of keys", url=uri)
        return [dict(key) for key in keys]

    def close(self) -> None:
        """Revoke every credential still open (when a revocation endpoint is known),
        then close the HTTP client."""
        endpoint = self._revocation_endpoint or (self._metadata or {}).get("revocation_endpoint")
        for credential in list(self._open):
            if endpoint is not None:
                try:
                    self.revoke(credential)
                except (IssuerRefused, NotOffered):
                    continue
        self._open.clear()
        self._spare = None
        self._http.close()

    def secrets(self) -> tuple[str, ...]:
        """What the source holds that must never be shown (for the wire to mask): the
        client's secret, and the ``id:secret`` pair HTTP Basic authentication encodes
        (as sent, RFC 6749 2.3.1, and as is), whose base64 is not the secret's."""
        if self._client is None:
            return ()
        client_id, secret = self._client.client_id, self._client.secret
        held = (secret, _basic_pair(client_id, secret), f"{client_id}:{secret}")
        return tuple(dict.fromkeys(held))

    # the token endpoint

    def _exchanged(
        self,
        subject: str,
        subject_type: str,
        *,
        scope: str | None,
        resource: str | None,
    ) -> Credential:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject,
            "subject_token_type": subject_type,
            "requested_token_type": ACCESS_TOKEN_TYPE,
        }
        return self._granted(form, scope=scope, resource=resource)

    def _granted(
        self, form: dict[str, str], *, scope: str | None, resource: str | None
    ) -> Credential:
        """Ask the token endpoint for a token (``form`` and the scope and resource); a
        DPoP-bound credential when the server binds it to the key the proof showed."""
        if scope:
            form["scope"] = scope
        if resource:
            form[self._audience_parameter] = resource
        key: PrivateKey | None = ec.generate_private_key(ec.SECP256R1()) if self._dpop else None
        endpoint = self.token_endpoint
        response = self._post(endpoint, form, proof=key)
        answer = _answer(response, endpoint, "token response")
        token = answer.get("access_token")
        kind = answer.get("token_type")
        if not isinstance(token, str) or not token or not isinstance(kind, str):
            raise IssuerRefused(response.status_code, "the answer holds no token", url=endpoint)
        if kind.lower() not in ("dpop", "bearer"):
            raise IssuerRefused(response.status_code, f"token type {kind!r}", url=endpoint)
        bound = kind.lower() == "dpop"
        if bound and key is None:
            raise IssuerRefused(response.status_code, "a DPoP token, unasked", url=endpoint)
        expires_in = answer.get("expires_in")
        lifetime = expires_in if isinstance(expires_in, int) and expires_in > 0 else None
        granted = answer.get("scope")
        grant = Grant(
            scope=granted if isinstance(granted, str) else scope,
            audience=resource,
            expires_in=lifetime,
            token_type=kind,
        )
        if not self._observed:
            self._observed = True
            self._expires_in = lifetime
        credential = Credential(token, key if bound else None, handle=grant)
        self._open.append(credential)
        return credential

    def _post(self, url: str, form: dict[str, str], *, proof: PrivateKey | None) -> _Answer:
        """POST ``form`` with the client's authentication and, with a key, a DPoP
        proof (once more with the server's nonce when it asks for one: RFC 9449 8)."""
        headers: dict[str, str] = {"Accept": "application/json"}
        body = dict(form)
        if self._client is not None:
            if self._client.method == "client_secret_basic":
                pair = _basic_pair(self._client.client_id, self._client.secret)
                encoded = base64.b64encode(pair.encode()).decode("ascii")
                headers["Authorization"] = f"Basic {encoded}"
            else:
                body["client_id"] = self._client.client_id
                body["client_secret"] = self._client.secret
        if proof is not None:
            headers["DPoP"] = make_proof(proof, method="POST", url=url)
        response = self._send("POST", url, headers, body)
        nonce = response.headers.get("DPoP-Nonce")
        if proof is not None and nonce and _error_code(response) == "use_dpop_nonce":
            headers["DPoP"] = make_proof(proof, method="POST", url=url, nonce=nonce)
            response = self._send("POST", url, headers, body)
        return response

    def _json(self, method: str, url: str, *, what: str) -> dict[str, Any]:
        response = self._send(method, url, {"Accept": "application/json"}, None)
        return _answer(response, url, what)

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], form: Mapping[str, str] | None
    ) -> _Answer:
        """One request; the answer read up to ``_MAX_ANSWER`` bytes (more: refused)."""
        try:
            with self._http.stream(method, url, headers=headers, data=form) as response:
                content = bytearray()
                for chunk in response.iter_bytes():
                    content += chunk
                    if len(content) > _MAX_ANSWER:
                        raise IssuerRefused(
                            response.status_code, "the answer is too large", url=url
                        )
                return _Answer(response.status_code, response.headers, bytes(content))
        except httpx.HTTPError as error:
            raise IssuerRefused(
                None, f"the issuer did not answer ({type(error).__name__})", url=url
            ) from None


class ClientCredentials(_OAuthSource):
    """Tokens from a client-credentials grant (RFC 6749 4.4) of a confidential client:
    one grant per credential, for ``scope`` and ``resource`` (RFC 8707, or the
    ``audience`` parameter some servers use instead)."""

    kind = "client_credentials"

    def __init__(
        self,
        token_endpoint: str | None = None,
        *,
        client: ClientSecret,
        **options: Any,
    ) -> None:
        super().__init__(token_endpoint, client=client, **options)

    def _issue(self, resource: str | None) -> Credential:
        return self._granted(
            {"grant_type": "client_credentials"}, scope=self._scope, resource=resource
        )


class TokenExchange(_OAuthSource):
    """Tokens exchanged (RFC 8693) for a token the probe is given (a workload's
    service-account token, an upstream identity provider's): read from ``subject_token``,
    the file ``subject_token_file`` (read anew for every grant: projected tokens rotate)
    or the environment variable ``subject_token_env``. The client's authentication is
    optional (some servers take the subject token alone). Delegation is a further
    exchange of an exchanged token."""

    kind = "token_exchange"

    def __init__(
        self,
        token_endpoint: str | None = None,
        *,
        subject_token: str | None = None,
        subject_token_file: Path | str | None = None,
        subject_token_env: str | None = None,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        client: ClientSecret | None = None,
        **options: Any,
    ) -> None:
        given = [x for x in (subject_token, subject_token_file, subject_token_env) if x]
        if len(given) != 1:
            raise ValueError("one subject token: given, from a file, or from the environment")
        options.setdefault("exchange", True)
        super().__init__(token_endpoint, client=client, **options)
        self._subject_token = subject_token
        self._subject_file = Path(subject_token_file) if subject_token_file else None
        self._subject_env = subject_token_env
        self._subject_type = subject_token_type

    def subject(self) -> str:
        """The subject token, read now."""
        if self._subject_file is not None:
            try:
                token = read_secret_file(self._subject_file)
            except (OSError, UnicodeDecodeError) as error:
                why = getattr(error, "strerror", None) or type(error).__name__
                raise IssuerRefused(
                    None, f"the subject token file cannot be read ({why})"
                ) from None
        elif self._subject_env is not None:
            token = os.environ.get(self._subject_env, "").strip()
        else:
            token = (self._subject_token or "").strip()
        if not token:
            raise IssuerRefused(None, "the subject token is empty")
        return token

    def _issue(self, resource: str | None) -> Credential:
        return self._exchanged(
            self.subject(), self._subject_type, scope=self._scope, resource=resource
        )

    def secrets(self) -> tuple[str, ...]:
        try:
            return (*super().secrets(), self.subject())
        except IssuerRefused:  # nothing to read: nothing to hide
            return super().secrets()


# helpers


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ValueError(f"{name} is an http(s) URL without a fragment: {url!r}")


def _basic_pair(client_id: str, secret: str) -> str:
    """``id:secret`` as HTTP Basic carries a client's credentials (RFC 6749 2.3.1: each
    form-urlencoded first)."""
    return f"{quote(client_id, safe='')}:{quote(secret, safe='')}"


def _well_known(issuer: str) -> str:
    """The RFC 8414 metadata URL of ``issuer`` (the well-known part before its path)."""
    parts = urlsplit(issuer)
    path = "/.well-known/oauth-authorization-server" + parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _openid_configuration(issuer: str) -> str:
    """The OpenID Connect Discovery URL of ``issuer`` (appended to its path)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def _error_code(response: _Answer) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _refused(response: _Answer, url: str) -> IssuerRefused:
    """The issuer's refusal: its ``error`` and ``error_description`` (RFC 6749 5.2)."""
    reason = f"status {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        reason = body["error"]
        description = body.get("error_description")
        if isinstance(description, str) and description:
            reason = f"{reason}: {description}"
    return IssuerRefused(response.status_code, reason[:_REASON_CHARS], url=url)


def _answer(response: _Answer, url: str, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise _refused(response, url)
    try:
        body = response.json()
    except ValueError:
        raise IssuerRefused(response.status_code, f"{what} is not JSON", url=url) from None
    if not isinstance(body, dict):
        raise IssuerRefused(response.status_code, f"{what} is not an object", url=url)
    return body
