"""RFC 9728 metadata (the 401 challenges naming it: tests/gateway/edge/test_http.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.gateway.mcp.test_config import BASE
from zerolane.errors import InvalidInput
from zerolane.gateway.mcp import GatewayConfig, parse_gateway_config
from zerolane.gateway.mcp.metadata import metadata_routes, metadata_url, resource_metadata


def config(**changes: Any) -> GatewayConfig:
    return parse_gateway_config({**copy.deepcopy(BASE), **changes})


def test_the_document_names_resource_servers_and_dpop() -> None:
    document = resource_metadata(config(authorization_servers=["https://cp.example.org/"]))
    assert document == {
        "resource": "https://mcp.example.org/mcp",
        "authorization_servers": ["https://cp.example.org/"],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        "dpop_bound_access_tokens_required": True,
        "authorization_details_types_supported": ["zerolane_task"],
        "resource_name": "zerolane MCP gateway",
    }


def test_certificate_bound_tokens_are_advertised_where_certificates_are_read() -> None:
    header = {"client_cert_header": "X-Client-Cert", "trusted_proxies": ["10.0.0.1/32"]}
    served = {"cert_file": "gw.pem", "key_file": "gw.key"}
    for tls in (header, served):
        document = resource_metadata(config(tls=tls))
        assert document["tls_client_certificate_bound_access_tokens"] is True
        assert document["dpop_bound_access_tokens_required"] is False  # not the only way
    plain = resource_metadata(config(tls=served | {"client_cert": "none"}))
    assert "tls_client_certificate_bound_access_tokens" not in plain
    assert plain["dpop_bound_access_tokens_required"] is True


def test_dpop_is_not_required_where_bearer_clients_are_allowed() -> None:
    """A deployment letting standard clients without a key have short bearer tokens
    ([oauth] allow_bearer_clients) must not tell them DPoP is required."""
    assert (
        resource_metadata(config(), bearer_clients=True)["dpop_bound_access_tokens_required"]
        is False
    )
    assert resource_metadata(config())["dpop_bound_access_tokens_required"] is True  # the twin


def test_an_audience_in_a_non_canonical_spelling_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        resource_metadata(config(audience="https://MCP.example.org:443/mcp"))
    assert caught.value.reason == "config.audience"


def test_metadata_is_served_path_based_and_at_the_root() -> None:
    settings = config(path="/v1/mcp")
    assert metadata_url(settings) == (
        "https://mcp.example.org/.well-known/oauth-protected-resource/v1/mcp"
    )
    paths = [route.path for route in metadata_routes(settings)]
    assert paths == [
        "/.well-known/oauth-protected-resource/v1/mcp",
        "/.well-known/oauth-protected-resource",
    ]
