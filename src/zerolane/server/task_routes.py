"""Task and decision endpoints: open, complete, decide; admin playbooks and tasks."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field, StrictInt, StrictStr

from zerolane.errors import InvalidInput, ZerolaneError
from zerolane.gateway.access_log import record_decision, record_task
from zerolane.gateway.client_cert import ClientCertSource
from zerolane.gateway.edge.http import (
    bearer_credential,
    credentials_of,
    decision_status,
    denial,
    one_header,
    status_of,
)
from zerolane.server.deployment import Deployment
from zerolane.server.metrics import Metrics
from zerolane.server.schemas import Strict
from zerolane.server.security import Admin
from zerolane.server.task_views import TaskOut, task_out
from zerolane.server.token_refusals import token_refused
from zerolane.tasks.decisions import DecideInput
from zerolane.tasks.lifecycle import OpenRequest
from zerolane.tasks.playbooks import parse_playbook, playbook_to_json
from zerolane.types import TaskState

router = APIRouter()


class OpenTaskBody(Strict):
    intent: StrictStr = Field(max_length=2000, description="what the task is for, in words")
    playbook: StrictStr = Field(max_length=64)
    authorization_details: list[dict[str, Any]] | None = Field(
        None, description="RFC 9396 entries of type zerolane_task (one); default: the playbook"
    )
    ttl: StrictInt | None = Field(None, gt=0)
    max_calls: StrictInt | None = Field(None, gt=0)
    on_behalf_of: StrictStr | None = Field(None, max_length=256)
    audience: list[StrictStr] | None = Field(None, max_length=8)


class OpenedOut(BaseModel):
    task_id: str
    token: str
    token_type: str = "DPoP"  # noqa: S105 (the scheme name, not a secret)
    expires_at: int
    expires_in: int
    scope: dict[str, Any]


class DecideRequestBody(Strict):
    method: StrictStr = Field(max_length=16)
    url: StrictStr = Field(max_length=8192)
    action: StrictStr | None = Field(None, max_length=256)
    resource: StrictStr | None = Field(None, max_length=1024)
    destination: StrictStr | None = Field(None, max_length=256)
    sensitivity: StrictStr | None = Field(None, max_length=16)
    digest: StrictStr | None = Field(
        None,
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 hex of the request's arguments (its body), which a human "
        "approval is bound to; none: a request a policy asks approval for is denied",
    )
    shadow: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="this enforcement point decides the request in shadow mode and names "
        "what put it there (e.g. 'route:finance GET /reports/{id}'): what the policies "
        "deny is answered 'shadow' (allowed, audited as a would-deny); none: enforced",
    )


class DecideBody(Strict):
    token: StrictStr = Field(max_length=16384, description="the task token")
    dpop: StrictStr | None = Field(None, max_length=8192, description="the DPoP proof")
    request: DecideRequestBody
    audience: StrictStr | None = Field(None, max_length=2048, description="this PEP's id")


class DecisionOut(BaseModel):
    #: ``allow``, ``deny``, or ``shadow``: allowed in shadow mode, enforcement would deny
    decision: str
    reasons: list[str]
    policies: list[str]
    task_id: str | None
    decision_id: str
    #: on a deny that needs a human approval (``approval.required``): its id
    approval_id: str | None = None
    #: what the enforcement point answers: 200, or 401, 403, 503
    status: int
    #: on deny, the error object to answer with (every enforcement point's), else None
    error: dict[str, Any] | None = None
    #: on deny, the ``WWW-Authenticate`` values to answer with (a 401's), else none
    www_authenticate: list[str] = Field(default_factory=list)
    #: on ``shadow``: the reasons enforcement would have denied the request with
    would_deny: list[str] = Field(default_factory=list)
    #: on ``shadow``: what was in shadow mode (``policies``, ``playbook:<name>``, the
    #: ``shadow`` the request named)
    shadow: list[str] = Field(default_factory=list)


def _deployment(request: Request) -> Deployment:
    deployment: Deployment = request.app.state.deployment
    return deployment


def client_cert(request: Request, deployment: Deployment) -> bytes | None:
    """The request's client certificate (DER): this connection's own (TLS served here),
    or a trusted proxy's header (``[tls]``); never a header from anyone else."""
    source = getattr(request.app.state, "client_certs", None)
    if not isinstance(source, ClientCertSource):
        source = request.app.state.client_certs = ClientCertSource(deployment.config.tls)
    return source.from_scope(request.scope)


