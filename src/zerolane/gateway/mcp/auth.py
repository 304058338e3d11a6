"""The enforcement point in front of the SDK's MCP endpoint: one check per HTTP request.

Every request must carry ``Authorization: DPoP <task token>`` and one DPoP proof for
its method and the gateway's public endpoint URL (never the ``Host`` it arrived with).
A POST that carries a ``tools/call`` is one decision: the decider verifies the token
and proof, checks the task and the policies, spends a call and audits it in one event
(the decision's, which also holds the tool and its bounded arguments, allowed or
denied), and the decision travels with the request to the handler, which forwards only
an allow. The policies see the call as ``context.request.mcp`` (server, tool,
annotations, flattened arguments). Any other request (initialize, tools/list,
notifications, the GET stream, DELETE) is authenticated the same way, against a live
task. The MCP session is bound to the task that opened it. Refusals are the enforcement
edge's (:mod:`zerolane.gateway.edge.http`, the other enforcement points' answers): 401
with challenges naming the RFC 9728 metadata URL, 400 for repeated credentials, 403 or
503 for a refused task; a malformed JSON-RPC message is a JSON-RPC error
(:mod:`zerolane.gateway.edge.jsonrpc`).

A certificate-bound task token (RFC 8705 ``cnf.x5t#S256``) is checked against the
request's client certificate (:mod:`zerolane.gateway.client_cert`: the TLS connection
the gateway serves itself, or a trusted proxy's header, as ``[tls]`` configures) and
needs no DPoP proof; it may come as ``Authorization: Bearer`` when there is a
certificate. A ``cnf.jkt`` token always needs its proof, whatever certificate comes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from zerolane.audit.events import Actor
from zerolane.errors import InvalidInput, Refusal, Unauthenticated, Unavailable, ZerolaneError
from zerolane.gateway.access_log import record_decision, record_refusal, record_task
from zerolane.gateway.client_cert import ClientCertSource
from zerolane.gateway.edge.http import (
    Answer,
    credentials_of,
    denial,
    error_refusal,
    refusal,
    send_answer,
    status_of,
)
from zerolane.gateway.edge.jsonrpc import invalid_request
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.config import GatewayConfig
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.mapping import ToolRoute
from zerolane.gateway.mcp.messages import (
    Disconnected,
    TooLarge,
    ToolCallMessage,
    read_body,
    replaying,
    tool_call_of,
)
from zerolane.gateway.mcp.metadata import metadata_url
from zerolane.gateway.mcp.state import SCOPE_KEY, RequestState, ToolCall
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tokens.rfc9068 import TaskTokenClaims
from zerolane.types import Outcome

log = logging.getLogger(__name__)

MAX_ARGUMENT_BYTES = 8 * 1024  # arguments kept in the audit event; larger ones by size


class _Refused(Exception):
    """A request refused before it reaches the MCP layer, as the edge answers it."""

    def __init__(self, reason: str, answer: Answer) -> None:
        super().__init__(reason)
        self.reason, self.answer = reason, answer


def audited_arguments(arguments: dict[str, Any]) -> object:
    """The arguments as the audit event keeps them (masked by the log, bounded here)."""
    text = json.dumps(arguments, sort_keys=True, default=str)
    if len(text.encode()) <= MAX_ARGUMENT_BYTES:
        return arguments
    return {"truncated": True, "bytes": len(text.encode())}


class Enforcer:
    """ASGI middleware: authenticate, decide ``tools/call``, then hand on to the SDK."""

    def __init__(
        self, app: ASGIApp, *, config: GatewayConfig, enforcement: Enforcement, catalog: Catalog
    ) -> None:
        self.app = app
        self._core = enforcement
        self._catalog = catalog
        self._url = config.endpoint
        self._audience = config.audience
        self._metadata_url = metadata_url(config)
        self._max_body = config.max_body_bytes
        self._certs = ClientCertSource(config.tls)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"]).upper()
        try:
            # the connection's certificate, or a trusted proxy's header (else none)
            cert = self._certs.from_scope(scope)
            token, proof = credentials_of(scope["headers"], client_cert=cert)
        except ZerolaneError as err:  # 400 repeated, 401 missing (with the challenges)
            record_refusal(scope, err.reason)
            await send_answer(send, error_refusal(err, resource_metadata=self._metadata_url))
            return
        try:
            body = await read_body(receive, self._max_body) if method == "POST" else b""
            message = tool_call_of(body) if method == "POST" else None
            if message is None:
                state = await self._authenticate(token, proof, method, cert)
            else:
                state = await self._decide(token, proof, message, cert)
        except _Refused as err:
            record_refusal(scope, err.reason)
            await send_answer(send, err.answer)
            return
        except InvalidInput as err:  # malformed JSON-RPC: nothing reaches the SDK
            record_refusal(scope, err.reason)
            error = invalid_request(err.reason, err.message)
            await send_answer(send, Answer(400, error, [("Cache-Control", "no-store")]))
            return
        except ZerolaneError as err:  # a credential refused, or anything else failed: closed
            record_refusal(scope, err.reason)
            await send_answer(send, error_refusal(err, resource_metadata=self._metadata_url))
            return
        except TooLarge:
            record_refusal(scope, "request.too_large")
            too_large = refusal(413, "request.too_large", "the request body is too large")
            await send_answer(send, too_large)
            return
        except Disconnected:
            return
        if state.call is not None:
            record_decision(scope, state.call.decision)
        else:
            record_task(scope, state.task_id)
        scope[SCOPE_KEY] = state
        # The SDK binds each MCP session to this principal: one task, one session.
        scope["user"] = AuthenticatedUser(
            AccessToken(token=state.task_id, client_id=state.task_id, scopes=[])
        )
        scope["auth"] = AuthCredentials([])
        await self.app(scope, replaying(body, receive) if method == "POST" else receive, send)

    async def _authenticate(
        self, token: str, proof: str | None, method: str, cert: bytes | None
    ) -> RequestState:
        claims = await anyio.to_thread.run_sync(self._holder, token, proof, method, cert)
        return RequestState(task_id=claims.task_id, claims=claims)

    def _holder(
        self, token: str, proof: str | None, method: str, cert: bytes | None
    ) -> TaskTokenClaims:
        core = self._core
        subject = "unauthenticated"
        try:
            holder = core.authenticator.task_holder(
                token,
                proof,
                method=method,
                url=self._url,
                audience=self._audience,
                client_cert=cert,
            )
            subject = holder.claims.subject
            if method != "DELETE":  # ending a session is allowed after the task ended
                # a task found expired has its expiry recorded (task.expired) first
                core.lifecycle.live(holder.claims, now=core.clock.now())
            return holder.claims
        except ZerolaneError as err:
            self._record_refusal(method, subject, err)
            if isinstance(err, Unauthenticated):
                raise
            status = max(status_of(err.kind), 403)  # a request is refused, never "invalid"
            raise _Refused(err.reason, refusal(status, err.reason, err.message)) from None

    def _record_refusal(self, method: str, subject: str, err: ZerolaneError) -> None:
        try:
            self._core.audit.record(
                "mcp.refused",
                actor=Actor("workload", subject),
                subject=self._url,
                outcome=Outcome.DENIED,
                reason=err.reason,
                details={"method": method, "url": self._url},
            )
        except Unavailable:
            log.warning("MCP refusal %s could not be audited", err.reason)

    async def _decide(
        self, token: str, proof: str | None, message: ToolCallMessage, cert: bytes | None
    ) -> RequestState:
        route = self._catalog.routes().get(message.name)
        request = self._request(message, route, cert)
        decision = await self._core.decider.decide_async(token, proof, request)
        if decision.refusal is Refusal.UNAUTHENTICATED or decision.task_id is None:
            raise self._denied(decision)
        call = ToolCall(message.request_id, message.name, route, decision)
        return RequestState(task_id=decision.task_id, call=call)

    def _denied(self, decision: Decision) -> _Refused:
        """A deny answered over HTTP, before the MCP layer: a credential refused (401,
        with the challenges) or a call with no task to bind a session to."""
        answer = denial(decision, resource_metadata=self._metadata_url)
        return _Refused(answer.body["reason"], answer)

    def _request(
        self, message: ToolCallMessage, route: ToolRoute | None, cert: bytes | None
    ) -> DecideInput:
        """The call as a decision's input; the decision's own audit event also records
        the call (its arguments too, allowed or denied): an event that cannot be written
        denies (``audit.write``)."""
        return DecideInput(
            method="POST",
            url=self._url,
            action=route.action if route else f"mcp:?/{message.name[:128]}",
            resource=route.resource if route else "",  # unknown tool: denied request.unmapped
            destination=route.destination if route else "",
            sensitivity=route.sensitivity.label if route else None,
            audience=self._audience,
            mcp=route.mcp_facts(message.arguments) if route else None,
            details=call_details(message, route),
            client_cert=cert,
        )


def call_details(message: ToolCallMessage, route: ToolRoute | None) -> dict[str, object]:
    """What the decision's audit event records of a ``tools/call`` besides the decision."""
    details: dict[str, object] = {
        "tool": message.name[:256],
        "arguments": audited_arguments(message.arguments),
    }
    if route is not None:
        details.update(
            server=route.server,
            upstream_tool=route.tool.name,
            read_only=route.read_only,
            destructive=route.destructive,
        )
    return details
