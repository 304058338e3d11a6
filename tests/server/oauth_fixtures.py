"""A home whose control plane serves standard MCP clients (``[oauth]``), and a person
who signs in on its consent page over plain HTTP (no browser)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
import tomllib
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import tomli_w

from zerolane.audit.events import Actor
from zerolane.fsutil import write_private
from zerolane.server.deployment import Deployment, init_home
from zerolane.server.oauth_password import hash_password
from zerolane.tasks.playbooks import parse_playbook
from zerolane.types import Clock

TD = "example.org"
USER, PASSWORD = "alice", "correct horse battery"
REDIRECT = "http://127.0.0.1:33418/callback"
ADMIN = Actor("admin", "oauth-tests")
#: what standard MCP clients may open: read reports, post messages (never delete)
CLIENT_PLAYBOOK: dict[str, Any] = {
    "name": "ide-reports",
    "description": "Read reports <and> post a summary",
    "actions": ["mcp:tools/read_report", "mcp:tools/post_message", "mcp:web/read_report"],
    "resources": ["mcp/tools/*", "mcp/web/*"],
    "destinations": [f"reports.{TD}", f"web.{TD}"],
    "data_ceiling": "confidential",
    "max_ttl": "15m",
    "max_calls": 20,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/mcp-clients/*"]},
}
#: a playbook OAuth clients may not open (agents only)
AGENTS_PLAYBOOK = {
    **CLIENT_PLAYBOOK,
    "name": "agents-only",
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}


def oauth_home(
    home: Path,
    *,
    public_url: str,
    resource: str,
    bearer: bool,
    clock: Clock | None = None,
    enabled: bool = True,
    oauth: dict[str, Any] | None = None,
) -> Deployment:
    """A new home with ``[oauth]`` on (and ``oauth``'s keys), alice's password, and
    the two playbooks."""
    deployment, _ = init_home(home, TD, clock)
    deployment.playbooks.apply(parse_playbook(CLIENT_PLAYBOOK, "test"), ADMIN)
    deployment.playbooks.apply(parse_playbook(AGENTS_PLAYBOOK, "test"), ADMIN)
    deployment.close()
    path = home / "zerolane.toml"
    doc = tomllib.loads(path.read_text())
    doc["server"]["public_url"] = public_url
    doc["oauth"] = {
        "enabled": enabled,
        "resources": [resource],
        "allow_bearer_clients": bearer,
        "bearer_token_ttl": 120,
        "local_user": {"username": USER, "password_file": "oauth-password"},
    } | (oauth or {})
    write_private(path, tomli_w.dumps(doc).encode())
    write_private(home / "oauth-password", (hash_password(PASSWORD) + "\n").encode())
    return Deployment.open(home, clock)


class ControlPlane:
    """uvicorn serving the API on ``port`` in a daemon thread."""

    def __init__(self, deployment: Deployment, port: int) -> None:
        import uvicorn

        from zerolane.server.app import create_app

        self.url = f"http://127.0.0.1:{port}"
        self.app = create_app(deployment)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ControlPlane:
        self._thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the control plane did not start")

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields of the consent page's form."""
    found = re.findall(r'<input type=hidden name=(\w+) value="([^"]*)">', html)
    return {name: unescape(value) for name, value in found}


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Person:
    """Alice at her browser: opens the page, signs in, consents."""

    #: an httpx client or Starlette's TestClient
    http: Any
    base: str = ""

    def open_page(self, authorize_url: str) -> Any:
        return self.http.get(authorize_url, follow_redirects=False)

    def submit(
        self,
        page: Any,
        *,
        password: str = PASSWORD,
        playbook: str = CLIENT_PLAYBOOK["name"],
        intent: str = "Summarize the Q3 report",
        decision: str = "allow",
        csrf: str | None = None,
    ) -> Any:
        fields = form_fields(page.text)
        data = {
            "page": fields["page"],
            "csrf": fields["csrf"] if csrf is None else csrf,
            "username": USER,
            "password": password,
            "playbook": playbook,
            "intent": intent,
            "decision": decision,
        }
        cookie = page.cookies.get("zl_oauth_csrf")
        return self.http.post(
            f"{self.base}/oauth/authorize",
            data=data,
            headers={"Cookie": f"zl_oauth_csrf={cookie}"} if cookie else {},
            follow_redirects=False,
        )

    def consent(self, authorize_url: str, **kwargs: Any) -> dict[str, str]:
        """The redirect's query after consenting (``code``, ``state``)."""
        answer = self.submit(self.open_page(authorize_url), **kwargs)
        assert answer.status_code == 303, answer.text
        return query_of(answer.headers["location"])
