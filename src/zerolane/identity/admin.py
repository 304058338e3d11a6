"""The admin credential: printed once at init, stored only as its SHA-256 hash.

A credential is stored in the same write as the event that records it (at init,
``home.initialized``): nobody holds admin power the audit log cannot account for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Event
from zerolane.errors import Unauthenticated
from zerolane.store.changes import AddAdminCredential
from zerolane.store.ports import AdminStore, RecordedWrites
from zerolane.store.records import AdminCredential
from zerolane.types import Clock

PREFIX = "zla_"

#: The event that records a new credential, given its record (never its token).
CredentialEvent = Callable[[AdminCredential], Event]


class RecordedAdminStore(AdminStore, RecordedWrites, Protocol):
    """The admin store, written to with each change's event."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_admin_credential(
    store: RecordedAdminStore, clock: Clock, recorded_as: CredentialEvent
) -> tuple[str, AdminCredential]:
    """Make a new admin credential (256 random bits); return the token and its record.

    The credential is stored with the event ``recorded_as`` builds for it, in one
    write: when the event cannot be built, sealed or stored no credential exists and
    ``Unavailable`` (``audit.write``) is raised."""
    token = PREFIX + secrets.token_urlsafe(32)
    record = AdminCredential(uuid.uuid4().hex, _hash(token), clock.now())
    store.write_recorded(
        AddAdminCredential(record), lambda _: [recorded_as(record).unsealed()], seal
    )
    return token, record


def authenticate_admin(store: AdminStore, token: str | None) -> AdminCredential:
    """Return the credential ``token`` matches, comparing every hash in constant time."""
    if not token or not token.startswith(PREFIX):
        raise Unauthenticated("admin.credential", "an admin credential is required")
    presented = _hash(token)
    found: AdminCredential | None = None
    for record in store.list_admin_credentials():
        if hmac.compare_digest(presented, record.credential_hash):
            found = record
    if found is None:
        raise Unauthenticated("admin.credential", "the admin credential is not valid")
    return found
