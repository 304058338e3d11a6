"""Human approvals over the API: the admin lists, shows, approves and denies them; a
task's holder reads its own (``GET /v1/approvals/{id}``) to know when to retry. The
admin also lists the tasks a response rule holds for approval and releases them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, StrictStr

from zerolane.errors import InvalidInput, NotFound
from zerolane.gateway.access_log import record_task
from zerolane.gateway.edge.http import credentials_of
from zerolane.server.deployment import Deployment
from zerolane.server.schemas import Strict
from zerolane.server.security import Admin
from zerolane.server.task_routes import client_cert
from zerolane.store.records import ApprovalRecord, ApprovalStatus, TaskHold
from zerolane.tasks.approval_preview import shown_preview

router = APIRouter()


class ApprovalOut(BaseModel):
    approval_id: str
    task_id: str
    #: as it reads now: pending, approved, denied, used or expired
    status: str
    action: str
    resource: str
    destination: str
    #: SHA-256 hex of the request's arguments (HTTP body, MCP tool call arguments)
    digest: str
    policy_version: str
    policies: list[str]
    requester: str
    created_at: float
    expires_at: float
    decided_at: float | None = None
    approver: str | None = None
    reason: str | None = None
    used_at: float | None = None
    #: what the request was, masked (method, path, masked query, body size and masked
    #: excerpt; a tool call's masked arguments): docs/approvals.md
    preview: dict[str, Any] | None = None


class HoldOut(BaseModel):
    task_id: str
    #: the response rule that held it, the detector and the detection event's id
    rule: str
    detector: str
    detection: str
    created_at: float


class ReleaseBody(Strict):
    reason: StrictStr | None = Field(
        None, min_length=1, max_length=256, description="recorded in the audit log"
    )


def hold_out(hold: TaskHold) -> HoldOut:
    return HoldOut(
        task_id=hold.task_id,
        rule=hold.rule,
        detector=hold.detector,
        detection=hold.detection,
        created_at=hold.created_at,
    )


class DecideApprovalBody(Strict):
    approver: StrictStr = Field(
        min_length=1,
        max_length=200,
        description="who approves (recorded); never the task's workload or its person",
    )
    reason: StrictStr | None = Field(
        None, min_length=1, max_length=256, description="recorded in the audit log"
    )


def approval_out(record: ApprovalRecord, now: float) -> ApprovalOut:
    return ApprovalOut(
        approval_id=record.approval_id,
        task_id=record.task_id,
        status=record.status_at(now).value,
        action=record.action,
        resource=record.resource,
        destination=record.destination,
        digest=record.digest,
        policy_version=record.policy_version,
        policies=list(record.policies),
        requester=record.requester,
        created_at=record.created_at,
        expires_at=record.expires_at,
        decided_at=record.decided_at,
        approver=record.approver,
        reason=record.reason,
        used_at=record.used_at,
        preview=shown_preview(record.preview),
    )


def _deployment(request: Request) -> Deployment:
    deployment: Deployment = request.app.state.deployment
    return deployment


_DECIDE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "``approval.approver``, ``approval.reason``"},
    403: {"description": "``approval.self``: the approver is the task's workload or person"},
    404: {"description": "``approval.unknown``"},
    409: {"description": "``approval.decided`` (not pending any more), ``approval.expired``"},
}


@router.get("/v1/admin/approvals", response_model=list[ApprovalOut], tags=["admin"])
def list_approvals(
    request: Request,
    _: Admin,
    task_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ApprovalOut]:
    """Approvals, newest first, optionally of one task and/or in one status (as it
    reads now: a pending approval past its expiry is ``expired``)."""
    deployment = _deployment(request)
    try:
        wanted = ApprovalStatus(status) if status else None
    except ValueError:
        raise InvalidInput("approval.status", f"unknown status {status!r}") from None
    now = deployment.clock.now()
    found = deployment.approvals.list(task_id=task_id, status=wanted, limit=limit)
    return [approval_out(a, now) for a in found]


@router.get(
    "/v1/admin/approvals/{approval_id}",
    response_model=ApprovalOut,
    tags=["admin"],
    responses={404: {"description": "``approval.unknown``"}},
)
def show_approval(approval_id: str, request: Request, _: Admin) -> ApprovalOut:
    deployment = _deployment(request)
    return approval_out(deployment.approvals.get(approval_id), deployment.clock.now())


@router.post(
    "/v1/admin/approvals/{approval_id}/approve",
    response_model=ApprovalOut,
    tags=["admin"],
    responses=_DECIDE_RESPONSES,
)
def approve(
    approval_id: str, body: DecideApprovalBody, request: Request, actor: Admin
) -> ApprovalOut:
    """Approve a pending approval: the exact request it is bound to (task, action,
    resource, destination, argument digest, policy version) is allowed once, before the
    approval expires."""
    deployment = _deployment(request)
    done = deployment.approvals.approve(
        approval_id, approver=body.approver, actor=actor, reason=body.reason or "approved"
    )
    return approval_out(done, deployment.clock.now())


@router.post(
    "/v1/admin/approvals/{approval_id}/deny",
    response_model=ApprovalOut,
    tags=["admin"],
    responses=_DECIDE_RESPONSES,
)
def deny(approval_id: str, body: DecideApprovalBody, request: Request, actor: Admin) -> ApprovalOut:
    """Deny a pending approval: the request stays denied (``approval.denied``) until
    the approval expires."""
    deployment = _deployment(request)
    done = deployment.approvals.deny(
        approval_id, approver=body.approver, actor=actor, reason=body.reason or "denied"
    )
    return approval_out(done, deployment.clock.now())


@router.get(
    "/v1/approvals/{approval_id}",
    response_model=ApprovalOut,
    tags=["tasks"],
    responses={404: {"description": "``approval.unknown`` (or another task's)"}},
)
def my_approval(approval_id: str, request: Request) -> ApprovalOut:
    """An approval of the caller's own task (task token plus DPoP proof for this GET,
    or the client certificate a certificate-bound token names): poll it until it is
    ``approved``, then make the identical request again. Another task's approval is
    ``approval.unknown``, as one that does not exist."""
    deployment = _deployment(request)
    certificate = client_cert(request, deployment)
    token, proof = credentials_of(request.headers.raw, client_cert=certificate)
    public = deployment.config.server.public_url
    url = (
        public.rstrip("/") + request.url.path
        if public
        else str(request.url.replace(query=None, fragment=None))
    )
    holder = deployment.authenticator.task_holder(
        token, proof, method="GET", url=url, client_cert=certificate
    )
    record_task(request.scope, holder.claims.task_id)
    record = deployment.approvals.get(approval_id)
    if record.task_id != holder.claims.task_id:
        raise NotFound("approval.unknown", f"no approval {approval_id}")
    return approval_out(record, deployment.clock.now())


@router.get("/v1/admin/holds", response_model=list[HoldOut], tags=["admin"])
def list_holds(request: Request, _: Admin) -> list[HoldOut]:
    """Tasks a response rule holds (``require_approval``): each of their requests
    needs a human approval until released."""
    return [hold_out(h) for h in _deployment(request).holds.list()]


@router.post(
    "/v1/admin/holds/{task_id}/release",
    response_model=HoldOut,
    tags=["admin"],
    responses={
        400: {"description": "``hold.reason``"},
        404: {"description": "``hold.unknown``: the task is not held"},
    },
)
def release_hold(task_id: str, body: ReleaseBody, request: Request, actor: Admin) -> HoldOut:
    """Release a held task (``task.released`` event): its requests are decided by the
    policies alone again."""
    deployment = _deployment(request)
    return hold_out(deployment.holds.clear(task_id, actor=actor, reason=body.reason or "released"))
