"""The admin credential: printed once at init, stored only as its SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from zerolane.errors import Unauthenticated
from zerolane.store.ports import AdminStore
from zerolane.store.records import AdminCredential
from zerolane.types import Clock

PREFIX = "zla_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_admin_credential(store: AdminStore, clock: Clock) -> tuple[str, AdminCredential]:
    """Make a new admin credential (256 random bits); return the token and its record."""
    token = PREFIX + secrets.token_urlsafe(32)
    record = AdminCredential(uuid.uuid4().hex, _hash(token), clock.now())
    store.add_admin_credential(record)
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
