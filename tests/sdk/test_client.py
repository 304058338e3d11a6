"""The synchronous SDK against a real control plane (uvicorn on a loopback port)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.server.conftest import AGENT
from tests.server.task_fixtures import (
    ADMIN,
    FINANCE,
    INTENT,
    OTHER_AGENT,
    PLAYBOOK,
    READ,
    Served,
    claims_of,
    served,
)
from zerolane.sdk import Agent, Task, ZerolaneApiError
from zerolane.sdk.common import check
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import access_token_hash, normalize_htu, proof_jwk
from zerolane.types import TaskState

REPORT = f"{FINANCE}/reports/q3"
QUARTERLY = PLAYBOOK["name"]


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("sdk-sync") / "home") as plane:
        yield plane


@pytest.fixture
def agent(cp: Served) -> Iterator[Agent]:
    with Agent.attest(
        cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token()
    ) as attested:
        yield attested


def state_of(cp: Served, task: Task) -> TaskState:
    return cp.deployment.lifecycle.get(task.task_id).state


def test_attest_keeps_a_key_bound_svid(agent: Agent) -> None:
    assert agent.svid is not None
    assert agent.spiffe_id == AGENT
    claims = claims_of(agent.svid.token)
    assert claims["sub"] == AGENT
    assert claims["cnf"]["jkt"] == thumbprint(proof_jwk(agent.key))
    assert agent.svid.expires_at == claims["exp"]


def test_task_decides_and_completes_on_exit(cp: Served, agent: Agent) -> None:
    with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
        assert task.grant.scope["data_ceiling"] == "confidential"
        assert state_of(cp, task) is TaskState.ACTIVE
        allowed = task.decide("GET", REPORT, **READ)
        assert allowed.allowed
        assert allowed.reasons == ()
        assert allowed.status == 200
        assert allowed.task_id == task.task_id
        denied = task.decide("DELETE", REPORT, action="delete")
        assert not denied.allowed
        assert denied.reasons == ("scope.action",)
        assert denied.status == 403
        assert denied.decision_id != allowed.decision_id
        restricted = task.decide("GET", REPORT, action="read", sensitivity="restricted")
        assert restricted.reasons == ("scope.sensitivity",)
        assert not task.completed
    assert task.completed
    assert state_of(cp, task) is TaskState.COMPLETED
    assert cp.deployment.lifecycle.get(task.task_id).calls_used == 1
    after = task.decide("GET", REPORT, **READ)
    assert (after.allowed, after.reasons, after.status) == (False, ("task.completed",), 403)
    task.complete()  # idempotent on the client: no second request, no error


def test_task_is_completed_when_the_body_raises(cp: Served, agent: Agent) -> None:
    boom = RuntimeError("the agent crashed mid-task")
    seen: list[Task] = []

    def work() -> None:
        with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
            seen.append(task)
            assert task.decide("GET", REPORT, **READ).allowed
            raise boom

    with pytest.raises(RuntimeError) as raised:
        work()
    assert raised.value is boom
    assert not getattr(boom, "__notes__", None)
    assert seen[0].completed
    assert state_of(cp, seen[0]) is TaskState.COMPLETED


def test_a_failed_completion_does_not_hide_the_original_error(cp: Served, agent: Agent) -> None:
    boom = ValueError("bad input")
    seen: list[Task] = []

    def work() -> None:
        with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
            seen.append(task)
            cp.deployment.lifecycle.revoke(task.task_id, actor=ADMIN)  # the admin ends it
            raise boom

    with pytest.raises(ValueError, match="bad input") as raised:
        work()
    assert raised.value is boom
    notes = getattr(boom, "__notes__", [])
    assert len(notes) == 1
    assert "task.ended" in notes[0]
    assert not seen[0].completed
    assert state_of(cp, seen[0]) is TaskState.REVOKED


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"authorization_details": [{"type": "zerolane_task", "actions": ["delete"]}]}, 403,
         "scope.action"),
        ({"playbook": "payroll-export"}, 404, "playbook.unknown"),
        ({"ttl": 3600}, 403, "scope.ttl"),
        ({"intent": " "}, 400, "task.intent"),
    ],
)  # fmt: skip
def test_a_refused_open_raises_with_status_and_reason(
    cp: Served, agent: Agent, kwargs: dict[str, Any], status: int, reason: str
) -> None:
    before = len(cp.deployment.lifecycle.list(owner=AGENT, limit=1000))
    with pytest.raises(ZerolaneApiError) as raised:
        agent.open_task(**{"playbook": QUARTERLY, "intent": INTENT, **kwargs})
    assert raised.value.status == status
    assert raised.value.reason == reason
    assert raised.value.message
    assert len(cp.deployment.lifecycle.list(owner=AGENT, limit=1000)) == before


def test_headers_carry_a_fresh_proof_each_call(agent: Agent) -> None:
    with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
        first = task.headers("get", REPORT + "?page=2")
        second = task.headers("GET", REPORT)
        assert first["Authorization"] == second["Authorization"] == f"DPoP {task.token}"
        assert first["DPoP"] != second["DPoP"]
        one, two = (claims_of(h["DPoP"]) for h in (first, second))
        assert one["jti"] != two["jti"]
        assert one["htm"] == "GET"
        assert one["htu"] == normalize_htu(REPORT)  # the query is not part of htu
        assert one["ath"] == access_token_hash(task.token)
        header = jwt.get_unverified_header(first["DPoP"])
        assert header["typ"] == "dpop+jwt"
        assert thumbprint(header["jwk"]) == claims_of(task.token)["cnf"]["jkt"]


def test_request_sends_the_task_credentials(cp: Served, agent: Agent) -> None:
    task = agent.open_task(playbook=QUARTERLY, intent=INTENT)
    # the control plane is an enforcement point too: completing needs token + proof
    reply = task.request("POST", f"{cp.url}/v1/tasks/{task.task_id}/complete")
    assert reply.status_code == 200, reply.text
    assert state_of(cp, task) is TaskState.COMPLETED
    bare = agent.http.post(f"{cp.url}/v1/tasks/{task.task_id}/complete")
    assert bare.json()["reason"] == "auth.missing"


def test_another_agent_cannot_use_a_stolen_task(cp: Served, agent: Agent) -> None:
    with (
        Agent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(OTHER_AGENT)
        ) as thief,
        agent.task(playbook=QUARTERLY, intent=INTENT) as task,
    ):
        stolen = Task(thief, task.grant)
        decision = stolen.decide("GET", REPORT, **READ)
        assert (decision.allowed, decision.reasons, decision.status) == (
            False,
            ("dpop.key_mismatch",),
            401,
        )
        with pytest.raises(ZerolaneApiError) as raised:
            stolen.complete()
        assert (raised.value.status, raised.value.reason) == (401, "dpop.key_mismatch")
        assert task.decide("GET", REPORT, **READ).allowed
    assert state_of(cp, task) is TaskState.COMPLETED


def test_open_before_attest_is_a_programming_error(cp: Served) -> None:
    with (
        Agent(cp.url, enforcement_point=cp.enforcement_point) as fresh,
        pytest.raises(RuntimeError, match="attest first"),
    ):
        fresh.open_task(playbook=QUARTERLY, intent=INTENT)


def test_attest_with_a_used_join_token_raises(cp: Served) -> None:
    token = cp.join_token()
    with Agent.attest(cp.url, enforcement_point=cp.enforcement_point, join_token=token):
        pass
    with pytest.raises(ZerolaneApiError) as raised:
        Agent.attest(cp.url, enforcement_point=cp.enforcement_point, join_token=token)
    assert (raised.value.status, raised.value.reason) == (401, "join_token.used")


def test_a_failed_attest_closes_the_client_it_made(
    cp: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[httpx.Client] = []

    class Tracked(httpx.Client):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(httpx, "Client", Tracked)  # the module the SDK calls it from
    with pytest.raises(ZerolaneApiError):
        Agent.attest(cp.url, enforcement_point=cp.enforcement_point, join_token="zljt_unknown")
    assert len(made) == 1
    assert made[0].is_closed


def test_attest_never_closes_a_client_it_was_given(cp: Served) -> None:
    with httpx.Client() as http:
        with pytest.raises(ZerolaneApiError):
            Agent.attest(
                cp.url, enforcement_point=cp.enforcement_point, join_token="zljt_unknown", http=http
            )
        assert not http.is_closed
        agent = Agent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(), http=http
        )
        assert agent.http is http
        assert agent.open_task(playbook=QUARTERLY, intent=INTENT).task_id


def test_attest_passes_audience_ttl_and_id(cp: Served) -> None:
    with Agent.attest(
        cp.url,
        enforcement_point=cp.enforcement_point,
        join_token=cp.join_token(),
        audience=["spiffe://example.org", "https://gw.example.org"],
        ttl=120,
        spiffe_id=AGENT,
    ) as agent:
        assert agent.svid is not None
        claims = claims_of(agent.svid.token)
        assert claims["aud"] == ["spiffe://example.org", "https://gw.example.org"]
        assert claims["exp"] - claims["iat"] == 120


def test_spiffe_id_before_attest_is_a_programming_error(cp: Served) -> None:
    with (
        Agent(cp.url, enforcement_point=cp.enforcement_point) as fresh,
        pytest.raises(RuntimeError, match="attest first"),
    ):
        _ = fresh.spiffe_id


def test_decide_for_an_enforcement_point_audience(agent: Agent) -> None:
    gateway = "https://gw.example.org"
    with agent.task(playbook=QUARTERLY, intent=INTENT, audience=[gateway]) as task:
        assert gateway in claims_of(task.token)["aud"]
        assert task.decide("GET", REPORT, audience=gateway, **READ).allowed
        other = task.decide("GET", REPORT, audience="https://other.example.org", **READ)
        assert (other.reasons, other.status) == (("token.audience",), 401)


@pytest.mark.parametrize(
    ("response", "status", "reason", "message"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"), 502, "http.error", "Bad Gateway"),
        (httpx.Response(403, json=["no"]), 403, "http.error", '["no"]'),
        (httpx.Response(403, json={"reason": "x.y", "error": "no"}), 403, "x.y", "no"),
        (httpx.Response(200, json=[1, 2]), 200, "response.invalid", "JSON object"),
        (httpx.Response(200, text="<html>ok</html>"), 200, "response.invalid", "JSON object"),
    ],
)
def test_check_turns_any_refusal_into_an_api_error(
    response: httpx.Response, status: int, reason: str, message: str
) -> None:
    with pytest.raises(ZerolaneApiError) as raised:
        check(response)
    assert (raised.value.status, raised.value.reason) == (status, reason)
    assert message in raised.value.message


def test_check_returns_the_json_object_of_a_2xx() -> None:
    assert check(httpx.Response(201, json={"task_id": "t"})) == {"task_id": "t"}
