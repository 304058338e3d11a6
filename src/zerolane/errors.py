"""Error types carrying a stable reason id and the kind of refusal they are.

Every refusal in zerolane names a ``reason``: a short, stable, machine-readable id
(``join_token.used``, ``spiffe_id.uppercase_trust_domain``...) that the API returns,
the CLI prints and the audit log records. Each error class has a :class:`Refusal`
kind; what a kind becomes on the wire (an HTTP status, a JSON-RPC error, an exit code)
is decided by the edges (:mod:`zerolane.gateway.edge`), never here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import ClassVar


class Refusal(enum.StrEnum):
    """What kind of refusal an error or a deny is, independent of any protocol."""

    #: the caller sent something malformed or ambiguous
    INVALID = "invalid"
    #: the caller could not be authenticated (no, a bad or an unproven credential)
    UNAUTHENTICATED = "unauthenticated"
    #: the caller is known but not allowed
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    #: a dependency (store, audit sink, decider) failed: refused, fail closed
    UNAVAILABLE = "unavailable"


class ZerolaneError(Exception):
    """Base error: ``reason`` is a stable id, ``message`` is for people.

    ``audited``: the core recorded this refusal in the audit log already (a task open
    or an exchange refused to a caller it had authenticated); an edge that audits the
    refusals it answers (the token endpoints' ``token.refused``) records only the
    others, so none is recorded twice and none is missed."""

    kind: ClassVar[Refusal] = Refusal.INVALID
    audited: bool = False

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class InvalidInput(ZerolaneError):
    """The caller sent something malformed (HTTP 400 / exit code 2)."""

    kind = Refusal.INVALID


class Unauthenticated(ZerolaneError):
    """The caller could not be authenticated (HTTP 401).

    ``verified``: what had been verified before the refusal, for the audit log, set by
    the authenticator when a task token verified and its proof or certificate was then
    refused: ``task_id``, ``workload`` (the token's subject), ``token_id`` (its
    ``jti``), the binding it expects (``expected_jkt`` or ``expected_x5t``) and what was
    presented (``proof_jti``, ``proof_jkt``, ``presented_x5t``) when known. Ids and
    thumbprints only, never a token or a proof."""

    kind = Refusal.UNAUTHENTICATED
    verified: Mapping[str, str] | None = None


class Forbidden(ZerolaneError):
    """The caller is known but not allowed (HTTP 403)."""

    kind = Refusal.FORBIDDEN


class NotFound(ZerolaneError):
    kind = Refusal.NOT_FOUND


class Conflict(ZerolaneError):
    kind = Refusal.CONFLICT


class Unavailable(ZerolaneError):
    """A dependency (store, audit sink) failed; the request fails closed (HTTP 503)."""

    kind = Refusal.UNAVAILABLE


class ProofReplayed(Unauthenticated):
    """A one-time proof was already spent, here or by another process of the
    deployment (or before a restart): the write that wanted to spend it is undone."""

    def __init__(self) -> None:
        super().__init__("dpop.replayed", "the proof was already used")
