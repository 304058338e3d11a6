"""Enforcement points: who may ask for a decision (``POST /v1/decide``), and about what.

``/v1/decide`` is an API for enforcement points (a proxy's forward-auth, a tool
runtime's guard), not for agents. Each enforcement point is registered by an admin
with the public URLs it serves and gets a credential (printed once, stored only as its
SHA-256 hash). A decision request must present that credential and name a URL under
one of its point's URLs: a proof made for another point's URL is refused before it is
looked at, so a point cannot be used to spend, or probe with, requests meant for
another.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from zerolane.store.changes import AddEnforcementPoint, RemoveEnforcementPoint
from zerolane.store.ports import EnforcementPointStore, RecordedWrites
from zerolane.store.records import EnforcementPoint
from zerolane.tokens.rfc9449 import DpopError, normalize_htu
from zerolane.types import Clock, Outcome

PREFIX = "zlep_"
MAX_URLS = 64
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


class PointStore(EnforcementPointStore, RecordedWrites, Protocol):
    """The ports the registry uses."""


def _hash(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()


def normalize_prefix(url: str) -> str:
    """A registered URL in the form requests are compared in (as a DPoP ``htu``:
    scheme and host lowercased, default port dropped); refuses what is not one."""
    try:
        normalized = normalize_htu(url)
    except DpopError as err:
        raise InvalidInput("enforcement_point.url", f"{url!r}: {err.message}") from None
    if "?" in url or "#" in url:
        raise InvalidInput("enforcement_point.url", f"{url!r}: no query or fragment")
    return normalized


def covers(prefix: str, url: str) -> bool:
    """Whether ``url`` (normalized) is ``prefix`` or below it, at a path boundary."""
    if url == prefix:
        return True
    base = prefix if prefix.endswith("/") else prefix + "/"
    return url.startswith(base)


class EnforcementPoints:
    def __init__(self, store: PointStore, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    def add(self, name: str, urls: Sequence[str], actor: Actor) -> tuple[str, EnforcementPoint]:
        """Register ``name`` for ``urls``; return its credential (shown once) and record."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInput(
                "enforcement_point.name",
                "a name is 1-63 lowercase letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
            )
        if not urls:
            raise InvalidInput("enforcement_point.url", "name at least one URL it serves")
        if len(urls) > MAX_URLS:
            raise InvalidInput("enforcement_point.url", f"at most {MAX_URLS} URLs")
        prefixes = tuple(dict.fromkeys(normalize_prefix(url) for url in urls))
        credential = PREFIX + secrets.token_urlsafe(32)
        point = EnforcementPoint(name, _hash(credential), prefixes, self._clock.now())
        event = self._audit.event(
            "enforcement_point.added",
            actor,
            name,
            Outcome.SUCCESS,
            details={"name": name, "urls": list(prefixes)},
        )
        self._store.write_recorded(AddEnforcementPoint(point), lambda _: [event.unsealed()], seal)
        return credential, point

    def remove(self, name: str, actor: Actor) -> EnforcementPoint:
        """Remove ``name``: its credential is refused from the next request on."""
        event = self._audit.event(
            "enforcement_point.removed", actor, name, Outcome.SUCCESS, details={"name": name}
        )
        removed = self._store.write_recorded(
            RemoveEnforcementPoint(name),
            lambda point: [event.unsealed()] if point is not None else [],
            seal,
        )
        if removed is None:
            raise NotFound("enforcement_point.unknown", f"no enforcement point named {name!r}")
        return removed

    def list(self) -> list[EnforcementPoint]:
        return self._store.list_enforcement_points()

    def authenticate(self, credential: str | None) -> EnforcementPoint:
        """The point ``credential`` belongs to, comparing every hash in constant time."""
        if not credential or not credential.startswith(PREFIX):
            raise Unauthenticated(
                "enforcement_point.credential",
                "only an enforcement point may ask for decisions: "
                "present its credential (Authorization: Bearer zlep_...)",
            )
        presented = _hash(credential)
        found: EnforcementPoint | None = None
        for point in self._store.list_enforcement_points():
            if hmac.compare_digest(presented, point.credential_hash):
                found = point
        if found is None:
            raise Unauthenticated(
                "enforcement_point.credential", "the enforcement point credential is not valid"
            )
        return found

    @staticmethod
    def check_url(point: EnforcementPoint, url: str) -> None:
        """Refuse (403 ``enforcement_point.url``) a request that is not to one of the
        point's own URLs: its proof was made for another point."""
        try:
            normalized = normalize_htu(url)
        except DpopError:
            normalized = ""
        if not normalized or not any(covers(prefix, normalized) for prefix in point.urls):
            raise Forbidden(
                "enforcement_point.url",
                f"enforcement point {point.name!r} does not serve this URL",
            )
