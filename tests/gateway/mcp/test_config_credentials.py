"""``[servers.credential]``: its defaults, and each bad combination refused at load by
its dotted name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from zerolane.errors import InvalidInput
from zerolane.gateway.mcp import parse_gateway_config

STDIO: dict[str, Any] = {"name": "files", "command": "python", "destination": "files"}
HTTP: dict[str, Any] = {
    "name": "crm",
    "url": "https://crm.example.org/mcp",
    "destination": "crm",
    "prefix": "crm_",
}
OAUTH: dict[str, Any] = {
    "type": "oauth",
    "token_endpoint": "https://sso.example.org/realms/corp/protocol/openid-connect/token",
    "client_id": "zerolane-gateway",
    "client_secret_file": "crm.secret",
    "audience": "https://crm.example.org",
}


def doc(stdio: dict[str, Any] | None = None, http: dict[str, Any] | None = None) -> dict[str, Any]:
    servers = [copy.deepcopy(STDIO), copy.deepcopy(HTTP)]
    if stdio is not None:
        servers[0]["credential"] = stdio
    if http is not None:
        servers[1]["credential"] = http
    return {
        "public_url": "https://mcp.example.org",
        "authorization_servers": ["https://zerolane.example.org"],
        "servers": servers,
    }


def test_defaults_by_where_the_credential_goes() -> None:
    config = parse_gateway_config(
        doc({"type": "static", "secret_env": "FILES_KEY", "env": "FILES_TOKEN"}, OAUTH),
        Path("/etc/zerolane"),
    )
    files, crm = (server.credential for server in config.servers)
    assert files is not None
    assert crm is not None
    assert (files.env, files.format, files.header) == ("FILES_TOKEN", "{secret}", None)
    assert (crm.header_name, crm.format, crm.grant) == (
        "Authorization",
        "Bearer {secret}",
        "client_credentials",
    )
    assert crm.client_secret_file == Path("/etc/zerolane/crm.secret")
    keyed = parse_gateway_config(
        doc(http={**OAUTH, "header": "X-Api-Key"}), Path("/etc/zerolane")
    ).servers[1]
    assert keyed.credential is not None
    assert keyed.credential.format == "{secret}"


def test_loopback_http_token_endpoints_are_taken() -> None:
    for endpoint in ("http://127.0.0.1:8080/token", "http://localhost/token", "http://[::1]/t"):
        parse_gateway_config(doc(http={**OAUTH, "token_endpoint": endpoint}), Path("/x"))


EXCHANGE = {**OAUTH, "grant": "token_exchange", "resource": "https://crm.example.org/mcp"}


@pytest.mark.parametrize(
    ("stdio", "http", "reason", "where"),
    [
        (
            {"type": "static", "secret_env": "K", "header": "X-Key"},
            None,
            "config.credential",
            "servers[0]: server files: credential.header is for an HTTP server",
        ),
        (
            {"type": "static", "secret_env": "K"},
            None,
            "config.missing",
            "servers[0]: server files: credential.env",
        ),
        (
            None,
            {"type": "static", "secret_env": "K", "env": "TOKEN"},
            "config.credential",
            "servers[1]: server crm: credential.env is for a stdio server",
        ),
        (
            None,
            {"type": "static", "secret_env": "K", "secret_file": "k"},
            "config.credential",
            "servers[1].credential: set exactly one of secret_file, secret_env",
        ),
        (None, {"type": "static"}, "config.credential", "servers[1].credential"),
        (
            None,
            {**OAUTH, "token_endpoint": "http://sso.example.org/token"},
            "config.url",
            "servers[1].credential.token_endpoint",
        ),
        (
            None,
            {**OAUTH, "revocation_endpoint": "ftp://sso.example.org/revoke"},
            "config.url",
            "servers[1].credential.revocation_endpoint",
        ),
        (
            None,
            {key: v for key, v in OAUTH.items() if key != "token_endpoint"},
            "config.missing",
            "servers[1].credential",
        ),
        (
            None,
            {**OAUTH, "client_secret_env": "CRM_SECRET"},
            "config.credential",
            "servers[1].credential: set exactly one of client_secret_file",
        ),
        (
            None,
            {key: v for key, v in OAUTH.items() if key != "audience"},
            "config.credential",
            "audience and/or resource",
        ),
        (None, {**OAUTH, "secret_env": "K"}, "config.unknown_key", "secret_env"),
        (
            None,
            {"type": "static", "secret_env": "K", "client_id": "x"},
            "config.unknown_key",
            "client_id",
        ),
        (None, {**OAUTH, "grant": "password"}, "config.grant", "servers[1].credential.grant"),
        (None, {**OAUTH, "type": "hmac"}, "config.credential", "servers[1].credential.type"),
        (None, {**OAUTH, "header": "Host"}, "config.header", "servers[1].credential.header"),
        (
            None,
            {**OAUTH, "header": "Mcp-Session-Id"},
            "config.header",
            "servers[1].credential.header",
        ),
        (None, {**OAUTH, "format": "Bearer"}, "config.format", "servers[1].credential"),
        (
            {"type": "static", "secret_env": "K", "env": "BAD-NAME"},
            None,
            "config.env",
            "servers[0].credential.env",
        ),
        (None, {**OAUTH, "tenant": "x"}, "config.unknown_key", "servers[1].credential.tenant"),
        (None, {**EXCHANGE, "resource": "not a url"}, "config.url", "credential.resource"),
    ],
)
def test_bad_credentials_are_refused_by_name(
    stdio: dict[str, Any] | None, http: dict[str, Any] | None, reason: str, where: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_gateway_config(doc(stdio, http), Path("/etc/zerolane"))
    assert refused.value.reason == reason
    assert where in refused.value.message


def test_a_stdio_credential_may_not_also_be_in_the_configured_env() -> None:
    document = doc({"type": "static", "secret_env": "K", "env": "TOKEN"})
    document["servers"][0]["env"] = {"TOKEN": "plain"}
    with pytest.raises(InvalidInput) as refused:
        parse_gateway_config(document, Path("/x"))
    assert refused.value.reason == "config.credential"
    assert "also set in env" in refused.value.message