def _url(request: Request, deployment: Deployment) -> str:
    """The URL a DPoP proof must name: the configured public URL, else as requested."""
    public = deployment.config.server.public_url
    if public:
        return public.rstrip("/") + request.url.path
    return str(request.url.replace(query=None, fragment=None))


@router.post("/v1/tasks", response_model=OpenedOut, status_code=201, tags=["tasks"])
def open_task(
    body: OpenTaskBody,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    dpop: Annotated[str | None, Header()] = None,
) -> OpenedOut:
    """Open a task: JWT-SVID (``Authorization: DPoP <svid>``) plus a DPoP proof; or,
    with no ``Authorization``, the X.509-SVID of a mutual-TLS connection, and then the
    token is bound to that certificate (RFC 8705 ``cnf.x5t#S256``, ``token_type`` Bearer).
    A refusal is audited: ``task.open`` denied once the caller is authenticated, else
    ``token.refused`` at the refusals' bounded rate."""
    deployment = _deployment(request)
    try:
        certificate = client_cert(request, deployment)
        if authorization is None and certificate is not None:
            caller = deployment.authenticator.workload_by_certificate(certificate)
        else:  # an SVID is always DPoP-bound: no certificate lets a Bearer one through
            token, proof = credentials_of(request.headers.raw, client_cert=None)
            caller = deployment.authenticator.workload(
                token, proof, method="POST", url=_url(request, deployment)
            )
        opened = deployment.lifecycle.open(
            caller,
            OpenRequest(
                intent=body.intent,
                playbook=body.playbook,
                authorization_details=body.authorization_details,
                ttl=body.ttl,
                max_calls=body.max_calls,
                on_behalf_of=body.on_behalf_of,
                audience=body.audience,
            ),
        )
    except ZerolaneError as err:  # answered by the app's handler, audited first
        if not err.audited:
            token_refused(deployment, request.scope, reason=err.reason, status=status_of(err.kind))
        raise
    record_task(request.scope, opened.task.task_id)
    now = deployment.clock.now()
    return OpenedOut(
        task_id=opened.task.task_id,
        token=opened.token,
        token_type="Bearer" if caller.x5t is not None else "DPoP",
        expires_at=int(opened.task.expires_at),
        expires_in=int(opened.task.expires_at - now),
        scope=task_out(opened.task, now).scope,
    )


@router.post("/v1/tasks/{task_id}/complete", response_model=TaskOut, tags=["tasks"])
def complete_task(
    task_id: str,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    dpop: Annotated[str | None, Header()] = None,
) -> TaskOut:
    """Complete a task (its owner: task token plus DPoP proof, or plus the client
    certificate a certificate-bound token names). Its token is dead after."""
    deployment = _deployment(request)
    certificate = client_cert(request, deployment)
    token, proof = credentials_of(request.headers.raw, client_cert=certificate)
    holder = deployment.authenticator.task_holder(
        token,
        proof,
        method="POST",
        url=_url(request, deployment),
        client_cert=certificate,
    )
    record_task(request.scope, holder.claims.task_id)
    ended = deployment.lifecycle.complete(task_id, holder.claims.subject, holder.claims.task_id)
    return task_out(ended, deployment.clock.now())


