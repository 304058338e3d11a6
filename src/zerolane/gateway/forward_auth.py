"""Forward-auth: a proxy you already run (nginx, Traefik, Envoy) enforces, zerolane decides.

The proxy asks this endpoint about each request before forwarding it; the answer is 200
(allow, with ``X-Zerolane-Task`` and ``X-Zerolane-Decision``; a shadow allow, of a
route in ``mode = "shadow"``, adds ``X-Zerolane-Shadow``: its would-deny reasons) or a
refusal as every enforcement point renders it (:mod:`zerolane.gateway.edge.http`): 400
for an unsafe path or repeated credentials, 401, 403 or 503 for a deny, JSON ``{error,
reason, message, reasons, decision_id}``, ``X-Zerolane-Reason``, ``WWW-Authenticate``
on 401.
(nginx's ``auth_request`` passes 401 and 403 on and turns any other refusal into a
500: with ``proxy = "nginx"`` a 400 is answered 403, same reason and body.) How the
proxy names the original request depends on the proxy, chosen by ``proxy`` in the
config:

``nginx``    ``auth_request``: ``X-Original-Method`` and ``X-Original-URI`` (set with
             ``proxy_set_header`` in the auth location)
``traefik``  ForwardAuth: ``X-Forwarded-Method``, ``-Proto``, ``-Host`` and ``-Uri``
``envoy``    ``ext_authz`` HTTP service: the check request's own method, and its path
             with the configured ``path_prefix`` (our ``endpoint``) in front

Those headers are trusted: they come from the proxy, which overwrites what a client
sent. So this endpoint must only be reachable by the proxy (bind it to loopback or a
private interface), and only the configured proxy's convention is read. The original
request is mapped with a route table (method, path template -> action, resource
template, sensitivity; unmapped -> deny) onto ``public_url`` and decided: the DPoP
proof must name ``public_url`` + the original path, exactly as the proxy forwards it,
and the task token must name ``audience`` (by default ``public_url``'s origin): a token
meant for another enforcement point of the trust domain is refused ``token.audience``.

A certificate-bound task token (RFC 8705 ``cnf.x5t#S256``) is decided with the client
certificate the proxy verified and passes in a header (``[tls] client_cert_header``),
believed **only** when the check request comes from one of ``[tls] trusted_proxies``
(:class:`~zerolane.gateway.client_cert.ClientCertSource`, the HTTP gateway's rules):
from anyone else the header is ignored, so the token is refused (``mtls.cert_missing``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, Refusal, Unavailable, ZerolaneError
from zerolane.gateway.access_log import (
    AccessLog,
    record_decision,
    record_error,
    record_refusal,
)
from zerolane.gateway.client_cert import ClientCertSource
from zerolane.gateway.edge.http import (
    Answer,
    allow_headers,
    credentials_of,
    denial,
    refusal,
    status_of,
)
from zerolane.gateway.forward_auth_config import METHOD as _METHOD
from zerolane.gateway.forward_auth_config import PRINTABLE as _NAME
from zerolane.gateway.forward_auth_config import ForwardAuthConfig
from zerolane.gateway.forward_auth_config import safe_segment as _safe_segment
from zerolane.gateway.inproc import RequestDecider, decide_on_loop
from zerolane.gateway.normalize import METHOD_OVERRIDES
from zerolane.paths import check_path
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tokens.rfc9449 import DpopError, normalize_htu
from zerolane.types import Outcome

log = logging.getLogger(__name__)
#: what each refusal made here before deciding says
_MESSAGES = {
    "request.path": "the original request's path is not safe to decide on",
    "forward_auth.headers": "the proxy did not name the original request as configured",
    "forward_auth.host": "the proxy named another origin than public_url",
    "route.unmapped": "no route maps the original request",
    "request.method_override": "the request names another method in a method-override "
    "header (X-HTTP-Method-Override and the like): decided methods are never overridden",
}


class _Refused(Exception):
    def __init__(self, reason: str, status: int = 403, message: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.message = message or _MESSAGES.get(reason, "refused")


def split_path(target: str) -> tuple[str, tuple[str, ...]]:
    """The raw path of ``path[?query]`` and its decoded segments, or refused (400
    ``request.path``).

    Refused: what the one path rule refuses (:func:`zerolane.paths.check_path`, the
    HTTP gateway's: traversal, encoded slashes, double or non-canonical encoding...),
    and, for matching the route table's segments, non-printable or non-ASCII bytes,
    a trailing ``/``, and segments that decode to anything with ``/``, ``\\``, ``%``,
    ``;`` or ``*``: the decision is on exactly what is forwarded.
    """
    path = target.split("?", 1)[0]
    try:
        check_path(path.encode("latin-1"))
    except InvalidInput as err:
        raise _Refused("request.path", 400, err.message) from None
    if not _NAME.fullmatch(path):
        raise _Refused("request.path", 400)
    if path == "/":
        return path, ()
    decoded: list[str] = []
    for raw in path[1:].split("/"):
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise _Refused("request.path", 400) from None
        if not _safe_segment(segment):
            raise _Refused("request.path", 400)
        decoded.append(segment)
    return path, tuple(decoded)


def _one(request: Request, name: str) -> str:
    values = request.headers.getlist(name)
    if len(values) != 1 or not values[0]:
        raise _Refused("forward_auth.headers")
    return values[0]


def _allow(decision: Decision) -> Response:
    headers = {"Cache-Control": "no-store", **dict(allow_headers(decision))}
    return Response(status_code=200, headers=headers)


class ForwardAuth:
    """The check endpoint (an ASGI app accepting any method), over a decider."""

    def __init__(
        self, config: ForwardAuthConfig, decider: RequestDecider, audit: AuditLog | None = None
    ) -> None:
        self.config = config
        self._decider = decider
        self._audit = audit
        self._expected_origin = normalize_htu(config.origin + "/")
        self._certs = ClientCertSource(config.tls)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw_path = scope.get("raw_path") or scope["path"].encode("latin-1")
        response = await self.check(request, raw_path.decode("latin-1"))
        await response(scope, receive, send)

    def _original(self, request: Request, raw_path: str) -> tuple[str, str] | None:
        """(method, path?query) of the original request; ``None``: not our endpoint."""
        endpoint, proxy = self.config.endpoint, self.config.proxy
        if proxy == "envoy":
            if raw_path != endpoint and not raw_path.startswith(endpoint + "/"):
                return None
            query = request.scope.get("query_string", b"").decode("latin-1")
            path = raw_path[len(endpoint) :] or "/"
            return request.method, path + (f"?{query}" if query else "")
        if raw_path != endpoint:
            return None
        if proxy == "nginx":
            return _one(request, "x-original-method"), _one(request, "x-original-uri")
        forwarded = f"{_one(request, 'x-forwarded-proto')}://{_one(request, 'x-forwarded-host')}/"
        try:
            same_origin = normalize_htu(forwarded) == self._expected_origin
        except DpopError:
            same_origin = False
        if not same_origin:
            raise _Refused("forward_auth.host")
        return _one(request, "x-forwarded-method"), _one(request, "x-forwarded-uri")

    async def check(self, request: Request, raw_path: str) -> Response:
        method, url = request.method, self.config.origin + raw_path
        try:
            original = self._original(request, raw_path)
            if original is None:
                record_error(request.scope, "not_found")
                return refusal(404, "not_found", "not the check endpoint").response()
            method, target = original
            path, segments = split_path(target)
            url = self.config.origin + path
            if not _METHOD.fullmatch(method):
                raise _Refused("forward_auth.headers")
            if any(name in METHOD_OVERRIDES for name, _ in request.headers.raw):
                # the proxy forwards the request's headers upstream, where this one may
                # turn the decided method into another: refused, as the gateway drops it
                raise _Refused("request.method_override", 400)
            # the proxy's header, only from a trusted proxy (mtls.cert_malformed: refused)
            client_cert = self._certs.from_scope(request.scope)
            token, proof = credentials_of(request.headers.raw, client_cert=client_cert)
            request_input = self._map(method, url, segments, client_cert)
        except _Refused as refused:
            return await self._refuse(
                request.scope, refused.reason, refused.status, refused.message, method, url
            )
        except ZerolaneError as err:  # the credentials: 400 repeated, 401 missing
            status = status_of(err.kind)
            return await self._refuse(request.scope, err.reason, status, err.message, method, url)
        try:
            decision = await decide_on_loop(self._decider, token, proof, request_input)
        except Exception:  # fail closed: a decider that raises denies
            log.exception("forward-auth: the decider failed")
            record_refusal(request.scope, "decide.error")
            failed = Decision("", False, ("decide.error",), (), None, Refusal.UNAVAILABLE)
            return self._sent(denial(failed))
        record_decision(request.scope, decision)
        if decision.allowed:
            return _allow(decision)
        return self._sent(denial(decision))

    def _map(
        self, method: str, url: str, segments: Sequence[str], client_cert: bytes | None
    ) -> DecideInput:
        for rule in self.config.routes:
            values = rule.match(method, segments)
            if values is not None:
                return DecideInput(
                    method=method,
                    url=url,
                    action=rule.action,
                    resource=rule.resource_for(values),
                    destination=self.config.destination,
                    sensitivity=rule.sensitivity,
                    audience=self.config.audience,
                    client_cert=client_cert,
                    shadow=self.config.shadow_of(rule),  # a policy deny answers 200
                )
        raise _Refused("route.unmapped")

    async def _refuse(
        self, scope: Scope, reason: str, status: int, message: str, method: str, url: str
    ) -> Response:
        """Deny before any decision; recorded as a decision event when an audit log is set."""
        record_refusal(scope, reason)
        if self._audit is None:
            return self._sent(refusal(status, reason, message))
        decision_id = uuid.uuid4().hex
        details = {
            "decision_id": decision_id,
            "decision": "deny",
            "reasons": [reason],
            "policies": [],
            "method": method[:16],
            "url": url.split("?", 1)[0][:2048],
            "enforcement_point": "forward-auth",
        }
        try:
            await run_in_threadpool(
                self._audit.record,
                "decision",
                actor=Actor("workload", "unauthenticated"),
                subject="unknown",
                outcome=Outcome.DENIED,
                reason=reason,
                details=details,
            )
        except Unavailable:
            record_refusal(scope, "audit.write")
            failed = "the refusal could not be recorded; refused"
            return self._sent(refusal(503, "audit.write", failed, decision_id=decision_id))
        return self._sent(refusal(status, reason, message, decision_id=decision_id))

    def _sent(self, answer: Answer) -> Response:
        """A refusal as this proxy can pass it on: nginx's ``auth_request`` relays only 401
        and 403 and turns anything else into a 500, so a request refused as invalid (400:
        an unsafe path, repeated credentials) is answered 403 there, with the same
        reason, body and headers; Traefik and Envoy relay the 400 as it is."""
        if self.config.proxy == "nginx" and answer.status == 400:
            answer = Answer(403, answer.body, answer.headers)
        return answer.response()


async def _healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    config: ForwardAuthConfig,
    decider: RequestDecider,
    audit: AuditLog | None = None,
    *,
    listener: str = "forward-auth",
) -> Starlette:
    """The forward-auth ASGI app: ``GET /healthz`` and the check endpoint; one access
    line per check (the check request's own method and path, never the original's
    query), named ``listener``."""
    check = ForwardAuth(config, decider, audit)
    return Starlette(
        routes=[
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/{path:path}", check),
        ],
        middleware=[Middleware(AccessLog, listener=listener)],
    )
