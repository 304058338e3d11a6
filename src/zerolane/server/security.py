"""The admin credential as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from zerolane.audit.events import Actor
from zerolane.identity.admin import authenticate_admin
from zerolane.server.deployment import Deployment


def admin_actor(request: Request, authorization: Annotated[str | None, Header()] = None) -> Actor:
    """Authenticate the admin credential (``Authorization: Bearer zla_...``)."""
    token = None
    if authorization and authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip()
    deployment: Deployment = request.app.state.deployment
    record = authenticate_admin(deployment.stores, token)
    return Actor("admin", record.credential_id)


Admin = Annotated[Actor, Depends(admin_actor)]
