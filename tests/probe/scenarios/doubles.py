"""A credential source and a target in memory, for what a real target seldom does on
cue: hear of a task's end late, answer nothing, or issue a wider child.

The target (an ``httpx.MockTransport``) accepts the allowed request with any token it
issued and has not seen ended; after an end it goes on accepting that token ``lag``
more times (a revocation still propagating), or forever with ``lag=None``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential, IssuerRefused, NotOffered
from zerolane.probe.model import Need
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.wire import Wire

URL = "http://target.test"
ALLOWED = Call("GET", "/reports/q3")


class Source:
    """Issues ``token-<n>`` (bound to one key, or a key each with ``key_each``; the
    ``unbound`` n-th ones to none); ends tokens into ``ended``; delegates as told
    (``wider`` issues, refuses or breaks)."""

    kind = "doubles"

    def __init__(
        self,
        meets: frozenset[Need],
        *,
        key_each: bool = False,
        same_token: bool = False,
        unbound: frozenset[int] = frozenset(),
        wider: IssuerRefused | None = None,
    ) -> None:
        self.meets = meets
        self.ended: list[str] = []
        #: a child's token -> its parent's
        self.children: dict[str, str] = {}
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._key_each = key_each
        self._same_token = same_token
        self._unbound = unbound
        self._wider = wider
        self._count = 0

    def issue(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        self._count += 1
        token = "token-1" if self._same_token else f"token-{self._count}"
        key = ec.generate_private_key(ec.SECP256R1()) if self._key_each else self._key
        return Credential(token, None if self._count in self._unbound else key)

    def complete(self, credential: Credential) -> None:
        self.ended.append(credential.token)

    def revoke(self, credential: Credential) -> None:
        self.ended.append(credential.token)

    def delegate(self, credential: Credential, *, wider: bool) -> Credential:
        if wider and self._wider is not None:
            raise self._wider
        self._count += 1
        child = Credential(f"child-{self._count}", self._key, handle=credential.token)
        self.children[child.token] = credential.token
        return child

    def sign(self, claims: Mapping[str, Any]) -> str:
        raise NotOffered

    def issuer_jwks(self) -> list[dict[str, Any]]:
        raise NotOffered

    def close(self) -> None:
        return None


class Target:
    """The allowed request accepted for a live token; after its end, ``lag`` more times."""

    def __init__(self, source: Source, *, lag: int | None = 0) -> None:
        self.source = source
        self.lag = lag
        self.after_end: dict[str, int] = {}
        self.seen: list[httpx.Request] = []

    def _ended(self, token: str) -> bool:
        parent = self.source.children.get(token)
        return token in self.source.ended or (parent is not None and parent in self.source.ended)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        token = request.headers.get("authorization", "").partition(" ")[2]
        if request.url.path != ALLOWED.path or not token.startswith(("token-", "child-")):
            return httpx.Response(401)
        if self._ended(token):
            count = self.after_end.get(token, 0)
            self.after_end[token] = count + 1
            if self.lag is None or count < self.lag:
                return httpx.Response(200, json={"note": "the end is not heard yet"})
            return httpx.Response(401, json={"error": "invalid_token"})
        return httpx.Response(200, json={"report": "q3"})


@contextmanager
def context_of(
    source: Source, target: Target, *, url: str = URL, allowed: Call = ALLOWED
) -> Iterator[ProbeContext]:
    """A context whose wire reaches ``target`` (whatever the URL's host)."""
    wire = Wire(client=httpx.Client(transport=httpx.MockTransport(target)))
    context = ProbeContext(TargetProfile(url, allowed), source, wire)
    try:
        yield context
    finally:
        wire.close()
