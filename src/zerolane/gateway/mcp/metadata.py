"""OAuth protected resource metadata (RFC 9728), which the 401 challenges point at.

Per the MCP authorization spec, a client that calls without (valid) credentials gets a
401 whose ``WWW-Authenticate`` names the metadata URL (rendered by the enforcement edge,
:func:`zerolane.gateway.edge.http.www_authenticate`); the metadata names the resource
(the audience its tokens must carry, RFC 8707) and the authorization servers (the
zerolane control plane), and says tokens must be sender-constrained: DPoP-bound
(RFC 9449), or, where the gateway reads client certificates (``[tls]``), bound to the
client certificate instead (RFC 8705, ``tls_client_certificate_bound_access_tokens``).
"""

from __future__ import annotations

from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zerolane.errors import InvalidInput
from zerolane.gateway.mcp.config import GatewayConfig
from zerolane.tasks.scope import DETAILS_TYPE
from zerolane.tokens.algorithms import DPOP_ALGS

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def resource_metadata(config: GatewayConfig, *, bearer_clients: bool = False) -> dict[str, object]:
    """The RFC 9728 document, validated by the SDK's model, with URLs as configured.

    An audience the model would spell differently (case, default port) is refused:
    clients compare it with the resource they asked tokens for. Where the gateway reads
    client certificates, certificate-bound tokens are accepted too (RFC 9728 section 2):
    DPoP is then no longer the only binding (``dpop_bound_access_tokens_required``);
    neither is it where the deployment lets standard clients without a key have short
    bearer tokens (``bearer_clients``, ``[oauth] allow_bearer_clients``).
    """
    mtls = config.client_certificates
    metadata = ProtectedResourceMetadata(
        resource=AnyHttpUrl(config.audience),
        authorization_servers=[AnyHttpUrl(url) for url in config.authorization_servers],
        bearer_methods_supported=["header"],
        dpop_signing_alg_values_supported=list(DPOP_ALGS),
        dpop_bound_access_tokens_required=not (mtls or bearer_clients),
        tls_client_certificate_bound_access_tokens=True if mtls else None,
        authorization_details_types_supported=[DETAILS_TYPE],
        resource_name=config.resource_name,
    )
    if str(metadata.resource) != config.audience:
        raise InvalidInput(
            "config.audience",
            f"write audience in canonical form: {metadata.resource} (tokens must match it)",
        )
    document = metadata.model_dump(mode="json", exclude_none=True)
    document["authorization_servers"] = list(config.authorization_servers)
    return document


def metadata_url(config: GatewayConfig) -> str:
    """Where clients find the metadata (RFC 9728 section 3.1, from the MCP endpoint)."""
    return str(build_resource_metadata_url(AnyHttpUrl(config.endpoint)))


def metadata_routes(config: GatewayConfig, *, bearer_clients: bool = False) -> list[Route]:
    """The path-based well-known URL and the root one (clients try both, SEP-985)."""
    document = resource_metadata(config, bearer_clients=bearer_clients)

    async def handle(_: Request) -> Response:
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

    endpoint = cors_middleware(handle, ["GET", "OPTIONS"])
    paths = dict.fromkeys([WELL_KNOWN + config.path, WELL_KNOWN])
    return [Route(path, endpoint=endpoint, methods=["GET", "OPTIONS"]) for path in paths]
