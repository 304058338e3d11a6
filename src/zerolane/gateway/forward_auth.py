"""Forward-auth: a proxy you already run (nginx, Traefik, Envoy) enforces, zerolane decides.

The proxy asks this endpoint about each request before forwarding it; the answer is 200
(allow, with ``X-Zerolane-Task`` and ``X-Zerolane-Decision``) or 401/403/503 (deny, JSON
``{error, reason, reasons, decision_id}``; ``WWW-Authenticate`` on 401). How the proxy
names the original request depends on the proxy, chosen by ``proxy`` in the config:

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
proof must name ``public_url`` + the original path, exactly as the proxy forwards it.

A certificate-bound task token (RFC 8705 ``cnf.x5t#S256``) is decided with the client
certificate the proxy verified and passes in a header (``[tls] client_cert_header``),
believed **only** when the check request comes from one of ``[tls] trusted_proxies``
(:class:`~zerolane.gateway.client_cert.ClientCertSource`, the HTTP gateway's rules):
from anyone else the header is ignored, so the token is refused (``mtls.cert_missing``).
"""

from __future__ import annotations

import logging
import re
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.config import HttpLimits, TlsConfig, parse_http_limits, parse_tls
from zerolane.errors import InvalidInput, Unauthenticated, Unavailable
from zerolane.gateway.access_log import (
    AccessLog,
    record_decision,
    record_error,
    record_refusal,
)
from zerolane.gateway.client_cert import ClientCertSource
from zerolane.gateway.inproc import RequestDecider, decide_on_loop
from zerolane.tasks.auth import request_credentials
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tokens.rfc9449 import DpopError, normalize_htu
from zerolane.types import Outcome, Sensitivity

PROXIES = ("nginx", "traefik", "envoy")
_METHOD = re.compile(r"[A-Z]{1,16}")
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"[\x21-\x7e]+")
_BAD_IN_SEGMENT = ("/", "\\", "%", ";", "*")
_ALGS = 'algs="ES256 EdDSA"'
#: the ``[tls]`` keys forward-auth reads: it serves plain HTTP to its proxy, which
#: terminates TLS and passes the client certificate it verified in a header
_TLS_KEYS = frozenset({"client_cert_header", "trusted_proxies"})
log = logging.getLogger(__name__)


class _Refused(Exception):
    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class RouteRule:
    """``method`` (or ``*``) and ``path`` (``{var}`` segments) -> what the request does."""

    method: str
    path: str
    action: str
    resource: str
    sensitivity: str | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return () if self.path == "/" else tuple(self.path[1:].split("/"))

    def match(self, method: str, segments: Sequence[str]) -> dict[str, str] | None:
        """The path variables when this rule maps the request, else ``None``."""
        if self.method not in ("*", method) or len(segments) != len(self.segments):
            return None
        values: dict[str, str] = {}
        for pattern, segment in zip(self.segments, segments, strict=True):
            var = _VAR.fullmatch(pattern)
            if var:
                values[var.group(1)] = segment
            elif pattern != segment:
                return None
        return values

    def resource_for(self, values: Mapping[str, str]) -> str:
        """The resource template filled with the matched path variables."""
        return _VAR.sub(lambda m: values[m.group(1)], self.resource)


@dataclass(frozen=True, slots=True)
class ForwardAuthConfig:
    public_url: str
    destination: str
    routes: tuple[RouteRule, ...]
    proxy: str = "nginx"
    endpoint: str = "/forward-auth"
    audience: str | None = None
    host: str = "127.0.0.1"
    port: int = 8790
    #: ``client_cert_header`` and ``trusted_proxies``: where a client certificate comes from
    tls: TlsConfig = field(default_factory=TlsConfig)
    #: how much of a request head the listener reads, and for how long (``[http]``);
    #: the proxy's forwarded headers must fit
    http: HttpLimits = field(default_factory=HttpLimits)

    @property
    def origin(self) -> str:
        return self.public_url.rstrip("/")


