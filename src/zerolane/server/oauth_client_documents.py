"""OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
recommended by the MCP authorization spec 2025-11-25): a client whose ``client_id`` is
an ``https`` URL publishes its metadata there, and is known without registering.

The URL is checked before anything is fetched (:func:`check_url`): ``https``, no
userinfo, no fragment, a path other than ``/`` without ``.`` or ``..`` segments, at
most :data:`MAX_URL` printable ASCII characters, not on this server's own origin, and a
host that is a name or a global IP address. Then (:func:`fetch`) the name is resolved
once and every address it has must be global unicast (RFC 6890 special-use addresses:
private, loopback, link-local, shared, documentation, multicast, reserved, and IPv6
forms carrying such an IPv4 address, are refused); the request goes to that address
(the TLS name checked is still the URL's host), with no redirects followed, no proxy
from the environment, a :data:`TIMEOUT` for each step and :data:`DEADLINE` for the
whole read, at most :data:`MAX_DOCUMENT` bytes read, and at most :data:`MAX_FETCHES`
fetches at once (more are refused at once, so slow sites cannot hold every worker).
Only a development server whose own issuer is on loopback may allow
loopback addresses (``[oauth] client_metadata_loopback``), and then plain ``http``
to them too.

The document (:func:`client_of`) must be a JSON object whose ``client_id`` is the URL
exactly, with ``redirect_uris`` (checked as for registration: ``https``, or ``http`` on
loopback), no ``client_secret``, no private key, and ``token_endpoint_auth_method``
``none`` (or absent): ``private_key_jwt`` is not supported here and methods built on a
shared secret are refused by the draft. The client acts as the workload
``spiffe://<td>/mcp-clients/url/<host>[_<port>]/<hash>`` (the hash: the URL's SHA-256,
32 hex digits), so a playbook admits such clients only by a pattern naming them
(``mcp-clients/url/app.example.com/*``, ``mcp-clients/**``), never by the
``mcp-clients/*`` that admits registered ones.

A document is kept (:class:`ClientDocuments`) for its ``Cache-Control: max-age``,
at least :data:`MIN_TTL` seconds and at most ``[oauth] client_metadata_max_age``
(:data:`DEFAULT_TTL` without one); a refusal is never kept. Every refusal is a
:class:`ClientDocumentError` (``invalid_client``, a reason id, a description).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

import httpx

from zerolane.hosts import is_loopback
from zerolane.server.oauth_clients import CLIENTS_PATH, RegistrationError, check_metadata
from zerolane.server.oauth_state import Client

MAX_URL = 2000
#: what the draft recommends reading at most
MAX_DOCUMENT = 5 * 1024
TIMEOUT = 5.0
#: the whole read, however slowly the site sends it (plus one TIMEOUT at most)
DEADLINE = 10.0
#: of a name's addresses, how many are tried in turn
MAX_ADDRESSES = 2
#: documents fetched at once, at most: more wait for none (refused, busy)
MAX_FETCHES = 8
MIN_TTL = 60
DEFAULT_TTL = 300
MAX_DOCUMENTS = 1000
#: where a client identifier URL's workload lives, below ``mcp-clients``
URL_CLIENTS = "url"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_STORE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|=|$)", re.IGNORECASE)
#: members of a JWK that only a private (or symmetric) key has
_PRIVATE_JWK = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_SHARED_SECRET_METHODS = frozenset(
    {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
)


class ClientDocumentError(Exception):
    """A client identifier URL or its document refused: an RFC 6749 ``error``, the
    audit ``reason`` and a ``description`` for the person or the client."""

    def __init__(self, reason: str, description: str, error: str = "invalid_client") -> None:
        super().__init__(description)
        self.error, self.reason, self.description = error, reason, description


def is_client_id_url(client_id: str) -> bool:
    """Whether ``client_id`` names a metadata document (registered ids never do: they
    are letters, digits, ``-`` and ``_``)."""
    return "://" in client_id


def _refuse(reason: str, description: str) -> ClientDocumentError:
    return ClientDocumentError(f"oauth.client_metadata_{reason}", description)


def _address_allowed(address: str, *, loopback: bool) -> bool:
    """Whether ``address`` may be fetched from: global unicast, or loopback where
    allowed (RFC 6890 special-use addresses are not)."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return _address_allowed(str(embedded), loopback=loopback)
    if ip.is_loopback:
        return loopback
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _TRANSLATED):
        return False  # an IPv4 address by another name (NAT64, SIIT, compatible) or site-local
    return ip.is_global and not ip.is_multicast


