"""No replay, no reuse, no delegation outside the task: the attack table, end to end.

Every row attacks the real control plane (``POST /v1/token``) and the real HTTP gateway
in front of an upstream process, the way an adversary holding what the row says would,
and asserts the refusal with its reason id *and* that the legitimate twin goes through.
The gateway runs over its own deployment of the same home (another process's caches
and bus), so every refusal below holds across processes, not only within one.
(The PostgreSQL row lives with the broker, in ``tests/grants/test_postgres_role.py``.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.gateway.conftest import (  # noqa: F401  (fixtures)
    ADMIN,
    AUDIENCE,
    PLAYBOOK,
    TD,
    Stack,
    stack,
    upstream,
)
from zerolane.sdk import Agent, Task, ZerolaneApiError
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc9449 import make_proof

TEAM = "tool-team"
HELPER = f"spiffe://{TD}/agents/helper"
READ_REPORTS = [
    {
        "type": "zerolane_task",
        "actions": ["read"],
        "identifier": "finance/reports/*",
        "locations": ["finance-api.internal"],
    }
]
WIDER = [{**READ_REPORTS[0], "actions": ["read", "delete"]}]


@dataclass
class Table:
    stack: Stack
    helper: Agent

    @property
    def planner(self) -> Agent:
        return self.stack.agent

    def report_url(self, name: str = "q3") -> str:
        return self.stack.url(f"/finance/reports/{name}")

    def team_task(self, **options: Any) -> Task:
        options.setdefault("audience", [AUDIENCE])
        return self.planner.open_task(playbook=TEAM, intent="Attack table", **options)

    def delegate(self, parent: Task, **options: Any) -> Task:
        assert self.helper.svid is not None
        options.setdefault("authorization_details", READ_REPORTS)
        options.setdefault("audience", [AUDIENCE])
        options.setdefault("max_calls", 5)
        grant = parent.delegate(delegate_svid=self.helper.svid.token, **options)
        return self.helper.adopt(grant)

    def get(self, token: str, proof: str | None, url: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"DPoP {token}"}
        if proof is not None:
            headers["DPoP"] = proof
        return httpx.get(url or self.report_url(), headers=headers, timeout=10)


@pytest.fixture(scope="module")
def table(stack: Stack) -> Iterator[Table]:  # noqa: F811
    team = {**PLAYBOOK, "name": TEAM, "delegable": True, "max_depth": 1}
    stack.deployment.playbooks.apply(parse_playbook(team, "attack-table"), ADMIN)
    if stack.deployment.stores.get_workload(HELPER) is None:
        stack.deployment.registry.register(HELPER, selectors=[], owner="tests", actor=ADMIN)
    token = stack.deployment.join_tokens.create(HELPER, ttl=300, actor=ADMIN).token
    with Agent.attest(stack.control.url, join_token=token) as helper:
        yield Table(stack, helper)


def refused(response: httpx.Response, status: int, reason: str) -> None:
    """A refusal with ``status`` whose body (and, for a 401, whose RFC 6750/9449
    challenge) names ``reason``."""
    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason
    if status == 401:
        challenge = response.headers["www-authenticate"]
        error = "invalid_dpop_proof" if reason.startswith("dpop.") else "invalid_token"
        assert f'error="{error}", error_description="{reason}"' in challenge


def exchange_refused(attempt: Callable[[], object], reason: str) -> None:
    with pytest.raises(ZerolaneApiError) as error:
        attempt()
    assert error.value.reason == reason, error.value


# delegation outside the task


def test_scope_widening_in_exchange(table: Table) -> None:
    with table.team_task(max_calls=10) as parent:
        narrow = [{**READ_REPORTS[0], "identifier": "finance/reports/q3"}]
        exchange_refused(
            lambda: table.delegate(
                parent, authorization_details=[{**narrow[0], "actions": ["read", "delete"]}]
            ),
            "scope.action",
        )
        child = table.delegate(parent, authorization_details=narrow)  # the twin
        assert child.request("GET", table.report_url()).status_code == 200


def test_depth_beyond_the_maximum(table: Table) -> None:
    with table.team_task(max_calls=10) as parent:
        child = table.delegate(parent)
        assert table.planner.svid is not None
        exchange_refused(
            lambda: child.delegate(
                delegate_svid=table.planner.svid.token,  # type: ignore[union-attr]
                authorization_details=READ_REPORTS,
                max_calls=1,
            ),
            "delegation.depth",
        )
        assert child.request("GET", table.report_url()).status_code == 200  # depth 1 is fine


def test_ttl_extension_past_the_parent(table: Table) -> None:
    with table.team_task(max_calls=10, ttl=120) as parent:
        exchange_refused(lambda: table.delegate(parent, ttl=900), "delegation.ttl")
        child = table.delegate(parent, ttl=60)
        assert child.request("GET", table.report_url()).status_code == 200


def test_a_non_delegable_playbook(table: Table) -> None:
    with table.stack.task(max_calls=10) as solo:  # "tool-user" is not delegable
        exchange_refused(lambda: table.delegate(solo), "delegation.not_delegable")
    with table.team_task(max_calls=10) as parent:
        assert table.delegate(parent).request("GET", table.report_url()).status_code == 200


# replay and reuse


def test_a_replayed_proof(table: Table) -> None:
    with table.stack.task(max_calls=10) as task:
        proof = make_proof(
            table.planner.key, method="GET", url=table.report_url(), access_token=task.token
        )
        assert table.get(task.token, proof).status_code == 200  # the twin: first use
        refused(table.get(task.token, proof), 401, "dpop.replayed")


def test_a_stolen_token_without_the_key(table: Table) -> None:
    with table.stack.task(max_calls=10) as task:
        refused(table.get(task.token, None), 401, "dpop.missing")
        assert task.request("GET", table.report_url()).status_code == 200


def test_a_proof_signed_by_another_key(table: Table) -> None:
    thief = ec.generate_private_key(ec.SECP256R1())
    with table.stack.task(max_calls=10) as task:
        forged = make_proof(thief, method="GET", url=table.report_url(), access_token=task.token)
        refused(table.get(task.token, forged), 401, "dpop.key_mismatch")
        assert task.request("GET", table.report_url()).status_code == 200


def test_a_proof_for_another_url_or_method(table: Table) -> None:
    with table.stack.task(max_calls=10) as task:
        key, token = table.planner.key, task.token
        other_url = make_proof(key, method="GET", url=table.report_url("q4"), access_token=token)
        refused(table.get(token, other_url), 401, "dpop.htu")
        other_method = make_proof(key, method="POST", url=table.report_url(), access_token=token)
        refused(table.get(token, other_method), 401, "dpop.htm")
        assert task.request("GET", table.report_url()).status_code == 200


def test_a_token_meant_for_another_audience(table: Table) -> None:
    with table.planner.open_task(
        playbook="tool-user", intent="Attack table", audience=["urn:zerolane:gateway:elsewhere"]
    ) as elsewhere:
        refused(elsewhere.request("GET", table.report_url()), 401, "token.audience")
    with table.stack.task(max_calls=10) as here:
        assert here.request("GET", table.report_url()).status_code == 200


def test_a_token_after_completion(table: Table) -> None:
    task = table.stack.task(max_calls=10)
    assert task.request("GET", table.report_url()).status_code == 200  # cached at the gateway
    task.complete()
    refused(task.request("GET", table.report_url()), 403, "task.completed")


def test_a_live_child_of_a_revoked_parent(table: Table) -> None:
    parent = table.team_task(max_calls=10)
    child = table.delegate(parent)
    grandchild_free = table.delegate(table.team_task(max_calls=10))
    assert child.request("GET", table.report_url()).status_code == 200  # cached at the gateway
    table.stack.deployment.lifecycle.revoke(parent.task_id, actor=ADMIN)
    refused(child.request("GET", table.report_url()), 403, "task.revoked")
    refused(parent.request("GET", table.report_url()), 403, "task.revoked")
    # the twin: a child of a live parent goes on
    assert grandchild_free.request("GET", table.report_url()).status_code == 200


def test_a_child_token_with_the_parents_key(table: Table) -> None:
    with table.team_task(max_calls=10) as parent:
        child = table.delegate(parent)
        stolen = make_proof(
            table.planner.key, method="GET", url=table.report_url(), access_token=child.token
        )
        refused(table.get(child.token, stolen), 401, "dpop.key_mismatch")
        assert child.request("GET", table.report_url()).status_code == 200