def _text(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.pop(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidInput("forward_auth.config", f"{where}{key} must be a non-empty string")
    return value


def _rule(raw: object, index: int) -> RouteRule:
    where = f"routes[{index}]."
    if not isinstance(raw, dict):
        raise InvalidInput("forward_auth.config", f"routes[{index}] must be a table")
    table = dict(raw)
    method, path = _text(table, "method", where).upper(), _text(table, "path", where)
    action, resource = _text(table, "action", where), _text(table, "resource", where)
    sensitivity = table.pop("sensitivity", None)
    if table:
        raise InvalidInput("forward_auth.config", f"unknown key(s) in {where}: {sorted(table)}")
    if method != "*" and not _METHOD.fullmatch(method):
        raise InvalidInput("forward_auth.config", f"{where}method {method!r} is not a method")
    rule = RouteRule(method, path, action, resource, sensitivity)
    names = [m.group(1) for s in rule.segments if (m := _VAR.fullmatch(s))]
    literals = [s for s in rule.segments if not _VAR.fullmatch(s)]
    if not path.startswith("/") or (path != "/" and not all(map(_safe_segment, literals))):
        raise InvalidInput("forward_auth.config", f"{where}path {path!r} is not a clean path")
    if len(set(names)) != len(names):
        raise InvalidInput("forward_auth.config", f"{where}path repeats a variable")
    unknown = set(_VAR.findall(resource)) - set(names)
    if unknown or not _NAME.fullmatch(resource):
        raise InvalidInput("forward_auth.config", f"{where}resource names {sorted(unknown)}")
    if sensitivity is not None:
        try:
            Sensitivity.parse(str(sensitivity))
        except ValueError as err:
            raise InvalidInput("forward_auth.config", f"{where}sensitivity: {err}") from None
    return rule


def _is_origin(url: str) -> bool:
    try:
        normalize_htu(url)  # a valid http(s) URL with a valid host, no userinfo
    except DpopError:
        return False
    parts = urlsplit(url)
    return not (parts.path.strip("/") or parts.query or parts.fragment or url.endswith(("?", "#")))


def parse_config(doc: Mapping[str, Any]) -> ForwardAuthConfig:
    """Validate a forward-auth config document; unknown keys are refused."""
    table = dict(doc)
    public_url = _text(table, "public_url", "")
    if not _is_origin(public_url):
        raise InvalidInput("forward_auth.config", "public_url is an origin: scheme://host[:port]")
    proxy = _text(table, "proxy", "", "nginx")
    if proxy not in PROXIES:
        raise InvalidInput("forward_auth.config", f"proxy must be one of {', '.join(PROXIES)}")
    endpoint = _text(table, "endpoint", "", "/forward-auth")
    if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", endpoint) or endpoint == "/healthz":
        raise InvalidInput("forward_auth.config", f"endpoint {endpoint!r} is not a clean path")
    destination = _text(table, "destination", "")
    audience = table.pop("audience", None)
    if audience is not None and (not isinstance(audience, str) or not audience):
        raise InvalidInput("forward_auth.config", "audience must be a non-empty string")
    host = _text(table, "host", "", "127.0.0.1")
    port = table.pop("port", 8790)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidInput("forward_auth.config", "port must be an integer 1..65535")
    raw_routes = table.pop("routes", None)
    if not isinstance(raw_routes, list) or not raw_routes:
        raise InvalidInput("forward_auth.config", "routes must be a non-empty list")
    tls = _tls(table.pop("tls", {}))
    try:
        http = parse_http_limits(table.pop("http", {}))
    except InvalidInput as err:
        raise InvalidInput("forward_auth.config", err.message) from None
    if table:
        raise InvalidInput("forward_auth.config", f"unknown key(s): {sorted(table)}")
    routes = tuple(_rule(raw, i) for i, raw in enumerate(raw_routes))
    return ForwardAuthConfig(
        public_url, destination, routes, proxy, endpoint, audience, host, port, tls, http
    )


def _tls(raw: object) -> TlsConfig:
    """``[tls]``: only ``client_cert_header`` and ``trusted_proxies`` (both or neither)."""
    if not isinstance(raw, dict):
        raise InvalidInput("forward_auth.config", "tls must be a table")
    unknown = sorted(set(raw) - _TLS_KEYS)
    if unknown:
        raise InvalidInput(
            "forward_auth.config",
            f"unknown key(s) in tls: {unknown} (forward-auth serves plain HTTP to its proxy: "
            "only client_cert_header and trusted_proxies)",
        )
    try:
        return parse_tls(raw)
    except InvalidInput as err:
        raise InvalidInput("forward_auth.config", err.message) from None


def load_config(path: Path) -> ForwardAuthConfig:
    """Read a config file: TOML (``.toml``), else YAML or JSON."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise InvalidInput("forward_auth.config", f"{path}: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidInput("forward_auth.config", f"{path}: expected a table")
    return parse_config(doc)


def _safe_segment(segment: str) -> bool:
    return (
        bool(_NAME.fullmatch(segment))
        and segment not in (".", "..")
        and not any(bad in segment for bad in _BAD_IN_SEGMENT)
    )


def split_path(target: str) -> tuple[str, tuple[str, ...]]:
    """The raw path of ``path[?query]`` and its decoded segments, or refused.

    Refused: no leading ``/``, non-printable or non-ASCII bytes, empty segments (``//``,
    a trailing ``/``), ``;`` parameters, and segments that are, or decode to, ``.``,
    ``..`` or anything with ``/``, ``\\``, ``%``, ``;`` or ``*`` (encoded slashes,
    double encoding, traversal): the decision is on exactly what is forwarded.
    """
    path = target.split("?", 1)[0]
    if not path.startswith("/") or not _NAME.fullmatch(path):
        raise _Refused("request.path")
    if path == "/":
        return path, ()
    decoded: list[str] = []
    for raw in path[1:].split("/"):
        if ";" in raw:
            raise _Refused("request.path")
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise _Refused("request.path") from None
        if not _safe_segment(segment):
            raise _Refused("request.path")
        decoded.append(segment)
    return path, tuple(decoded)


def _one(request: Request, name: str) -> str:
    values = request.headers.getlist(name)
    if len(values) != 1 or not values[0]:
        raise _Refused("forward_auth.headers")
    return values[0]


def _challenge(reason: str) -> str:
    """``WWW-Authenticate`` for a 401 (RFC 6750 section 3, RFC 9449 section 7.1); a
    refused certificate-bound token (``mtls.*``, RFC 8705) is challenged with Bearer."""
    if reason == "auth.missing":
        return f"DPoP {_ALGS}"
    if reason.startswith("mtls."):
        return f'Bearer error="invalid_token", error_description="{reason}"'
    if reason.startswith("dpop."):
        error = "invalid_dpop_proof"
    elif reason.startswith("auth."):
        error = "invalid_request"
    else:
        error = "invalid_token"
    return f'DPoP error="{error}", error_description="{reason}", {_ALGS}'


def _deny(status: int, reasons: Sequence[str], decision_id: str | None) -> Response:
    status = status if status in (401, 503) else 403
    error = {401: "authentication required", 503: "decision unavailable"}.get(status, "denied")
    headers = {"Cache-Control": "no-store", "X-Zerolane-Reason": reasons[0]}
    if decision_id:
        headers["X-Zerolane-Decision"] = decision_id
    if status == 401:
        headers["WWW-Authenticate"] = _challenge(reasons[0])
    body = {"error": error, "reason": reasons[0], "reasons": list(reasons)}
    return JSONResponse({**body, "decision_id": decision_id}, status, headers)


def _allow(decision: Decision) -> Response:
    headers = {
        "Cache-Control": "no-store",
        "X-Zerolane-Task": decision.task_id or "",
        "X-Zerolane-Decision": decision.decision_id,
    }
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
                return JSONResponse({"error": "not found", "reason": "not_found"}, 404)
            method, target = original
            path, segments = split_path(target)
            url = self.config.origin + path
            if not _METHOD.fullmatch(method):
                raise _Refused("forward_auth.headers")
            # the proxy's header, only from a trusted proxy (mtls.cert_malformed: refused)
            client_cert = self._certs.from_scope(request.scope)
            token, proof = request_credentials(
                request.headers.getlist("authorization"),
                request.headers.getlist("dpop"),
                client_cert=client_cert,
            )
            request_input = self._map(method, url, segments, client_cert)
        except _Refused as refused:
            return await self._refuse(request.scope, refused.reason, refused.status, method, url)
        except Unauthenticated as err:
            return await self._refuse(request.scope, err.reason, 401, method, url)
        try:
            decision = await decide_on_loop(self._decider, token, proof, request_input)
        except Exception:  # fail closed: a decider that raises denies
            log.exception("forward-auth: the decider failed")
            record_refusal(request.scope, "decide.error")
            return _deny(503, ["decide.error"], None)
        record_decision(request.scope, decision)
        if decision.allowed:
            return _allow(decision)
        return _deny(decision.status, decision.reasons or ("decision.deny",), decision.decision_id)

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
                )
        raise _Refused("route.unmapped")

    async def _refuse(
        self, scope: Scope, reason: str, status: int, method: str, url: str
    ) -> Response:
        """Deny before any decision; recorded as a decision event when an audit log is set."""
        record_refusal(scope, reason)
        if self._audit is None:
            return _deny(status, [reason], None)
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
            return _deny(503, ["audit.write"], decision_id)
        return _deny(status, [reason], decision_id)


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
