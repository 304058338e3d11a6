"""OAuth protected resource metadata (RFC 9728) and the 401 challenges pointing at it.

Per the MCP authorization spec, a client that calls without (valid) credentials gets a
401 whose ``WWW-Authenticate`` names the metadata URL; the metadata names the resource
(the audience its tokens must carry, RFC 8707) and the authorization servers (the
zerolane control plane), and says tokens must be sender-constrained: DPoP-bound
(RFC 9449), or, where the gateway reads client certificates (``[tls]``), bound to the
client certificate instead (RFC 8705, ``tls_client_certificate_bound_access_tokens``).
"""

from __future__ import annotations

import json
import re

from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Send

from zerolane.errors import InvalidInput
from zerolane.gateway.mcp.config import GatewayConfig
from zerolane.tasks.scope import DETAILS_TYPE
from zerolane.tokens.rfc9449 import ALGORITHMS

WELL_KNOWN = "/.well-known/oauth-protected-resource"
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')


def resource_metadata(config: GatewayConfig) -> dict[str, object]:
    """The RFC 9728 document, validated by the SDK's model, with URLs as configured.

    An audience the model would spell differently (case, default port) is refused:
    clients compare it with the resource they asked tokens for. Where the gateway reads
    client certificates, certificate-bound tokens are accepted too (RFC 9728 section 2):
    DPoP is then no longer the only binding (``dpop_bound_access_tokens_required``).
    """
    mtls = config.client_certificates
    metadata = ProtectedResourceMetadata(
        resource=AnyHttpUrl(config.audience),
        authorization_servers=[AnyHttpUrl(url) for url in config.authorization_servers],
        bearer_methods_supported=["header"],
        dpop_signing_alg_values_supported=list(ALGORITHMS),
        dpop_bound_access_tokens_required=not mtls,
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


def metadata_routes(config: GatewayConfig) -> list[Route]:
    """The path-based well-known URL and the root one (clients try both, SEP-985)."""
    document = resource_metadata(config)

    async def handle(_: Request) -> Response:
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

    endpoint = cors_middleware(handle, ["GET", "OPTIONS"])
    paths = dict.fromkeys([WELL_KNOWN + config.path, WELL_KNOWN])
    return [Route(path, endpoint=endpoint, methods=["GET", "OPTIONS"]) for path in paths]


def oauth_error(reason: str) -> str | None:
    """The RFC 6750 / RFC 9449 error code of a credential refusal (None: none was sent);
    ``mtls.*`` (a certificate-bound token, RFC 8705) is ``invalid_token``."""
    if reason == "auth.missing":
        return None
    if reason.startswith("dpop."):
        return "invalid_dpop_proof"
    return "invalid_token"


def _quoted(text: str) -> str:
    return '"' + _UNSAFE.sub("'", text)[:200] + '"'


def challenges(url: str, reason: str, description: str) -> list[tuple[bytes, bytes]]:
    """``WWW-Authenticate`` headers: Bearer (what MCP clients look for) and DPoP.

    A certificate-bound token's refusal (``mtls.*``) is a Bearer token's (RFC 8705 tokens
    travel as Bearer): the error goes on the Bearer challenge only.
    """
    params = [f"resource_metadata={_quoted(url)}"]
    error = oauth_error(reason)
    if error is not None:
        params += [f"error={_quoted(error)}", f"error_description={_quoted(description)}"]
    dpop = params[:1] if reason.startswith("mtls.") else params
    algs = _quoted(" ".join(ALGORITHMS))
    values = [f"Bearer {', '.join(params)}", f"DPoP algs={algs}, {', '.join(dpop)}"]
    return [(b"www-authenticate", value.encode()) for value in values]


async def send_json(
    send: Send,
    status: int,
    body: dict[str, object],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer an HTTP request with a JSON body (refusals made before the MCP layer)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
