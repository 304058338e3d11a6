"""``POST /v1/token``: OAuth 2.0 Token Exchange (RFC 8693) for delegation and for tasks
opened on a person's behalf (see ``docs/delegation.md``).

The body is ``application/x-www-form-urlencoded`` (RFC 8693 section 2.1); the caller
sends one ``DPoP`` header, a proof by the key of the token that authorizes the
exchange (the parent task token, or the agent's SVID for a person's task); a parent
task token bound to a client certificate (RFC 8705) needs no proof but that very
certificate on the connection (TLS served here, or a trusted proxy's header). Answers
follow RFC 8693 section 2.2: the issued token (``token_type: DPoP``), or an RFC 6749
section 5.2 error object: ``error`` (the RFC's code) and ``error_description``, in the
error object every refusal has (:mod:`zerolane.gateway.edge.http`: ``reason``,
``message``, ``reasons``, ``decision_id``), with its ``WWW-Authenticate`` on a 401.
Every refusal is audited: by the core once the caller is authenticated
(``task.delegate``, ``task.open`` denied), else here as ``token.refused`` at the
refusals' bounded rate (:mod:`zerolane.server.token_refusals`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from zerolane.errors import InvalidInput, ZerolaneError
from zerolane.gateway.edge.http import proof_of, refusal, status_of
from zerolane.server.deployment import Deployment
from zerolane.server.task_routes import client_cert
from zerolane.server.task_views import TaskOut, task_out
from zerolane.server.token_refusals import seen_of, token_refused
from zerolane.tokens.rfc8693 import (
    ACCESS_TOKEN_TYPE,
    FORM_TYPE,
    ExchangeRequest,
    oauth_error,
    parse_exchange_form,
)

router = APIRouter()

#: statuses a refusal may have here (RFC 6749 section 5.2: 400 unless said otherwise)
_STATUSES = frozenset({400, 401, 403, 503})


class TokenOut(BaseModel):
    """RFC 8693 section 2.2.1, plus the task it is for."""

    access_token: str
    issued_token_type: str = ACCESS_TOKEN_TYPE
    token_type: str = "DPoP"  # noqa: S105 (the scheme name, not a secret)
    expires_in: int
    expires_at: int
    task_id: str
    authorization_details: list[dict[str, Any]]
    task: TaskOut


class OAuthErrorOut(BaseModel):
    error: str
    error_description: str
    reason: str
    message: str
    reasons: list[str]
    decision_id: str | None = None


def oauth_error_response(status: int, reason: str, message: str) -> Response:
    """An RFC 6749 section 5.2 error: ``error`` (the code) and ``error_description``,
    in the edge's error object, with its challenge on a 401."""
    answer = refusal(
        status, reason, message, error=oauth_error(reason), extra={"error_description": message}
    )
    response = answer.response()
    response.headers["Pragma"] = "no-cache"
    return response


def _url(request: Request, deployment: Deployment) -> str:
    """The URL a DPoP proof must name: the configured public URL, else as requested."""
    public = deployment.config.server.public_url
    if public:
        return public.rstrip("/") + request.url.path
    return str(request.url.replace(query=None, fragment=None))


@router.post(
    "/v1/token",
    response_model=TokenOut,
    tags=["tasks"],
    responses={
        400: {"model": OAuthErrorOut},
        401: {"model": OAuthErrorOut},
        403: {"model": OAuthErrorOut},
        503: {"model": OAuthErrorOut},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                FORM_TYPE: {
                    "schema": {
                        "type": "object",
                        "required": [
                            "grant_type",
                            "subject_token",
                            "subject_token_type",
                            "actor_token",
                            "actor_token_type",
                        ],
                        "properties": {
                            name: {"type": "string"}
                            for name in (
                                "grant_type",
                                "subject_token",
                                "subject_token_type",
                                "actor_token",
                                "actor_token_type",
                                "requested_token_type",
                                "authorization_details",
                                "audience",
                                "ttl",
                                "max_calls",
                                "intent",
                                "playbook",
                            )
                        },
                    }
                }
            },
        }
    },
)
async def token_exchange(request: Request) -> Response:
    """Exchange a parent task token (delegation) or a person's ID token (a task on their
    behalf) for a task token; see docs/delegation.md."""
    deployment: Deployment = request.app.state.deployment
    parsed: ExchangeRequest | None = None

    def refused(status: int, err: ZerolaneError) -> Response:
        """The refusal, audited unless the core recorded it (``token.refused``)."""
        if not err.audited:
            token_refused(
                deployment,
                request.scope,
                reason=err.reason,
                status=status,
                subject_token_type=parsed.subject_token_type if parsed else None,
                seen=seen_of(err),
            )
        return oauth_error_response(status, err.reason, err.message)

    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != FORM_TYPE:
        return refused(400, InvalidInput("exchange.content_type", f"send the body as {FORM_TYPE}"))
    try:
        proof = proof_of(request.headers.raw)
    except ZerolaneError as err:
        return refused(400, err)
    body = await request.body()
    url = _url(request, deployment)
    try:
        parsed = parse_exchange_form(body)
        certificate = client_cert(request, deployment)  # never one in the form
        exchanged = await run_in_threadpool(
            deployment.exchange.exchange,
            parsed,
            proof,
            url=url,
            client_cert=certificate,
        )
    except ZerolaneError as err:
        status = status_of(err.kind)
        return refused(status if status in _STATUSES else 400, err)
    now = deployment.clock.now()
    task = exchanged.task
    out = TokenOut(
        access_token=exchanged.token,
        expires_in=max(0, int(task.expires_at - now)),
        expires_at=int(task.expires_at),
        task_id=task.task_id,
        authorization_details=list(_details(task.authorization_details)),
        task=task_out(task, now),
    )
    return JSONResponse(
        out.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


def _details(stored: str) -> list[dict[str, Any]]:
    value = json.loads(stored)
    return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []
