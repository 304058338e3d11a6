from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from zerolane.audit.events import Actor
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment, init_home
from zerolane.types import Clock

AGENT = "spiffe://example.org/agents/a1"


@dataclass
class Api:
    client: TestClient
    deployment: Deployment
    admin: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def join_token(self, spiffe_id: str = AGENT) -> str:
        return self.deployment.join_tokens.create(
            spiffe_id, ttl=600, actor=Actor("admin", "t")
        ).token


@contextmanager
def serving(home: Path, clock: Clock | None = None) -> Iterator[Api]:
    """A new home at ``home`` (on ``clock``; the system clock when None), served."""
    deployment, admin = init_home(home, "example.org", clock)
    deployment.registry.register(AGENT, selectors=[], owner=None, actor=Actor("admin", "t"))
    with TestClient(create_app(deployment), raise_server_exceptions=False) as client:
        yield Api(client, deployment, admin)
    deployment.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serving(tmp_path / "home") as api:
        yield api
