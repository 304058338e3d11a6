"""Failed sign-ins on the consent page, limited per username and per client address.

Each failure (a wrong username or password, a refused sign-in through an OpenID
provider) counts against the address it came from and, for a password, against the
username typed, whether or not anyone has that name: a refusal reads the same for a
person who exists and one who does not. Past ``per_user`` failures for a username, or
``per_address`` for an address, each further failure locks that key for ``backoff``
seconds, doubled each time up to :data:`MAX_LOCK` (exponential backoff); while a key is
locked, attempts are refused at once (429, ``Retry-After``, reason
``oauth.sign_in_throttled``) without checking the password, and are not counted, so
hammering a locked key does not lengthen its lock. A key whose last failure is older
than :data:`WINDOW` and whose lock is over starts again from nothing, and a successful
sign-in clears its username and address: the person whose name was attacked signs in
once the lock is over.

Usernames are kept only as their SHA-256 (a password typed in the wrong field is not
kept in clear), in this process's memory like the rest of the OAuth state: bounded (the
oldest keys go first), reset by a restart, per control-plane replica. Concurrent
attempts on one key may each be checked before any of them fails, so a burst of up to
the server's worker count can pass a lock's start: scrypt's cost bounds that burst.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

#: the longest a key is locked after one failure
MAX_LOCK = 900.0
#: a key forgets its failures this long after the last one (once its lock is over)
WINDOW = 900.0
MAX_KEYS = 10_000
REASON = "oauth.sign_in_throttled"


@dataclass(slots=True)
class _Failures:
    count: int
    last: float
    locked_until: float


class _Keys:
    """Failures by key, the oldest forgotten past ``MAX_KEYS``."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._items: OrderedDict[str, _Failures] = OrderedDict()

    def current(self, key: str, now: float) -> _Failures | None:
        found = self._items.get(key)
        if found is not None and now - found.last > WINDOW and now >= found.locked_until:
            del self._items[key]
            return None
        return found

    def fail(self, key: str, now: float, backoff: float) -> None:
        found = self.current(key, now) or _Failures(0, now, 0.0)
        found.count += 1
        found.last = now
        over = found.count - self.threshold
        if over >= 0:
            found.locked_until = now + min(backoff * 2.0 ** min(over, 32), MAX_LOCK)
        self._items[key] = found
        self._items.move_to_end(key)
        while len(self._items) > MAX_KEYS:
            self._items.popitem(last=False)

    def clear(self, key: str) -> None:
        self._items.pop(key, None)


def _user_key(username: str) -> str:
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


class SignInThrottle:
    def __init__(self, *, per_user: int, per_address: int, backoff: float) -> None:
        self._lock = threading.Lock()
        self._users = _Keys(per_user)
        self._addresses = _Keys(per_address)
        self._backoff = backoff

    def retry_after(self, username: str | None, address: str, now: float) -> int:
        """Whole seconds until an attempt by ``username`` (None: not known yet, as
        before an OpenID sign-in) from ``address`` is heard; 0: now."""
        with self._lock:
            found = [self._addresses.current(address, now)]
            if username is not None:
                found.append(self._users.current(_user_key(username), now))
        until = max((f.locked_until for f in found if f is not None), default=0.0)
        return max(0, math.ceil(until - now))

    def failed(self, username: str | None, address: str, now: float) -> None:
        with self._lock:
            self._addresses.fail(address, now, self._backoff)
            if username is not None:
                self._users.fail(_user_key(username), now, self._backoff)

    def succeeded(self, username: str | None, address: str) -> None:
        with self._lock:
            self._addresses.clear(address)
            if username is not None:
                self._users.clear(_user_key(username))
