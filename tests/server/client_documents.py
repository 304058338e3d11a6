"""A client's web site on loopback, publishing client ID metadata documents over
``https`` (a self-signed certificate for 127.0.0.1, trusted by :attr:`verify` alone)
or plain ``http``; it answers what a test sets for each path and counts the requests."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.server.oauth_fixtures import REDIRECT


def _certificate(directory: Path) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client site")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem.decode()


class ClientSite:
    def __init__(self, *, tls: bool) -> None:
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        #: set: a GET of /slow.json waits for it (and sets :attr:`waiting` meanwhile)
        self.hold: threading.Event | None = None
        self.waiting = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                if self.path == "/slow.json" and site.hold is not None:
                    site.waiting.set()
                    site.hold.wait(10)
                status, headers, body = site.answers.get(self.path, (404, {}, b"{}"))
                if status == 0:  # hang up without an answer
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._dir = tempfile.TemporaryDirectory()
        self.verify = ssl.create_default_context()
        scheme = "http"
        if tls:
            cert, key, pem = _certificate(Path(self._dir.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.verify = ssl.create_default_context(cadata=pem)
            scheme = "https"
        self.origin = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ClientSite:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def serve(
        self, path: str, body: bytes | dict[str, Any], status: int = 200, **headers: str
    ) -> str:
        """Answer GET ``path`` so; its URL."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        names = {k.replace("_", "-"): v for k, v in headers.items()}
        self.answers[path] = (status, {"Content-Type": "application/json", **names}, raw)
        return self.url(path)

    def document(self, path: str = "/client.json", **fields: Any) -> str:
        """A valid document at ``path`` (``fields`` added or replaced); its URL."""
        url = self.url(path)
        doc = {
            "client_id": url,
            "client_name": "An IDE agent",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        } | fields
        return self.serve(path, {k: v for k, v in doc.items() if v is not None})