#: IPv6 prefixes that reach IPv4 addresses through a translator, or are deprecated and
#: were never global: refused whatever IPv4 address they carry
_TRANSLATED = tuple(
    ipaddress.IPv6Network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96", "fec0::/10")
)


def check_url(url: str, *, issuer: str, loopback: bool) -> SplitResult:
    """The parts of a client identifier URL that may be fetched (nothing is asked of
    the network here); :class:`ClientDocumentError` otherwise."""
    if len(url) > MAX_URL or not url.isascii() or not url.isprintable() or " " in url:
        raise _refuse("url", f"a client_id URL is at most {MAX_URL} printable ASCII characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises for a malformed port)
    except ValueError:
        raise _refuse("url", "the client_id URL is malformed") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and is_loopback(host)):
        raise _refuse("url", "a client_id URL uses https")
    if "@" in parts.netloc or "#" in url or not host:
        raise _refuse("url", "a client_id URL has a host, and no userinfo or fragment")
    if parts.path in ("", "/"):
        raise _refuse("url", "a client_id URL has a path (the document's, not /)")
    if any(unquote(seg) in (".", "..") for seg in parts.path.split("/")):
        raise _refuse("url", "a client_id URL has no . or .. path segments")
    own = urlsplit(issuer)
    if (parts.scheme, parts.netloc.lower()) == (own.scheme, own.netloc.lower()):
        raise _refuse("url", "a client_id URL is not on this server")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    named = host if literal is not None else "127.0.0.1" if host == "localhost" else None
    if named is not None and not _address_allowed(named, loopback=loopback):
        raise _refuse("address", "the client_id URL names a special-use address")
    return parts


@dataclass(frozen=True, slots=True)
class Fetched:
    """A document as served: its body and how long it may be kept (None: not said)."""

    body: bytes
    max_age: int | None


#: resolves a host and port to addresses (``socket.getaddrinfo`` by default)
Resolve = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def _max_age(cache_control: str) -> int | None:
    if _NO_STORE.search(cache_control):
        return 0
    found = _MAX_AGE.search(cache_control)
    return int(found.group(1)) if found else None


