"""The weak target (``tests/probe/weak_target.py``) as the path, size and MCP scenarios
see it: its profile with a path it never allows (``/admin/secret``) for the path
tricks, and credentials signed with its issuer's key, bound to a key the probe holds
(bearer for the bearer-only target)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tests.probe.weak_target import Weakness, WeakTarget
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential, NotOffered
from zerolane.probe.model import Need
from zerolane.probe.profile import Call
from zerolane.probe.wire import Wire
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import proof_jwk

#: a path the weak target never allows (scope admin)
SECRET = Call("GET", "/admin/secret")
PATH_IDS = frozenset(
    {
        "path.encoded_dots",
        "path.encoded_slash",
        "path.semicolon",
        "path.backslash",
        "path.double_encoding",
    }
)
#: the scenarios of paths, limits and mcp each weakness should fail (none for the rest)
FAILS: dict[Weakness | None, frozenset[str]] = {
    Weakness.PATHS_AFTER_DECIDING: PATH_IDS,
    Weakness.METHOD_OVERRIDE: frozenset({"method.override"}),
    Weakness.NO_LIMITS: frozenset({"limits.oversized_headers", "limits.oversized_body"}),
    Weakness.LISTS_EVERY_TOOL: frozenset({"mcp.tools_list_filtered"}),
    Weakness.CALLS_EVERY_TOOL: frozenset({"mcp.tool_outside_task"}),
}
#: the sound target and every weakness
ALL: list[Weakness | None] = [None, *Weakness]


class SignedSource:
    """Tokens the weak target's issuer signs (scope read), each bound to a new key."""

    kind = "static"
    meets: frozenset[Need] = frozenset()

    def __init__(self, target: WeakTarget) -> None:
        self._target = target

    def issue(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        if self._target.weak(Weakness.BEARER_ONLY):
            return Credential(self._target.sign(self._target.claims()))
        key = ec.generate_private_key(ec.SECP256R1())
        jkt = thumbprint(proof_jwk(key))
        return Credential(self._target.sign(self._target.claims(cnf={"jkt": jkt})), key)

    def complete(self, credential: Credential) -> None:
        raise NotOffered

    def revoke(self, credential: Credential) -> None:
        raise NotOffered

    def delegate(self, credential: Credential, *, wider: bool) -> Credential:
        raise NotOffered

    def sign(self, claims: Mapping[str, Any]) -> str:
        raise NotOffered

    def issuer_jwks(self) -> list[dict[str, Any]]:
        raise NotOffered

    def close(self) -> None:
        return None


@contextmanager
def weak_context(weakness: Weakness | None) -> Iterator[ProbeContext]:
    """A probe context against the weak target with ``weakness`` (sound for ``None``)."""
    with WeakTarget(weakness) as target:
        profile = replace(target.profile(), forbidden_path=SECRET)
        context = ProbeContext(profile, SignedSource(target), Wire(timeout=10))
        try:
            yield context
        finally:
            context.close()
            context.wire.close()
