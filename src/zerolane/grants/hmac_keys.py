"""Per-task API keys: ``zlk_<task id>.<exp>.<b64url(HMAC-SHA256(key, "<task id>|<exp>"))>``.

The gateway gives one to each allowed request; the upstream checks it with
:func:`verify_api_key` and the shared key, and learns which task is calling and until
when the key holds. A key expires with its task (or sooner, after ``ttl`` seconds).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
from pathlib import Path

from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.grants.base import read_private_file, render_format
from zerolane.grants.broker import GrantSecret, GrantTemplate
from zerolane.store.records import TaskRecord
from zerolane.tokens.rfc7638 import b64url
from zerolane.types import Clock, SystemClock

PREFIX = "zlk_"
MIN_KEY_BYTES = 32
DEFAULT_TTL = 300
#: how many minted keys :class:`HmacKeys` keeps to hand out again (the least recently
#: used goes first): a few per busy task
KEPT_KEYS = 4096
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")


def _mac(key: bytes, task_id: str, exp: int) -> bytes:
    return hmac.new(key, f"{task_id}|{exp}".encode("ascii"), hashlib.sha256).digest()


def _check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise InvalidInput("grant.key_short", f"an HMAC key has at least {MIN_KEY_BYTES} bytes")
    return key


def mint_api_key(key: bytes, task_id: str, exp: int) -> str:
    """The API key for ``task_id`` valid until ``exp`` (epoch seconds)."""
    if not _TASK_ID.fullmatch(task_id):
        raise InvalidInput("grant.task_id", "a task id is 1..128 of [A-Za-z0-9_-]")
    return f"{PREFIX}{task_id}.{exp}.{b64url(_mac(_check_key(key), task_id, exp))}"


def verify_api_key(key_material: bytes, presented: str, now: float) -> str:
    """The task id of a valid, unexpired ``presented`` key; else :class:`Unauthenticated`
    (``api_key.malformed``, ``api_key.signature``, ``api_key.expired``)."""
    key = _check_key(key_material)
    body = presented[len(PREFIX) :] if presented.startswith(PREFIX) else ""
    task_id, _, rest = body.partition(".")
    exp_text, _, signature = rest.partition(".")
    if not (
        _TASK_ID.fullmatch(task_id)
        and exp_text.isascii()
        and exp_text.isdigit()
        and len(exp_text) <= 12
        and _SIGNATURE.fullmatch(signature)
    ):
        raise Unauthenticated("api_key.malformed", "not a zerolane API key")
    exp = int(exp_text)
    expected = b64url(_mac(key, task_id, exp))  # canonical: no second spelling of one MAC
    if not hmac.compare_digest(signature.encode("ascii"), expected.encode("ascii")):
        raise Unauthenticated("api_key.signature", "the API key was not minted with this key")
    if now >= exp:
        raise Unauthenticated("api_key.expired", "the API key has expired")
    return task_id


class HmacKeys:
    """Injects a per-task key into ``header`` for every allowed request.

    A request's key is a function of its task and ``exp`` alone, and ``exp`` counts
    whole seconds, so the requests of one task within a second (or, once the task ends
    before ``now + ttl``, until it ends) get the same key: it is minted once and kept,
    not recomputed per request. A kept key is byte for byte the key minting would give
    now (a cache, not a longer life), and an expired one is never kept.
    """

    def __init__(
        self,
        key: bytes,
        *,
        header: str = "X-Api-Key",
        fmt: str = "{secret}",
        ttl: int = DEFAULT_TTL,
        clock: Clock | None = None,
    ) -> None:
        if ttl <= 0:
            raise InvalidInput("grant.ttl", "an HMAC key ttl is a positive number of seconds")
        render_format(fmt, "x")  # refuses a malformed format at startup
        self._key = _check_key(key)
        self.header = header
        self._fmt = fmt
        self._ttl = ttl
        self._clock = clock or SystemClock()
        self._kept = functools.lru_cache(maxsize=KEPT_KEYS)(self._render)

    def _render(self, task_id: str, exp: int) -> str:
        return render_format(self._fmt, mint_api_key(self._key, task_id, exp))

    def header_for(self, task_id: str, expires_at: float) -> tuple[str, str]:
        now = math.floor(self._clock.now())
        exp = min(math.floor(expires_at), now + self._ttl)
        if exp <= now:  # expired already (the token's exp is unknown or past): not kept
            return self.header, self._render(task_id, exp)
        return self.header, self._kept(task_id, exp)

    def __repr__(self) -> str:  # never show the key
        return f"HmacKeys(header={self.header!r}, ttl={self._ttl})"

    @classmethod
    def from_file(
        cls, path: Path, *, header: str, fmt: str, ttl: int, clock: Clock | None = None
    ) -> HmacKeys:
        """The key in ``path`` (mode 0600 or refused; at least 32 bytes)."""
        return cls(read_private_file(path), header=header, fmt=fmt, ttl=ttl, clock=clock)


class HmacKeyBroker:
    """A grant broker handing a task its own API key, valid until the task ends or
    ``ttl`` seconds pass, whichever is first.

    The keys are stateless (checked with the shared key), so :meth:`revoke` cannot
    recall one: it stops verifying at its ``exp``. Keep ``ttl`` short, or let the
    gateway inject a fresh key per allowed request (:class:`HmacKeys`) instead.
    """

    name = "hmac"
    legacy = False

    def __init__(self, key: bytes, *, ttl: int = DEFAULT_TTL, clock: Clock | None = None) -> None:
        if ttl <= 0:
            raise InvalidInput("grant.ttl", "an HMAC key ttl is a positive number of seconds")
        self._key = _check_key(key)
        self._ttl = ttl
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:  # never show the key
        return f"HmacKeyBroker(ttl={self._ttl})"

    def new_handle(self, task: TaskRecord) -> str:
        return f"{PREFIX}{task.task_id}"  # the key's public part: which task it names

    def issue(
        self, handle: str, task: TaskRecord, template: GrantTemplate, expires_at: float
    ) -> GrantSecret:
        ttl = min(template.ttl or self._ttl, self._ttl)
        exp = min(math.floor(expires_at), math.floor(self._clock.now()) + ttl)
        return GrantSecret(
            {"api_key": mint_api_key(self._key, task.task_id, exp), "expires_at": str(exp)}
        )

    def revoke(self, handle: str) -> None:
        return None  # stateless: the key lapses at its exp (at most ttl seconds)
