"""Grant endpoints: a task asks for a downstream credential; admins list and retry leases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field, StrictStr

from zerolane.errors import InvalidInput
from zerolane.gateway.edge.http import credentials_of
from zerolane.server.schemas import Strict
from zerolane.server.security import Admin
from zerolane.server.task_routes import _deployment, _url, client_cert
from zerolane.store.records import LeaseRecord, LeaseState

router = APIRouter()


class GrantBody(Strict):
    broker: StrictStr = Field(max_length=64, description="a broker the task's playbook grants")


class LeaseOut(BaseModel):
    lease_id: str
    task_id: str
    broker: str
    handle: str
    state: str
    created_at: float
    expires_at: float
    updated_at: float
    attempts: int
    last_error: str | None
    next_attempt_at: float | None
    end_reason: str | None


class GrantOut(BaseModel):
    lease: LeaseOut
    #: the secret material (for postgres: host, port, dbname, user, password, dsn)
    credential: dict[str, str]


class SweepOut(BaseModel):
    revoked: list[LeaseOut]
    failed: list[LeaseOut]


def lease_out(lease: LeaseRecord) -> LeaseOut:
    return LeaseOut(
        lease_id=lease.lease_id,
        task_id=lease.task_id,
        broker=lease.broker,
        handle=lease.handle,
        state=lease.state.value,
        created_at=lease.created_at,
        expires_at=lease.expires_at,
        updated_at=lease.updated_at,
        attempts=lease.attempts,
        last_error=lease.last_error,
        next_attempt_at=lease.next_attempt_at,
        end_reason=lease.end_reason,
    )


@router.post("/v1/tasks/{task_id}/grants", response_model=GrantOut, status_code=201, tags=["tasks"])
def issue_grant(
    task_id: str,
    body: GrantBody,
    request: Request,
    response: Response,
    authorization: Annotated[str | None, Header()] = None,
    dpop: Annotated[str | None, Header()] = None,
) -> GrantOut:
    """Issue a downstream credential to the task's owner (task token plus DPoP proof).

    The credential lives no longer than the task and is revoked when the task ends;
    it is returned once, here, and never stored or logged.
    """
    deployment = _deployment(request)
    certificate = client_cert(request, deployment)  # a certificate-bound token's (RFC 8705)
    token, proof = credentials_of(request.headers.raw, client_cert=certificate)
    holder = deployment.authenticator.task_holder(
        token,
        proof,
        method="POST",
        url=_url(request, deployment),
        client_cert=certificate,
    )
    issued = deployment.task_grants.issue(
        task_id,
        body.broker,
        holder_sub=holder.claims.subject,
        holder_task=holder.claims.task_id,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return GrantOut(lease=lease_out(issued.lease), credential=dict(issued.secret.values))


@router.get("/v1/admin/grants", response_model=list[LeaseOut], tags=["admin"])
def list_grants(
    request: Request,
    _: Admin,
    task_id: Annotated[str | None, Query(max_length=256)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LeaseOut]:
    try:
        wanted = LeaseState(state) if state else None
    except ValueError:
        raise InvalidInput("lease.state", f"unknown lease state {state!r}") from None
    leases = _deployment(request).grants.list(task_id=task_id, state=wanted, limit=limit)
    return [lease_out(lease) for lease in leases]


@router.post("/v1/admin/grants/retry", response_model=SweepOut, tags=["admin"])
def retry_grants(request: Request, _: Admin) -> SweepOut:
    """Retry failed revocations now and revoke leases of ended or expired tasks."""
    result = _deployment(request).grants.sweep(force=True)
    return SweepOut(
        revoked=[lease_out(x) for x in result.revoked],
        failed=[lease_out(x) for x in result.failed],
    )


@router.post("/v1/admin/grants/{lease_id}/revoke", response_model=LeaseOut, tags=["admin"])
def revoke_grant(lease_id: str, request: Request, actor: Admin) -> LeaseOut:
    return lease_out(_deployment(request).grants.revoke(lease_id, actor=actor))
