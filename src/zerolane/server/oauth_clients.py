"""Dynamic client registration (RFC 7591) for standard MCP clients: public clients only.

A client says where its answers go (``redirect_uris``: ``https``, or ``http`` on a
loopback address, RFC 8252 section 7.3; no fragment), may name itself
(``client_name``, up to 128 printable characters) and asks for the grants it will use
(``authorization_code``, ``refresh_token``). It authenticates with nothing at the token
endpoint (``token_endpoint_auth_method: none``): PKCE protects its codes, and a DPoP
key its tokens. It is given a ``client_id`` and acts as the workload
``spiffe://<trust domain>/mcp-clients/<client_id>``, which playbooks admit by their
``openers`` like any other. Refusals are RFC 7591 section 3.2.2 errors
(``invalid_redirect_uri``, ``invalid_client_metadata``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from zerolane.hosts import is_loopback
from zerolane.server.oauth_state import Client

MAX_REDIRECT_URIS = 8
MAX_URI = 2000
MAX_CLIENT_NAME = 128
GRANT_TYPES = ("authorization_code", "refresh_token")
CLIENTS_PATH = "mcp-clients"


class RegistrationError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


def check_redirect_uri(uri: object) -> str:
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI or not uri.isprintable():
        raise RegistrationError("invalid_redirect_uri", "a redirect URI is a URL string")
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises for a malformed port)
    except ValueError:
        raise RegistrationError("invalid_redirect_uri", f"{uri!r} is malformed") from None
    if parts.fragment or "#" in uri or parts.username is not None or " " in uri:
        raise RegistrationError("invalid_redirect_uri", f"{uri!r} has a fragment or userinfo")
    if parts.scheme == "https" and host:
        return uri
    if parts.scheme == "http" and is_loopback(host):
        return uri
    raise RegistrationError(
        "invalid_redirect_uri", f"{uri!r}: use https, or http on a loopback address (RFC 8252)"
    )


def _strings(body: Mapping[str, object], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistrationError("invalid_client_metadata", f"{name} is a list of strings")
    return tuple(dict.fromkeys(value))


def check_metadata(
    body: Mapping[str, object],
) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """The redirect URIs, grant types and name of client metadata (RFC 7591 section 2,
    as registered or published in a client ID metadata document); public clients
    only. :class:`RegistrationError` otherwise."""
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not 1 <= len(uris) <= MAX_REDIRECT_URIS:
        raise RegistrationError(
            "invalid_redirect_uri", f"redirect_uris is a list of 1..{MAX_REDIRECT_URIS} URIs"
        )
    redirect_uris = tuple(dict.fromkeys(check_redirect_uri(uri) for uri in uris))
    method = body.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise RegistrationError(
            "invalid_client_metadata", "public clients only: token_endpoint_auth_method none"
        )
    grants = _strings(body, "grant_types", ("authorization_code",))
    if "authorization_code" not in grants or not set(grants) <= set(GRANT_TYPES):
        raise RegistrationError(
            "invalid_client_metadata", "grant_types: authorization_code, refresh_token"
        )
    if not set(_strings(body, "response_types", ("code",))) <= {"code"}:
        raise RegistrationError("invalid_client_metadata", "response_types: code only")
    name = body.get("client_name")
    if name is not None and (
        not isinstance(name, str) or not 0 < len(name) <= MAX_CLIENT_NAME or not name.isprintable()
    ):
        raise RegistrationError(
            "invalid_client_metadata", f"client_name is 1..{MAX_CLIENT_NAME} printable characters"
        )
    return redirect_uris, grants, name


def register(body: object, *, trust_domain: str, now: float) -> Client:
    """The client a registration request describes, or :class:`RegistrationError`."""
    if not isinstance(body, dict):
        raise RegistrationError("invalid_client_metadata", "the body is a JSON object")
    redirect_uris, grants, name = check_metadata(body)
    client_id = secrets.token_urlsafe(18)  # letters, digits, '-', '_': a SPIFFE ID segment
    return Client(
        client_id=client_id,
        client_name=name,
        redirect_uris=redirect_uris,
        grant_types=grants,
        issued_at=int(now),
        spiffe_id=f"spiffe://{trust_domain}/{CLIENTS_PATH}/{client_id}",
    )


def registration_json(client: Client) -> dict[str, object]:
    """RFC 7591 section 3.2.1's answer."""
    out: dict[str, object] = {
        "client_id": client.client_id,
        "client_id_issued_at": client.issued_at,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    if client.client_name is not None:
        out["client_name"] = client.client_name
    return out
