"""Signing-key rotation, audited."""

from __future__ import annotations

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.identity.keyring import Keyring
from zerolane.types import Outcome


def rotate_keys(keyring: Keyring, audit: AuditLog, *, publish_for: int, actor: Actor) -> str:
    """Make a new key active; the old one stays published ``publish_for`` seconds."""
    old, new = keyring.rotate(publish_for)
    audit.record(
        "keys.rotated",
        actor=actor,
        subject=new,
        outcome=Outcome.SUCCESS,
        details={"previous_kid": old, "kid": new, "old_key_published_for": publish_for},
    )
    return new
