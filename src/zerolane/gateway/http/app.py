"""The HTTP gateway: a raw ASGI app that decides every request, then forwards it.

Per request: refuse ambiguous framing and unsafe paths (400); map the path to an
upstream route (403 ``route.unmapped`` if none); take the task token and DPoP proof
(:func:`~zerolane.gateway.edge.http.credentials_of`: 401 when missing, 400 when
repeated); decide on the event loop (:meth:`~zerolane.tasks.decisions.Decider.decide_async`),
on the gateway's own public URL of the request and the route's action, resource and
sensitivity; deny as the enforcement edge renders the decision (401, 403 or 503), or
forward with the agent's credentials removed and the upstream's credential,
``X-Zerolane-Task`` and ``X-Zerolane-Decision`` added.

A certificate-bound task token (RFC 8705 ``cnf.x5t#S256``) is decided with the
request's client certificate (:mod:`zerolane.gateway.client_cert`: the TLS connection's
own, or a trusted proxy's header) and needs no DPoP proof; it may come as
``Authorization: Bearer`` when there is a certificate. No certificate header is ever
forwarded upstream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from zerolane.decision import request_digest
from zerolane.errors import InvalidInput, Refusal, ZerolaneError
from zerolane.gateway.access_log import (
    AccessLog,
    AccessNote,
    note_of,
    record_decision,
    record_refusal,
    safe_path,
)
from zerolane.gateway.client_cert import ClientCertSource
from zerolane.gateway.config import GatewayConfig, Upstream
from zerolane.gateway.edge.http import (
    allow_headers,
    credentials_of,
    denial,
    refusal,
    send_answer,
    status_of,
)
from zerolane.gateway.http.body_digest import (
    BODY_TIMEOUT,
    EMPTY,
    BodyTimedOut,
    BoundBody,
    bind_body,
)
from zerolane.gateway.http.forward import Forwarder, Outgoing
from zerolane.gateway.http.metrics import GatewayMetrics
from zerolane.gateway.http.responses import MESSAGES, Receive, Scope, Send, send_bytes
from zerolane.gateway.normalize import check_framing, check_path, check_query, request_headers
from zerolane.gateway.refusals import RefusalAudit, audit_refusal
from zerolane.grants import CredentialSource
from zerolane.tasks.approval_preview import http_preview
from zerolane.tasks.decisions import DecideInput, Decider, Decision, Verified

logger = logging.getLogger("zerolane.gateway")
_HEALTH = b'{"status":"ok"}'
_JSON = [(b"content-type", b"application/json")]


class GatewayApp:
    """ASGI app; ``lifespan`` opens and closes the shared upstream session."""

    def __init__(
        self,
        config: GatewayConfig,
        decider: Decider,
        credentials: Mapping[str, CredentialSource] | None = None,
        *,
        listener: str = "gateway",
        refusals: RefusalAudit | None = None,
    ) -> None:
        """``refusals``: where the refusals made before any decision are audited (at
        its rates; none: counted in the metrics and the access log only)."""
        self.config = config
        self._listener = listener
        self._refusals = refusals
        self.metrics = GatewayMetrics()
        self._decider = decider
        self._credentials = dict(credentials or {})
        self._forwarder = Forwarder(config.limits, self.metrics)
        self._certs = ClientCertSource(config.tls)
        self._drop = {
            u.name: frozenset(
                {self._credentials[u.name].header.lower().encode()}
                if u.name in self._credentials
                else ()
            )
            | self._certs.strip
            for u in config.upstreams
        }
        #: every HTTP request, through the access log (one line once answered)
        self._served = AccessLog(self._http, listener)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._served(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._forwarder.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._forwarder.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close the upstream session (when served without lifespan events)."""
        await self._forwarder.close()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes | None = scope.get("raw_path")
        if raw_path == b"/healthz":
            await send_bytes(send, 200, _HEALTH, list(_JSON))
            return
        if raw_path == b"/metrics" and self.config.metrics:
            headers = [(b"content-type", b"text/plain; version=0.0.4")]
            await send_bytes(send, 200, self.metrics.render(), headers)
            return
        started = time.perf_counter()
        upstream = await self._handle(scope, raw_path, receive, send)
        self.metrics.served(upstream).observe(time.perf_counter() - started)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        reason: str,
        message: str | None = None,
        *,
        close: bool = False,
        task_id: str | None = None,
    ) -> None:
        """Refuse before any decision (nothing usable to decide on): counted, and audited
        as ``gateway.refused`` at the rates of ``refusals`` (``task_id``: the task of
        the verified token it came with, if any)."""
        self.metrics.decided("refused", reason).inc()
        record_refusal(scope, reason)
        audit_refusal(
            self._refusals,
            scope,
            listener=self._listener,
            reason=reason,
            status=status,
            task_id=task_id,
        )
        text = message or MESSAGES.get(status, "refused")
        await send_answer(send, refusal(status, reason, text), close=close)

    async def _handle(
        self, scope: Scope, raw_path: bytes | None, receive: Receive, send: Send
    ) -> str:
        """Serve one request; return the upstream's name (``-`` if none) for metrics."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        try:
            declared = check_framing(headers)
            if raw_path is None:
                raise InvalidInput("request.path", "the server passed no raw path")
            path = check_path(raw_path, allow_non_ascii=self.config.normalization.allow_non_ascii)
            query = check_query(scope.get("query_string", b""))
        except InvalidInput as err:
            await self._refuse(scope, send, 400, err.reason, err.message, close=True)
            return "-"
        chunked = declared is None and any(n == b"transfer-encoding" for n, _ in headers)
        has_body = chunked or bool(declared)
        found = self.config.upstream_for(path)
        method: str = scope["method"]
        matched = found[0].routes.match(method, found[1]) if found else None
        if found is None or matched is None:
            await self._refuse(scope, send, 403, "route.unmapped", close=has_body)
            return found[0].name if found else "-"
        upstream, rest = found
        if declared is not None and declared > self.config.limits.max_request_body:
            await self._refuse(scope, send, 413, "request.too_large", close=True)
            return upstream.name
        try:
            client_cert = self._certs.from_scope(scope)
            token, proof = credentials_of(headers, client_cert=client_cert)
        except ZerolaneError as err:
            status = status_of(err.kind)
            close = has_body or err.kind is Refusal.INVALID
            await self._refuse(scope, send, status, err.reason, err.message, close=close)
            return upstream.name
        route, values = matched
        request = DecideInput(
            method=method,
            url=self.config.public_url + path,
            action=route.action,
            resource=route.resource_for(values),
            destination=upstream.destination,
            sensitivity=route.sensitivity or upstream.default_sensitivity,
            audience=self.config.audience,
            client_cert=client_cert,
            shadow=route.shadow,
        )
        target = path + (f"?{query}" if query else "")
        verified: Verified | None = None
        if not has_body:
            request = dataclasses.replace(
                request,
                digest=request_digest(method, target, EMPTY),
                preview=_preview(method, path, query, None, headers),
            )
        else:  # the token and its proof first: only a verified holder's body is waited for
            verified = self._verify(token, proof, request)
            if verified is not None and verified.holder is not None:
                bound = await self._body(scope, receive, send, declared, verified)
                if bound is None:  # refused, or the client left: answered, or nobody to
                    return upstream.name
                receive = bound.receive
                if bound.digest is not None:
                    digest = request_digest(method, target, bound.digest)
                    shown = _preview(method, path, query, bound.body, headers)
                    request = dataclasses.replace(request, digest=digest, preview=shown)
        decision = await self._decide(token, proof, request, verified)
        record_decision(scope, decision)
        if not decision.allowed:
            await self._deny(send, decision, close=has_body)
            return upstream.name
        out = self._outgoing(
            upstream, method, rest, query, headers, decision, declared, chunked, note_of(scope)
        )
        if has_body:  # a streamed body too slow: refused while forwarding, audited
            out = dataclasses.replace(out, refused=self._refused_while_forwarding(scope, decision))
        await self._forwarder.forward(out, receive, send)
        return upstream.name

    def _refused_while_forwarding(
        self, scope: Scope, decision: Decision
    ) -> Callable[[str, int], None]:
        """Audit a refusal made while forwarding an allowed request (its streamed body
        too slow): ``gateway.refused`` with its task, at the rates of ``refusals``; the
        allow stays audited as it was decided."""

        def refused(reason: str, status: int) -> None:
            audit_refusal(
                self._refusals,
                scope,
                listener=self._listener,
                reason=reason,
                status=status,
                task_id=decision.task_id,
            )

        return refused

    def _verify(self, token: str, proof: str | None, request: DecideInput) -> Verified | None:
        """The request's credentials checked before its body is read; None when the
        decider failed (the decision then fails closed)."""
        try:
            return self._decider.verify(token, proof, request)
        except Exception as err:  # a bug: the decision refuses it (never allows)
            logger.error("the credentials could not be checked: %s", type(err).__name__)
            return None

    async def _body(
        self, scope: Scope, receive: Receive, send: Send, declared: int | None, verified: Verified
    ) -> BoundBody | None:
        """The verified request's body, bound (:func:`bind_body`) within
        ``[limits] body_timeout``; None when it was refused (400 past its length, 408
        too slow: audited as ``gateway.refused``, with its task) or the client left.
        Either way the proof is spent: it is never decided."""
        holder = verified.holder
        task_id = holder.claims.task_id if holder is not None else None
        try:
            limits = self.config.limits
            bound = await bind_body(
                receive, declared, True, limits.body_timeout, limits.body_idle_timeout
            )
        except InvalidInput as err:
            await self._discard(verified)
            await self._refuse(
                scope, send, 400, err.reason, err.message, close=True, task_id=task_id
            )
            return None
        except BodyTimedOut as err:
            await self._discard(verified)
            await self._refuse(
                scope, send, 408, BODY_TIMEOUT, str(err), close=True, task_id=task_id
            )
            return None
        if bound is None:  # the client left mid-upload: nobody is left to answer
            await self._discard(verified)
            logger.info(
                "client left before its request body was complete: nothing decided or "
                "forwarded (%s %s)",
                scope.get("method", "-"),
                safe_path(scope),
            )
        return bound

    async def _discard(self, verified: Verified) -> None:
        """Spend the proof of a verified request never decided (a write: off the loop)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._decider.discard, verified)
        except Exception as err:  # the request is refused whatever happens here
            logger.warning("a refused request's proof could not be spent: %s", type(err).__name__)

    async def _decide(
        self, token: str, proof: str | None, request: DecideInput, verified: Verified | None
    ) -> Decision:
        started = time.perf_counter()
        try:
            decision = await self._decider.decide_async(token, proof, request, checked=verified)
        except Exception as err:  # a bug or an unwrapped store error: refuse, never allow
            logger.error("the decision failed: %s", type(err).__name__)
            decision = Decision("", False, ("decision.error",), (), None, Refusal.UNAVAILABLE)
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        if decision.shadow is not None:  # counted apart: never mistaken for an allow
            self.metrics.decided(decision.outcome, decision.shadow.reasons[0]).inc()
        else:
            reason = decision.reasons[0] if decision.reasons else "ok"
            self.metrics.decided(decision.outcome, reason).inc()
        return decision

    async def _deny(self, send: Send, decision: Decision, *, close: bool) -> None:
        await send_answer(send, denial(decision), close=close)

    def _outgoing(
        self,
        upstream: Upstream,
        method: str,
        rest: str,
        query: str,
        headers: list[tuple[bytes, bytes]],
        decision: Decision,
        declared: int | None,
        chunked: bool,
        note: AccessNote | None = None,
    ) -> Outgoing:
        task_id = decision.task_id or ""
        forwarded = request_headers(headers, drop=self._drop[upstream.name])
        source = self._credentials.get(upstream.name)
        if source is not None:
            # expired (0) when unknown: a credential never outlives its verified token
            forwarded.append(source.header_for(task_id, decision.expires_at or 0.0))
        forwarded.extend(allow_headers(decision))
        if declared:
            forwarded.append(("Content-Length", str(declared)))
        url = upstream.base_url + rest + (f"?{query}" if query else "")
        length = declared if declared is not None else (None if chunked else 0)
        return Outgoing(method, url, forwarded, length, upstream.name, decision.decision_id, note)


def _preview(
    method: str, path: str, query: str, body: bytes | None, headers: list[tuple[bytes, bytes]]
) -> Callable[[], Mapping[str, object]]:
    """What an approver is shown of this request (built only if an approval is asked
    for): method, path, masked query, and the body's size and masked excerpt."""

    def build() -> Mapping[str, object]:
        kind = next((v for n, v in headers if n == b"content-type"), b"")
        return http_preview(method, path, query, body, kind.decode("latin-1"))

    return build
