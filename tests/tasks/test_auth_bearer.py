"""A standard MCP client's unbound task token is accepted by the authenticator only
where the deployment allows bearer clients, only for its gateway's audience, and dies
with its task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.oauth_fixtures import ADMIN, CLIENT_PLAYBOOK, TD, oauth_home
from zerolane.errors import Forbidden, InvalidInput, Unauthenticated
from zerolane.server.deployment import Deployment
from zerolane.store.records import Workload
from zerolane.tasks.auth import BEARER_BINDING, WorkloadCaller
from zerolane.tasks.lifecycle import OpenRequest
from zerolane.types import WorkloadStatus

GATEWAY = "http://127.0.0.1:9/mcp"
CLIENT = f"spiffe://{TD}/mcp-clients/c1"


def _home(tmp_path: Path, bearer: bool) -> Iterator[Deployment]:
    deployment = oauth_home(
        tmp_path / "home", public_url="http://cp.test", resource=GATEWAY, bearer=bearer
    )
    yield deployment
    deployment.close()


@pytest.fixture
def allowing(tmp_path: Path) -> Iterator[Deployment]:
    yield from _home(tmp_path, True)


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[Deployment]:
    yield from _home(tmp_path, False)


def _open(deployment: Deployment, audience: list[str] | None = None) -> tuple[str, str]:
    workload = Workload(CLIENT, (), None, WorkloadStatus.ENABLED, 0.0, 0.0)
    caller = WorkloadCaller(workload, None, None, bearer_ttl=60)
    assert caller.binding == BEARER_BINDING
    opened = deployment.lifecycle.open(
        caller,
        OpenRequest(
            intent="read",
            playbook=CLIENT_PLAYBOOK["name"],
            audience=[GATEWAY] if audience is None else audience,
        ),
    )
    return opened.token, opened.task.task_id


def _holder(deployment: Deployment, token: str, audience: str = GATEWAY) -> str:
    holder = deployment.authenticator.task_holder(
        token, None, method="POST", url=GATEWAY, audience=audience
    )
    return holder.claims.task_id


def test_accepted_where_allowed_for_the_gateway_only(allowing: Deployment) -> None:
    token, task_id = _open(allowing)
    assert _holder(allowing, token) == task_id
    with pytest.raises(Unauthenticated) as refused:  # never at the control plane
        _holder(allowing, token, audience=f"spiffe://{TD}")
    assert refused.value.reason == "token.audience"


def test_refused_where_bearer_clients_are_not_allowed(refusing: Deployment) -> None:
    token, _ = _open(refusing)
    with pytest.raises(Unauthenticated) as refused:
        _holder(refusing, token)
    assert refused.value.reason == "token.bearer_refused"


def test_a_bearer_task_names_its_gateway(allowing: Deployment) -> None:
    with pytest.raises(InvalidInput):
        _open(allowing, audience=[])


def test_the_token_dies_with_its_task(allowing: Deployment) -> None:
    token, task_id = _open(allowing)
    allowing.lifecycle.revoke(task_id, actor=ADMIN)
    holder = allowing.authenticator.task_holder(
        token, None, method="POST", url=GATEWAY, audience=GATEWAY
    )
    with pytest.raises(Forbidden) as refused:
        allowing.lifecycle.live(holder.claims)
    assert refused.value.reason == "task.revoked"
