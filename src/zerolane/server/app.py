"""The control-plane HTTP API (FastAPI; OpenAPI at ``/openapi.json``)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from zerolane import __version__
from zerolane.audit.log import event_json
from zerolane.errors import ZerolaneError
from zerolane.gateway.access_log import AccessLog, record_error
from zerolane.gateway.edge.http import error_refusal, refusal
from zerolane.identity.bundle import X509_USE
from zerolane.identity.bundle import public_jwk as certificate_jwk
from zerolane.identity.service import AttestRequest
from zerolane.server.approval_routes import router as approval_router
from zerolane.server.deployment import Deployment
from zerolane.server.enforcement_point_routes import router as enforcement_point_router
from zerolane.server.grant_routes import router as grant_router
from zerolane.server.limits import MAX_BODY, BodyLimit
from zerolane.server.metrics import DetectionMetrics, Measured, Metrics, ResponseMetrics
from zerolane.server.oauth_routes import router as oauth_router
from zerolane.server.oauth_server import OAuthServer
from zerolane.server.posture_routes import router as posture_router
from zerolane.server.readiness import WriteReadiness
from zerolane.server.report_routes import router as report_router
from zerolane.server.schemas import (
    AttestBody,
    AttestResponse,
    ErrorBody,
    JoinTokenBody,
    RegisterBody,
    SpiffeIdBody,
    WorkloadOut,
)
from zerolane.server.security import Admin
from zerolane.server.task_routes import router as task_router
from zerolane.server.token_refusals import OPEN_PATH, token_refused
from zerolane.server.token_routes import router as token_router
from zerolane.store.records import Workload
from zerolane.tokens.rfc8705 import der_of

BUNDLE_REFRESH_HINT = 300
MAX_SEQ = 2**63 - 1  # audit sequence numbers are SQLite integers: signed 64-bit
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    413: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


def _error(status: int, reason: str, message: str, **extra: Any) -> Response:
    """The enforcement edge's refusal (the same error object as every listener's)."""
    return refusal(status, reason, message, extra=extra).response()


def _workload_out(w: Workload) -> WorkloadOut:
    return WorkloadOut(
        spiffe_id=w.spiffe_id,
        selectors=list(w.selectors),
        owner=w.owner,
        status=w.status.value,
        created_at=w.created_at,
        updated_at=w.updated_at,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ZerolaneError)
    async def _zerolane(request: Request, err: ZerolaneError) -> Response:
        record_error(request.scope, err.reason)
        return error_refusal(err).response()

    def invalid(request: Request, reason: str) -> None:
        record_error(request.scope, reason)
        if request.method == "POST" and request.url.path == OPEN_PATH:  # a token endpoint
            token_refused(request.app.state.deployment, request.scope, reason=reason, status=400)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> Response:
        problems = err.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            invalid(request, "request.malformed_json")
            return _error(400, "request.malformed_json", "the body is not valid JSON")
        if any(p.get("type") == "extra_forbidden" for p in problems):
            names = [".".join(str(x) for x in p["loc"][1:]) for p in problems]
            invalid(request, "request.unknown_field")
            return _error(400, "request.unknown_field", f"unknown field(s): {', '.join(names)}")
        details = [
            {"field": ".".join(str(x) for x in p["loc"][1:]), "problem": p["msg"]} for p in problems
        ]
        where = "request body" if all(p["loc"][:1] == ("body",) for p in problems) else "request"
        invalid(request, "request.invalid")
        return _error(400, "request.invalid", f"the {where} is invalid", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        reasons = {404: "request.not_found", 405: "request.method_not_allowed"}
        reason = reasons.get(err.status_code, "request.http")
        record_error(request.scope, reason)
        return _error(err.status_code, reason, str(err.detail))


def create_app(deployment: Deployment) -> FastAPI:
    """Build the API over an opened deployment. While it is served (its lifespan), the
    detectors of ``[detection]`` read the audit log in a thread of their own."""
    detection = deployment.detection if deployment.config.detection.enabled else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if detection is not None:
            detection.start()
        try:
            yield
        finally:
            if detection is not None:
                detection.stop()

    app = FastAPI(
        title="zerolane control plane",
        version=__version__,
        description="Workload identity, attestation, tasks and their decisions.",
        responses=_ERRORS,
        lifespan=lifespan,
    )
    metrics = Metrics()
    if detection is not None:
        metrics.registry.register(DetectionMetrics(detection))
        metrics.registry.register(ResponseMetrics(deployment.responder))
    app.state.deployment = deployment
    app.state.metrics = metrics
    app.state.readiness = WriteReadiness(deployment.stores)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(Measured, metrics=metrics)  # outside BodyLimit: 413s are counted
    app.add_middleware(AccessLog, listener="api")  # outermost: one line per request
    app.include_router(task_router)
    app.include_router(token_router)
    app.include_router(grant_router)
    app.include_router(enforcement_point_router)
    app.include_router(approval_router)
    app.include_router(report_router)
    app.include_router(posture_router)
    if deployment.config.oauth.enabled:  # standard MCP clients' authorization server
        app.state.oauth = OAuthServer(deployment)
        app.include_router(oauth_router)

    @app.post("/v1/attest", response_model=AttestResponse, tags=["identity"])
    def attest(body: AttestBody) -> AttestResponse:
        """Prove a workload's identity (join token, JWT or X.509-SVID); get a JWT-SVID,
        and with a ``csr`` an X.509-SVID from this trust domain's CA."""
        evidence: dict[str, object] = {"join_token": body.join_token, "jwt": body.jwt}
        if body.x509_svid is not None:
            evidence["x509_svid"] = {"chain": body.x509_svid, "proof": body.x509_proof}
        audience = [body.audience] if isinstance(body.audience, str) else body.audience
        request = AttestRequest(
            evidence=evidence,
            public_jwk=body.public_jwk,
            audience=audience,
            ttl=body.ttl,
            spiffe_id=body.spiffe_id,
            csr=body.csr,
        )
        try:
            attested = deployment.identity.attest_all(request)
        except ZerolaneError as err:
            metrics.attestations.labels("denied", err.reason).inc()
            raise
        metrics.attestations.labels("success", "ok").inc()
        issued, x509_svid = attested.svid, attested.x509
        return AttestResponse(
            svid=issued.token,
            spiffe_id=issued.spiffe_id,
            audience=list(issued.audience),
            expires_at=issued.expires_at,
            expires_in=issued.expires_at - issued.issued_at,
            x509_svid=x509_svid.chain_pem if x509_svid else None,
            x509_bundle=x509_svid.bundle_pem if x509_svid else None,
            x509_expires_at=x509_svid.expires_at if x509_svid else None,
        )

    @app.get("/.well-known/jwks.json", tags=["keys"])
    def jwks() -> dict[str, Any]:
        """Public keys that verify tokens issued here (JWK Set, public members only)."""
        return {"keys": [{**k, "use": "sig"} for k in deployment.keyring.public_keys()]}

    @app.get("/.well-known/spiffe-bundle", tags=["keys"])
    def spiffe_bundle() -> dict[str, Any]:
        """This trust domain's SPIFFE bundle (JWK Set with spiffe_sequence): the JWT
        authorities (``jwt-svid``) and, once it exists, the X.509 CA (``x509-svid``)."""
        keys = [
            {k: v for k, v in key.items() if k != "alg"} | {"use": "jwt-svid"}
            for key in deployment.keyring.public_keys()
        ]
        roots = deployment.x509_ca.roots()
        keys.extend(
            certificate_jwk(cert)
            | {"use": X509_USE, "x5c": [base64.b64encode(der_of(cert)).decode("ascii")]}
            for cert in roots
        )
        return {
            "keys": keys,
            # grows with every key rotation (a CA created later in an older home is
            # picked up at the next refresh, without a new sequence number)
            "spiffe_sequence": deployment.keyring.sequence(),
            "spiffe_refresh_hint": BUNDLE_REFRESH_HINT,
        }

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> Response:
        try:
            deployment.stores.schema_version()
            deployment.keyring.active_kid()
            deployment.revocations.ensure_reachable()  # past its grace window: not ready
            app.state.readiness.check()  # the store can write, the audit sink accepts
        except ZerolaneError as err:
            return _error(503, err.reason, err.message)
        except Exception:
            return _error(503, "store.unavailable", "the store cannot be reached")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/admin/workloads", response_model=WorkloadOut, status_code=201, tags=["admin"])
    def register(body: RegisterBody, actor: Admin) -> WorkloadOut:
        workload = deployment.registry.register(
            body.spiffe_id, selectors=body.selectors, owner=body.owner, actor=actor
        )
        return _workload_out(workload)

    @app.get("/v1/admin/workloads", response_model=list[WorkloadOut], tags=["admin"])
    def list_workloads(_: Admin) -> list[WorkloadOut]:
        return [_workload_out(w) for w in deployment.registry.list()]

    @app.get("/v1/admin/workload", response_model=WorkloadOut, tags=["admin"])
    def show_workload(spiffe_id: Annotated[str, Query(max_length=4096)], _: Admin) -> WorkloadOut:
        return _workload_out(deployment.registry.get(spiffe_id))

    @app.post("/v1/admin/workloads/disable", response_model=WorkloadOut, tags=["admin"])
    def disable(body: SpiffeIdBody, actor: Admin) -> WorkloadOut:
        workload = deployment.disable_workload(body.spiffe_id, actor)
        return _workload_out(workload)

    @app.post("/v1/admin/join-tokens", status_code=201, tags=["admin"])
    def join_token(body: JoinTokenBody, actor: Admin) -> dict[str, Any]:
        issued = deployment.join_tokens.create(body.spiffe_id, ttl=body.ttl, actor=actor)
        return {
            "join_token": issued.token,
            "spiffe_id": issued.record.spiffe_id,
            "expires_at": int(issued.record.expires_at),
        }

    @app.post("/v1/admin/keys/rotate", tags=["admin"])
    def rotate(actor: Admin) -> dict[str, Any]:
        return {"kid": deployment.rotate_keys(actor)}

    @app.get("/v1/admin/audit", tags=["admin"])
    def audit(
        _: Admin,
        after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        records = deployment.stores.read_events(after, limit)
        return {"events": [event_json(r) for r in records]}

    return app
