"""TLS served by uvicorn itself (``[tls] cert_file``/``key_file``), with client
certificates verified against the trust domain's X.509 CA (or ``client_ca_file``).

The handshake proves the client's key; :mod:`zerolane.gateway.http.protocol` hands
the verified certificate to the app in the ASGI TLS extension, where
:mod:`zerolane.gateway.client_cert` reads it for certificate-bound tokens (RFC 8705).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from zerolane.config import TlsConfig
from zerolane.errors import InvalidInput
from zerolane.identity.ca import X509Authority

_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def _file(value: str, base: Path, key: str) -> str:
    path = base / value
    if not path.is_file():
        raise InvalidInput("config.tls", f"tls.{key}: no file at {path}")
    return str(path)


def uvicorn_tls(tls: TlsConfig, *, base: Path, ca: X509Authority) -> dict[str, Any]:
    """The ``uvicorn.Config`` keyword arguments that serve ``tls`` (``{}``: plain HTTP).

    ``base`` is the folder relative file names start from. Without ``client_ca_file``
    client certificates must chain to the home's X.509 CA, created if there is none.
    The protocol class that passes the client certificate on is included.
    """
    if tls.cert_file is None or tls.key_file is None:
        return {}
    from zerolane.gateway.http.protocol import TlsScopeHttpToolsProtocol

    options: dict[str, Any] = {
        "ssl_certfile": _file(tls.cert_file, base, "cert_file"),
        "ssl_keyfile": _file(tls.key_file, base, "key_file"),
        "ssl_cert_reqs": _CERT_REQS[tls.client_cert],
        "http": TlsScopeHttpToolsProtocol,
    }
    if tls.client_cert != "none":
        if tls.client_ca_file is not None:
            options["ssl_ca_certs"] = _file(tls.client_ca_file, base, "client_ca_file")
        else:
            ca.ensure()
            options["ssl_ca_certs"] = str(ca.cert_path)
    return options
