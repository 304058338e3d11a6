"""What the OAuth authorization server remembers: clients, sign-in pages, codes, refresh
tokens. In this process's memory, on purpose for now (``docs/mcp-gateway.md``):

- a restart forgets every registration, code and refresh token: clients register again
  and the person consents again (tasks and their access tokens are in the store and
  live on until they end);
- with several control-plane replicas, a client must reach the one it registered with.

Codes and refresh tokens are 256-bit random values kept only as their SHA-256 (a dump of
this memory holds nothing usable); a code lives 60 s and is used once; a refresh token
is used once (rotation): the one it is exchanged for replaces it, and presenting a used
one again is reuse (RFC 9700 section 4.14.2): its whole chain dies, and the caller
revokes the task. Every table is bounded; the oldest entries go first.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from zerolane.identity.users import VerifiedUser

CODE_TTL = 60
PAGE_TTL = 600
MAX_CLIENTS = 1000
MAX_PAGES = 1000
MAX_CODES = 1000
MAX_REFRESH = 10_000

_V = TypeVar("_V")


def digest(secret: str) -> str:
    """How a code or refresh token is kept: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    """A registered public client (RFC 7591); it acts as ``spiffe_id``."""

    client_id: str
    client_name: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    issued_at: int
    spiffe_id: str


@dataclass(frozen=True, slots=True)
class Authorization:
    """A checked authorization request: what the sign-in page was shown for."""

    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    resource: str
    expires_at: float
    #: SHA-256 of the page's CSRF token (also its cookie)
    csrf: str


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What a person consented to, redeemable once for the task's token."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    resource: str
    playbook: str
    intent: str
    on_behalf_of: str
    expires_at: float
    #: the person as their OpenID provider proved them (None: the laptop's local user)
    user: VerifiedUser | None = None
    used: bool = False
    #: the task its redemption opened (revoked when the code is presented again)
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class SignIn:
    """A sign-in through an OpenID provider under way, kept by its ``state``'s digest:
    the page it is for, that page's CSRF digest, the ``nonce`` and PKCE verifier."""

    page_id: str
    csrf: str
    issuer: str
    nonce: str
    verifier: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    chain: str
    client_id: str
    task_id: str
    resource: str
    #: the task's binding: the DPoP key's thumbprint, or ``bearer``
    binding: str
    expires_at: float
    used: bool = False


class _Bounded(Generic[_V]):
    """A dict that forgets its oldest entries past ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[str, _V] = OrderedDict()

    def put(self, key: str, value: _V) -> None:
        self._items[key] = value
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def get(self, key: str) -> _V | None:
        return self._items.get(key)

    def pop(self, key: str) -> _V | None:
        return self._items.pop(key, None)

    def items(self) -> list[tuple[str, _V]]:
        return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)


class OAuthState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: _Bounded[Client] = _Bounded(MAX_CLIENTS)
        self._pages: _Bounded[Authorization] = _Bounded(MAX_PAGES)
        self._sign_ins: _Bounded[SignIn] = _Bounded(MAX_PAGES)
        self._signed_in: _Bounded[VerifiedUser] = _Bounded(MAX_PAGES)
        self._codes: _Bounded[CodeGrant] = _Bounded(MAX_CODES)
        self._refresh: _Bounded[RefreshGrant] = _Bounded(MAX_REFRESH)
        self._dead_chains: _Bounded[bool] = _Bounded(MAX_REFRESH)

    # clients
    def add_client(self, client: Client) -> None:
        with self._lock:
            self._clients.put(client.client_id, client)

    def client(self, client_id: str) -> Client | None:
        with self._lock:
            return self._clients.get(client_id)

    # sign-in pages
    def add_page(self, authorization: Authorization) -> str:
        """Remember a checked request; its id goes in the page's form."""
        page_id = secrets.token_urlsafe(24)
        with self._lock:
            self._pages.put(page_id, authorization)
        return page_id

    def page(self, page_id: str, now: float) -> Authorization | None:
        with self._lock:
            found = self._pages.get(page_id)
            if found is not None and found.expires_at <= now:
                self._pages.pop(page_id)
                return None
            return found

    def end_page(self, page_id: str) -> None:
        with self._lock:
            self._pages.pop(page_id)
            self._signed_in.pop(page_id)

    # sign-in through an OpenID provider
    def add_sign_in(self, sign_in: SignIn) -> str:
        """Remember a sign-in started from a page; its ``state`` value."""
        state = secrets.token_urlsafe(32)
        with self._lock:
            self._sign_ins.put(digest(state), sign_in)
        return state

    def take_sign_in(self, state: str, now: float) -> SignIn | None:
        """The sign-in of ``state``, used up (None: unknown, used or expired)."""
        with self._lock:
            found = self._sign_ins.pop(digest(state))
        return found if found is not None and found.expires_at > now else None

    def signed_in(self, page_id: str, user: VerifiedUser) -> None:
        with self._lock:
            if self._pages.get(page_id) is not None:
                self._signed_in.put(page_id, user)

    def page_user(self, page_id: str) -> VerifiedUser | None:
        """Who signed in through an OpenID provider on this page, if anyone did."""
        with self._lock:
            return self._signed_in.get(page_id)

    # codes
    def add_code(self, grant: CodeGrant) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes.put(digest(code), grant)
        return code

    def redeem_code(self, code: str, now: float) -> CodeGrant | None:
        """The grant of ``code``, marked used; a used one comes back with ``used``
        (the caller refuses it and revokes its task); None: unknown or expired."""
        key = digest(code)
        with self._lock:
            grant = self._codes.get(key)
            if grant is None or grant.expires_at <= now:
                return None
            if not grant.used:
                self._codes.put(key, replace(grant, used=True))
            return grant if grant.used else replace(grant, used=False)

    def code_opened(self, code: str, task_id: str) -> None:
        key = digest(code)
        with self._lock:
            grant = self._codes.get(key)
            if grant is not None:
                self._codes.put(key, replace(grant, task_id=task_id))

    def code_task(self, code: str) -> str | None:
        with self._lock:
            grant = self._codes.get(digest(code))
            return grant.task_id if grant is not None else None

    # refresh tokens
    def add_refresh(self, grant: RefreshGrant) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            if not self._dead_chains.get(grant.chain):
                self._refresh.put(digest(token), grant)
        return token

    def refresh_grant(self, token: str, now: float) -> RefreshGrant | None:
        """The grant of ``token`` as it stands, without using it up (None: unknown,
        expired, or its chain is dead)."""
        with self._lock:
            grant = self._refresh.get(digest(token))
            if grant is None or grant.expires_at <= now or self._dead_chains.get(grant.chain):
                return None
            return grant

    def use_refresh(self, token: str, now: float) -> RefreshGrant | None:
        """The grant of ``token``, which is used up by this; one used before comes
        back with ``used`` and its whole chain is dead from now on. None: unknown,
        expired, or its chain is dead."""
        key = digest(token)
        with self._lock:
            grant = self._refresh.get(key)
            if grant is None or grant.expires_at <= now or self._dead_chains.get(grant.chain):
                return None
            if grant.used:
                self._dead_chains.put(grant.chain, True)
                for other, value in self._refresh.items():
                    if value.chain == grant.chain:
                        self._refresh.pop(other)
                return grant
            self._refresh.put(key, replace(grant, used=True))
            return replace(grant, used=False)

    @staticmethod
    def new_chain() -> str:
        return secrets.token_urlsafe(16)
