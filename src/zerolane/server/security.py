"""The admin credential as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from zerolane.audit.events import Actor
from zerolane.gateway.edge.http import bearer_credential, one_header
from zerolane.identity.admin import authenticate_admin
from zerolane.server.deployment import Deployment


def admin_actor(request: Request, authorization: Annotated[str | None, Header()] = None) -> Actor:
    """Authenticate the admin credential (``Authorization: Bearer zla_...``, sent once:
    the edge reads it, :mod:`zerolane.gateway.edge.http`)."""
    deployment: Deployment = request.app.state.deployment
    sent = one_header(request.headers.raw, b"authorization")
    record = authenticate_admin(deployment.stores, bearer_credential(sent))
    return Actor("admin", record.credential_id)


Admin = Annotated[Actor, Depends(admin_actor)]
