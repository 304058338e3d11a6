"""The control plane's body limit: a client that drops its upload leaves no traceback."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.server.conftest import AGENT
from tests.server_logs import drop_upload, server_logs
from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer
from zerolane.server.deployment import init_home


def _head(path: str, length: int) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_an_upload_dropped_mid_body_is_no_traceback_and_no_event(tmp_path: Path) -> None:
    deployment, _ = init_home(tmp_path / "home", "example.org")
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=Actor("admin", "t"))
    try:
        with BackgroundServer(deployment) as server, server_logs() as logs:
            port = int(server.url.rsplit(":", 1)[1])
            before = deployment.audit.tail(1)
            for path in ("/v1/attest", "/v1/token"):
                drop_upload(port, _head(path, 1000), b'{"join_tok')
            text = logs.getvalue()
            assert deployment.audit.tail(1) == before  # nothing happened, nothing audited
            token = deployment.join_tokens.create(AGENT, ttl=60, actor=Actor("admin", "t"))
            twin = httpx.post(f"{server.url}/v1/attest", json={"join_token": token.token})
            assert twin.status_code == 200, twin.text
    finally:
        deployment.close()
    assert "Traceback" not in text
    assert "client left" in text