@router.post("/v1/decide", response_model=DecisionOut, tags=["decisions"])
def decide(
    body: DecideBody,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> DecisionOut:
    """Decide one request of a task, for a registered enforcement point (OPA-style).

    Only an enforcement point asks (``Authorization: Bearer zlep_...``, from
    ``zerolane enforcement-point add``), and only about a request to one of its own
    URLs: 401 ``enforcement_point.credential`` or 403 ``enforcement_point.url``
    otherwise, and nothing is decided or spent. Then always 200 with ``decision``
    allow, deny or shadow (allowed, though enforcement would deny it: ``would_deny``
    says why and ``shadow`` which mode let it through; it spends a call like an
    allow); ``status`` says what the enforcement point should answer (200 on
    allow; on deny 401 credential problem, 403 refused, 503 fail-closed) and, on deny,
    ``error`` and ``www_authenticate`` the body and challenges to answer with: what
    every zerolane enforcement point answers (:mod:`zerolane.gateway.edge.http`).
    A certificate-bound token is checked against the client certificate of this very
    request (its connection, or a trusted proxy's header), never one in the body.
    """
    deployment = _deployment(request)
    points = deployment.enforcement_points
    point = points.authenticate(
        bearer_credential(one_header(request.headers.raw, b"authorization"))
    )
    r = body.request
    points.check_url(point, r.url)
    decision = deployment.decider.decide(
        body.token,
        body.dpop,
        DecideInput(
            method=r.method,
            url=r.url,
            action=r.action,
            resource=r.resource,
            destination=r.destination,
            sensitivity=r.sensitivity,
            audience=body.audience,
            client_cert=client_cert(request, deployment),
            details={"enforcement_point": point.name},
            digest=r.digest,
            shadow=r.shadow,
        ),
    )
    record_decision(request.scope, decision)
    metrics: Metrics = request.app.state.metrics
    metrics.decided(decision)  # by outcome: a shadow allow apart
    denied = None if decision.allowed else denial(decision)
    shadow = decision.shadow
    return DecisionOut(
        decision=decision.outcome,
        reasons=list(decision.reasons),
        policies=list(decision.policies),
        task_id=decision.task_id,
        decision_id=decision.decision_id,
        approval_id=decision.approval_id,
        status=decision_status(decision),
        error=dict(denied.body) if denied else None,
        www_authenticate=[v for n, v in denied.headers if n == "WWW-Authenticate"]
        if denied
        else [],
        would_deny=list(shadow.reasons) if shadow else [],
        shadow=list(shadow.modes) if shadow else [],
    )


@router.get("/v1/admin/tasks", response_model=list[TaskOut], tags=["admin"])
def list_tasks(
    request: Request,
    _: Admin,
    owner: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TaskOut]:
    deployment = _deployment(request)
    try:
        wanted = TaskState(state) if state else None
    except ValueError:
        raise InvalidInput("task.state", f"unknown state {state!r}") from None
    now = deployment.clock.now()
    # the lifecycle records the expiries it finds first: stored states are shown states
    tasks = deployment.lifecycle.list(owner=owner, state=wanted, limit=limit)
    return [task_out(t, now) for t in tasks]


@router.get("/v1/admin/tasks/{task_id}", response_model=TaskOut, tags=["admin"])
def show_task(task_id: str, request: Request, _: Admin) -> TaskOut:
    deployment = _deployment(request)
    return task_out(deployment.lifecycle.get(task_id), deployment.clock.now())


@router.get("/v1/admin/tasks/{task_id}/tree", response_model=list[TaskOut], tags=["admin"])
def task_tree(
    task_id: str,
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[TaskOut]:
    """The task and its delegated descendants, parents before children (``parent_id``
    and ``depth`` give the shape)."""
    deployment = _deployment(request)
    now = deployment.clock.now()
    return [task_out(t, now) for t in deployment.lifecycle.tree(task_id, limit=limit)]


@router.post("/v1/admin/tasks/{task_id}/revoke", response_model=TaskOut, tags=["admin"])
def revoke_task(task_id: str, request: Request, actor: Admin) -> TaskOut:
    deployment = _deployment(request)
    revoked = deployment.lifecycle.revoke(task_id, actor=actor)
    return task_out(revoked, deployment.clock.now())


class TurnBody(Strict):
    reason: StrictStr | None = Field(
        None, min_length=1, max_length=256, description="recorded in the audit log"
    )


_TURN_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "``task.unknown``"},
    409: {
        "description": "``task.ended``, ``task.already_suspended``, ``task.not_suspended``, "
        "``task.parent_suspended``"
    },
}