def _get(url: str, parts: SplitResult, verify: ssl.SSLContext | bool, deadline: float) -> Fetched:
    host = parts.hostname or ""
    with (
        httpx.Client(
            timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=verify
        ) as http,
        http.stream(
            "GET",
            url,
            # no compression: the size cap counts the bytes as they arrive
            headers={
                "Host": parts.netloc,
                "Accept": "application/json",
                "Accept-Encoding": "identity",
            },
            extensions={"sni_hostname": host},
        ) as response,
    ):
        if response.status_code != 200:
            raise _refuse(
                "status",
                f"the client's metadata document answered HTTP {response.status_code}"
                + (" (redirects are not followed)" if response.is_redirect else ""),
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _refuse("encoding", "the client's metadata document came compressed")
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > MAX_DOCUMENT:
                raise _refuse(
                    "size", f"the client's metadata document is over {MAX_DOCUMENT} bytes"
                )
            if time.monotonic() > deadline:
                raise _refuse("fetch", "the client's metadata document came too slowly")
        return Fetched(bytes(body), _max_age(response.headers.get("cache-control", "")))


def fetch(
    parts: SplitResult,
    *,
    loopback: bool,
    verify: ssl.SSLContext | bool = True,
    resolver: Resolve = resolve,
) -> Fetched:
    """GET the document at ``parts`` from an address checked before connecting (the
    next one if it cannot be reached, at most :data:`MAX_ADDRESSES`), within
    :data:`DEADLINE` seconds of reading."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise _refuse("fetch", "the client_id URL's host does not resolve")
    if not all(_address_allowed(a, loopback=loopback) for a in addresses):
        raise _refuse("address", "the client_id URL's host has a special-use address")
    deadline = time.monotonic() + DEADLINE
    for address in addresses[:MAX_ADDRESSES]:
        literal = f"[{address}]" if ":" in address else address
        pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
        try:
            return _get(pinned, parts, verify, deadline)
        except httpx.ConnectError:
            continue  # not listening there: the name's next address
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError):
            break
    raise _refuse("fetch", "the client's metadata document could not be fetched")


def _segment(parts: SplitResult) -> str:
    """The URL's host (and port) as one SPIFFE ID path segment."""
    host = (parts.hostname or "").lower().replace(":", "-")
    return f"{host}_{parts.port}" if parts.port is not None else host


def _no_private_keys(doc: Mapping[str, object]) -> None:
    jwks = doc.get("jwks")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for key in keys if isinstance(keys, list) else []:
        if isinstance(key, dict) and _PRIVATE_JWK & set(key):
            raise _refuse("document", "the client's metadata document holds a private key")


def client_of(
    url: str, parts: SplitResult, body: bytes, *, trust_domain: str, now: float
) -> Client:
    """The client a fetched document describes; :class:`ClientDocumentError`."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise _refuse("document", "the client's metadata document is not a JSON object")
    if doc.get("client_id") != url:
        raise _refuse("document", "the document's client_id is not its URL, exactly")
    method = doc.get("token_endpoint_auth_method", "none")
    if method in _SHARED_SECRET_METHODS or "client_secret" in doc:
        raise _refuse("document", "a metadata document has no client secret (none is shared)")
    if "client_secret_expires_at" in doc:
        raise _refuse("document", "a metadata document has no client secret (none is shared)")
    if method != "none":
        raise _refuse("document", "public clients only here: token_endpoint_auth_method none")
    _no_private_keys(doc)
    try:
        redirect_uris, grants, name = check_metadata(doc)
    except RegistrationError as err:
        raise _refuse("document", f"the client's metadata document: {err.description}") from None
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    return Client(
        client_id=url,
        client_name=name,
        redirect_uris=redirect_uris,
        grant_types=grants,
        issued_at=int(now),
        spiffe_id=f"spiffe://{trust_domain}/{CLIENTS_PATH}/{URL_CLIENTS}/{_segment(parts)}/{digest}",
    )


class ClientDocuments:
    """The clients of client identifier URLs, fetched when first needed and kept for
    their cache lifetime (bounded; the oldest go first)."""

    def __init__(
        self,
        *,
        trust_domain: str,
        issuer: str,
        max_age: int,
        loopback: bool = False,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._trust_domain = trust_domain
        self._issuer = issuer
        self._max_age = max_age
        self.loopback = loopback
        self.verify = verify
        self._lock = threading.Lock()
        self._fetching = threading.BoundedSemaphore(MAX_FETCHES)
        self._kept: OrderedDict[str, tuple[Client, float]] = OrderedDict()

    def _fetch(self, parts: SplitResult) -> Fetched:
        if not self._fetching.acquire(blocking=False):
            raise _refuse("busy", "too many client metadata documents are being fetched: retry")
        try:
            return fetch(parts, loopback=self.loopback, verify=self.verify)
        finally:
            self._fetching.release()

    def cached(self, url: str, now: float) -> Client | None:
        with self._lock:
            found = self._kept.get(url)
            if found is None or found[1] <= now:
                self._kept.pop(url, None)
                return None
            return found[0]

    def client(self, url: str, now: float) -> tuple[Client, bool]:
        """The client of ``url`` and whether it was fetched just now (else it was
        kept); :class:`ClientDocumentError` for a URL or document refused."""
        kept = self.cached(url, now)
        if kept is not None:
            return kept, False
        parts = check_url(url, issuer=self._issuer, loopback=self.loopback)
        fetched = self._fetch(parts)
        client = client_of(url, parts, fetched.body, trust_domain=self._trust_domain, now=now)
        ttl = DEFAULT_TTL if fetched.max_age is None else fetched.max_age
        ttl = min(max(ttl, MIN_TTL), self._max_age)
        with self._lock:
            self._kept[url] = (client, now + ttl)
            self._kept.move_to_end(url)
            while len(self._kept) > MAX_DOCUMENTS:
                self._kept.popitem(last=False)
        return client, True
