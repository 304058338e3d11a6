"""The MCP gateway's checks: one per HTTP request, a decision per decided request.

Every request must carry ``Authorization: DPoP <task token>`` and one DPoP proof for
its method and the gateway's public endpoint URL (never the ``Host`` it arrived with).
A POST that carries a decided request (a ``tools/call``, a resource read or
subscription, a ``prompts/get``, a completion: :mod:`zerolane.gateway.mcp.targets`) is
one decision: the decider verifies the token and proof, checks the task and the
policies, spends a call and audits it in one event (the decision's, which also holds
what was asked and its bounded arguments, allowed or denied); only an allow is
relayed. The policies see the request as ``context.request.mcp``. Any other request
(initialize, listings, notifications, answers, the GET stream, DELETE) is
authenticated the same way, against a live task. The MCP session is bound to the task
that opened it. Refusals are the enforcement
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

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

import anyio

from zerolane.audit.events import Actor
from zerolane.errors import Refusal, Unauthenticated, Unavailable, ZerolaneError
from zerolane.gateway.edge.http import Answer, denial, refusal, status_of
from zerolane.gateway.mcp.config import GatewayConfig
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.metadata import metadata_url
from zerolane.gateway.mcp.targets import Target, approval_digest
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tokens.rfc9068 import TaskTokenClaims
from zerolane.types import Outcome

log = logging.getLogger(__name__)
#: the subject of an event that names no task (as ``gateway.refused`` and decisions)
UNKNOWN_TASK = "unknown"


def shown_url(url: str) -> str:
    """``url`` as the audit log may hold it: scheme, host and path (no userinfo, query
    or fragment, where a secret could be)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class Refused(Exception):
    """A request refused before it reaches the relay, as the edge answers it;
    ``audited``: its event is recorded already (a decision's, or ``mcp.refused``)."""

    def __init__(self, reason: str, answer: Answer, *, audited: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.answer, self.audited = reason, answer, audited


class Gate:
    """Authenticates a request's task holder, or decides a request, for the gateway."""

    def __init__(self, *, config: GatewayConfig, enforcement: Enforcement) -> None:
        self._core = enforcement
        self._url = config.endpoint
        #: the URL as an audit event records it: no userinfo, query or fragment
        self._shown_url = shown_url(config.endpoint)
        self._route = config.path
        self._audience = config.audience
        self.metadata_url = metadata_url(config)

    async def authenticate(
        self, token: str, proof: str | None, method: str, cert: bytes | None
    ) -> TaskTokenClaims:
        """The verified claims of a live task's holder; :class:`Refused` (or a 401
        :class:`Unauthenticated`) otherwise. A DELETE is allowed after the task ended."""
        return await anyio.to_thread.run_sync(self._holder, token, proof, method, cert)

    def _holder(
        self, token: str, proof: str | None, method: str, cert: bytes | None
    ) -> TaskTokenClaims:
        core = self._core
        subject = "unauthenticated"
        seen: Mapping[str, str] = {}
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
            seen = {"task_id": holder.claims.task_id, "token_id": holder.claims.jti}
            if method != "DELETE":  # ending a session is allowed after the task ended
                # a task found expired has its expiry recorded (task.expired) first
                core.lifecycle.live(holder.claims, now=core.clock.now())
            return holder.claims
        except ZerolaneError as err:
            if isinstance(err, Unauthenticated) and err.verified:  # the token verified
                seen, subject = err.verified, err.verified["workload"]
            self._record_refusal(method, subject, err, seen)
            if isinstance(err, Unauthenticated):
                raise
            status = max(status_of(err.kind), 403)  # a request is refused, never "invalid"
            answer = refusal(status, err.reason, err.message)
            raise Refused(err.reason, answer, audited=True) from None

    def _record_refusal(
        self, method: str, subject: str, err: ZerolaneError, seen: Mapping[str, str]
    ) -> None:
        """Record a refused holder: what was verified of it (``seen``: its task, token
        id and keys, see ``Unauthenticated.verified``) names the task as the subject;
        without a task the subject is ``unknown``, as for every refusal that names no
        task (the detectors read any other subject as a task), and the details name the
        enforcement point: its ``route`` (the endpoint's path) and ``url``."""
        details = {**seen, "method": method, "route": self._route, "url": self._shown_url}
        try:
            self._core.audit.record(
                "mcp.refused",
                actor=Actor("workload", subject),
                subject=seen.get("task_id", UNKNOWN_TASK),
                outcome=Outcome.DENIED,
                reason=err.reason,
                details=details,
            )
        except Unavailable:
            log.warning("MCP refusal %s could not be audited", err.reason)

    async def decide(
        self,
        token: str,
        proof: str | None,
        target: Target,
        cert: bytes | None,
        task_id: str | None = None,
    ) -> Decision:
        """The decision on ``target``; :class:`Refused` when it is answered over HTTP (a
        credential refused: 401 with the challenges; no task to bind a session to)."""
        request = self._input(target, cert, task_id)
        decision = await self._core.decider.decide_async(token, proof, request)
        if decision.refusal is Refusal.UNAUTHENTICATED or decision.task_id is None:
            answer = denial(decision, resource_metadata=self.metadata_url)
            raise Refused(answer.body["reason"], answer, audited=True)
        return decision

    def _input(self, target: Target, cert: bytes | None, task_id: str | None = None) -> DecideInput:
        """The request as a decision's input; the decision's own audit event also
        records what was asked (its arguments too, allowed or denied): an event that
        cannot be written denies (``audit.write``)."""
        return DecideInput(
            method="POST",
            url=self._url,
            action=target.action,
            resource=target.resource,  # unmapped: empty, denied request.unmapped
            destination=target.destination,
            sensitivity=target.sensitivity.label if target.sensitivity is not None else None,
            audience=self._audience,
            mcp=target.mcp,
            details=target.details,
            client_cert=cert,
            task_id=task_id,  # the session's: a token of another task spends nothing
            digest=approval_digest(target),  # what a human approval binds
            shadow=target.shadow,  # its route's shadow mode: a policy deny is relayed
        )
