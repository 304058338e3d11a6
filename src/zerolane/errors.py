"""Error types carrying a stable reason id.

Every refusal in zerolane names a ``reason``: a short, stable, machine-readable id
(``join_token.used``, ``spiffe_id.uppercase_trust_domain``...) that the API returns,
the CLI prints and the audit log records.
"""

from __future__ import annotations


class ZerolaneError(Exception):
    """Base error: ``reason`` is a stable id, ``message`` is for people."""

    status = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class InvalidInput(ZerolaneError):
    """The caller sent something malformed (HTTP 400 / exit code 2)."""

    status = 400


class Unauthenticated(ZerolaneError):
    """The caller could not be authenticated (HTTP 401)."""

    status = 401


class Forbidden(ZerolaneError):
    """The caller is known but not allowed (HTTP 403)."""

    status = 403


class NotFound(ZerolaneError):
    status = 404


class Conflict(ZerolaneError):
    status = 409


class Unavailable(ZerolaneError):
    """A dependency (store, audit sink) failed; the request fails closed (HTTP 503)."""

    status = 503


class ProofReplayed(Unauthenticated):
    """A one-time proof was already spent, here or by another process of the
    deployment (or before a restart): the write that wanted to spend it is undone."""

    def __init__(self) -> None:
        super().__init__("dpop.replayed", "the proof was already used")