@router.post(
    "/v1/admin/tasks/{task_id}/suspend",
    response_model=list[TaskOut],
    tags=["admin"],
    responses=_TURN_RESPONSES,
)
def suspend_task(
    task_id: str, request: Request, actor: Admin, body: TurnBody | None = None
) -> list[TaskOut]:
    """Suspend an active task and every live task delegated from it: each is denied
    (``task.suspended``) from its very next request, can neither delegate, renew, get
    grants nor complete, and its grants are revoked, until it is resumed. Its window
    does not move. Answers the tasks suspended, the task first. 404 ``task.unknown``;
    409 ``task.ended`` (completed, revoked or expired) or ``task.already_suspended``."""
    deployment = _deployment(request)
    reason = body.reason if body is not None and body.reason is not None else "suspended"
    done = deployment.lifecycle.suspend(task_id, actor=actor, reason=reason)
    now = deployment.clock.now()
    return [task_out(t, now) for t in done]


@router.post(
    "/v1/admin/tasks/{task_id}/resume",
    response_model=list[TaskOut],
    tags=["admin"],
    responses=_TURN_RESPONSES,
)
def resume_task(
    task_id: str, request: Request, actor: Admin, body: TurnBody | None = None
) -> list[TaskOut]:
    """Resume a suspended task and the delegated tasks suspended with it (a delegated
    task suspended on its own stays suspended: resume it apart). Allowed again from the
    next request, within the window it always had. Answers the tasks resumed, the task
    first. 404 ``task.unknown``; 409 ``task.ended`` (its window ended, or it was
    revoked), ``task.not_suspended`` or ``task.parent_suspended`` (its parent is
    suspended: resume the parent)."""
    deployment = _deployment(request)
    reason = body.reason if body is not None and body.reason is not None else "resumed"
    done = deployment.lifecycle.resume(task_id, actor=actor, reason=reason)
    now = deployment.clock.now()
    return [task_out(t, now) for t in done]


@router.post("/v1/admin/playbooks", status_code=201, tags=["admin"])
def apply_playbook(document: dict[str, Any], request: Request, actor: Admin) -> dict[str, Any]:
    """Register or update a playbook (the same document as a playbook file, as JSON).

    ``warnings`` lists likely mistakes (a bare HTTP method as an action, an opener
    outside this home's trust domain, a selector no attestor here proves): the playbook
    is applied all the same. Re-applying an unchanged playbook keeps its version."""
    deployment = _deployment(request)
    playbook = parse_playbook(document, "request body")
    record = deployment.playbooks.apply(playbook, actor)
    warnings = deployment.playbook_warnings(playbook)
    return {"name": record.name, "version": record.version, "warnings": warnings}


@router.get("/v1/admin/playbooks", tags=["admin"])
def list_playbooks(request: Request, _: Admin) -> list[dict[str, Any]]:
    deployment = _deployment(request)
    return [
        {**json.loads(playbook_to_json(pb)), "version": rec.version}
        for pb, rec in deployment.playbooks.list()
    ]


#: the longest window a suggestion reads, as the command line's ``--since``
MAX_SUGGESTION_DAYS = 366


@router.get("/v1/admin/playbooks/{name}/suggestion", tags=["admin"])
def playbook_suggestion(
    name: str,
    request: Request,
    _: Admin,
    since_days: Annotated[float, Query(gt=0, le=MAX_SUGGESTION_DAYS)] = 30,
    headroom: Annotated[int, Query(ge=0, le=1000)] = 0,
    keep_patterns: bool = False,
) -> dict[str, Any]:
    """Least privilege from evidence (``zerolane playbook suggest --json``): what the
    tasks opened from the playbook in the last ``since_days`` used against what it
    grants, the unused grants, the denied requests and the narrower playbook with its
    diff. Changes nothing. ``playbook.unknown`` (404) for a name not registered,
    ``playbook.no_evidence`` (404) when no task of it made an allowed request in the
    window. Reads the audit log from the window's start: slow on a large one."""
    from zerolane.posture.suggest import suggest

    deployment = _deployment(request)
    now = deployment.clock.now()
    found = suggest(
        deployment.stores,
        name,
        since=now - since_days * 86400,
        now=now,
        headroom=headroom,
        narrow=not keep_patterns,
    )
    return found.as_json()


@router.post("/v1/admin/policy/reload", tags=["admin"])
def reload_policies(request: Request, actor: Admin) -> dict[str, str]:
    """Validate and atomically swap in the policies on disk; on error the old set stays."""
    deployment = _deployment(request)
    return {"version": deployment.reload_policies(actor)}
