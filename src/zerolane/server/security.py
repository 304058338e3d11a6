"""The admin credential as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from zerolane.audit.events import Actor
from zerolane.identity.admin import authenticate_admin
from zerolane.server.deployment import Deployment


def bearer_credential(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header (None without one)."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def admin_actor(request: Request, authorization: Annotated[str | None, Header()] = None) -> Actor:
    """Authenticate the admin credential (``Authorization: Bearer zla_...``)."""
    deployment: Deployment = request.app.state.deployment
    record = authenticate_admin(deployment.stores, bearer_credential(authorization))
    return Actor("admin", record.credential_id)


Admin = Annotated[Actor, Depends(admin_actor)]
