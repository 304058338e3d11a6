"""The asyncio SDK against a real control plane (each test drives its own event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
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
from zerolane.sdk import AsyncAgent, AsyncTask, ZerolaneApiError
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.tokens.rfc9449 import proof_jwk
from zerolane.types import TaskState

REPORT = f"{FINANCE}/reports/q3"
QUARTERLY = PLAYBOOK["name"]


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("sdk-aio") / "home") as plane:
        yield plane


def run_as_agent(cp: Served, body: Callable[[AsyncAgent], Awaitable[None]]) -> None:
    """Attest an async agent, run ``body`` with it, and close its client, in one loop."""

    async def main() -> None:
        agent = await AsyncAgent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token()
        )
        async with agent:
            await body(agent)

    asyncio.run(main())


def state_of(cp: Served, task_id: str) -> TaskState:
    return cp.deployment.lifecycle.get(task_id).state


def test_attest_keeps_a_key_bound_svid(cp: Served) -> None:
    async def body(agent: AsyncAgent) -> None:
        assert agent.spiffe_id == AGENT
        assert agent.svid is not None
        assert claims_of(agent.svid.token)["cnf"]["jkt"] == thumbprint(proof_jwk(agent.key))

    run_as_agent(cp, body)


def test_async_with_task_decides_and_completes_on_exit(cp: Served) -> None:
    seen: list[AsyncTask] = []

    async def body(agent: AsyncAgent) -> None:
        async with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
            seen.append(task)
            assert state_of(cp, task.task_id) is TaskState.ACTIVE
            allowed = await task.decide("GET", REPORT, **READ)
            assert (allowed.allowed, allowed.status, allowed.task_id) == (True, 200, task.task_id)
            denied = await task.decide("DELETE", REPORT, action="delete")
            assert (denied.allowed, denied.reasons, denied.status) == (
                False,
                ("scope.action",),
                403,
            )
            egress = await task.decide(
                "POST", "https://evil.example/services/status", action="write", sensitivity="public"
            )
            assert egress.reasons == ("scope.destination",)
        assert task.completed
        after = await task.decide("GET", REPORT, **READ)
        assert (after.allowed, after.reasons) == (False, ("task.completed",))

    run_as_agent(cp, body)
    assert state_of(cp, seen[0].task_id) is TaskState.COMPLETED


def test_task_is_completed_when_the_body_raises(cp: Served) -> None:
    boom = RuntimeError("the agent crashed mid-task")
    seen: list[AsyncTask] = []

    async def body(agent: AsyncAgent) -> None:
        async with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
            seen.append(task)
            assert (await task.decide("GET", REPORT, **READ)).allowed
            raise boom

    with pytest.raises(RuntimeError) as raised:
        run_as_agent(cp, body)
    assert raised.value is boom
    assert not getattr(boom, "__notes__", None)
    assert seen[0].completed
    assert state_of(cp, seen[0].task_id) is TaskState.COMPLETED


def test_a_failed_completion_is_a_note_on_the_original_error(cp: Served) -> None:
    boom = ValueError("bad input")
    seen: list[str] = []

    async def body(agent: AsyncAgent) -> None:
        async with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
            seen.append(task.task_id)
            cp.deployment.lifecycle.revoke(task.task_id, actor=ADMIN)
            raise boom

    with pytest.raises(ValueError, match="bad input") as raised:
        run_as_agent(cp, body)
    assert raised.value is boom
    notes = getattr(boom, "__notes__", [])
    assert len(notes) == 1
    assert "task.ended" in notes[0]
    assert state_of(cp, seen[0]) is TaskState.REVOKED


def test_awaiting_task_opens_without_completing(cp: Served) -> None:
    async def body(agent: AsyncAgent) -> None:
        task = await agent.task(playbook=QUARTERLY, intent=INTENT, max_calls=1)
        assert isinstance(task, AsyncTask)
        assert (await task.decide("GET", REPORT, **READ)).allowed
        spent = await task.decide("GET", REPORT, **READ)
        assert spent.reasons == ("task.budget_exhausted",)
        assert state_of(cp, task.task_id) is TaskState.ACTIVE
        await task.complete()
        await task.complete()  # a second call is a no-op
        assert state_of(cp, task.task_id) is TaskState.COMPLETED

    run_as_agent(cp, body)


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"authorization_details": [{"type": "zerolane_task", "datatypes": ["restricted"]}]},
         403, "scope.sensitivity"),
        ({"playbook": "payroll-export"}, 404, "playbook.unknown"),
        ({"max_calls": 10_000}, 403, "scope.max_calls"),
    ],
)  # fmt: skip
def test_a_refused_open_raises_with_status_and_reason(
    cp: Served, kwargs: dict[str, Any], status: int, reason: str
) -> None:
    async def body(agent: AsyncAgent) -> None:
        with pytest.raises(ZerolaneApiError) as raised:
            async with agent.task(**{"playbook": QUARTERLY, "intent": INTENT, **kwargs}):
                pytest.fail("a refused task has no body")
        assert (raised.value.status, raised.value.reason) == (status, reason)

    before = len(cp.deployment.lifecycle.list(owner=AGENT, limit=1000))
    run_as_agent(cp, body)
    assert len(cp.deployment.lifecycle.list(owner=AGENT, limit=1000)) == before


def test_headers_carry_a_fresh_proof_each_call(cp: Served) -> None:
    async def body(agent: AsyncAgent) -> None:
        async with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
            proofs = [task.headers("GET", REPORT)["DPoP"] for _ in range(3)]
            assert len({claims_of(p)["jti"] for p in proofs}) == 3

    run_as_agent(cp, body)


def test_concurrent_tasks_on_one_agent(cp: Served) -> None:
    async def one(agent: AsyncAgent, n: int) -> str:
        async with agent.task(playbook=QUARTERLY, intent=f"{INTENT} #{n}") as task:
            for _ in range(3):
                assert (await task.decide("GET", REPORT, **READ)).allowed
            return task.task_id

    ids: list[str] = []

    async def body(agent: AsyncAgent) -> None:
        ids.extend(await asyncio.gather(*(one(agent, n) for n in range(5))))

    run_as_agent(cp, body)
    assert len(set(ids)) == 5
    for task_id in ids:
        task = cp.deployment.lifecycle.get(task_id)
        assert (task.state, task.calls_used) == (TaskState.COMPLETED, 3)


def test_request_sends_the_task_credentials(cp: Served) -> None:
    async def body(agent: AsyncAgent) -> None:
        task = await agent.open_task(playbook=QUARTERLY, intent=INTENT)
        reply = await task.request("POST", f"{cp.url}/v1/tasks/{task.task_id}/complete")
        assert reply.status_code == 200, reply.text
        assert state_of(cp, task.task_id) is TaskState.COMPLETED

    run_as_agent(cp, body)


def test_another_agent_cannot_use_a_stolen_task(cp: Served) -> None:
    async def body(agent: AsyncAgent) -> None:
        thief = await AsyncAgent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token(OTHER_AGENT)
        )
        async with thief, agent.task(playbook=QUARTERLY, intent=INTENT) as task:
            stolen = AsyncTask(thief, task.grant)
            decision = await stolen.decide("GET", REPORT, **READ)
            assert (decision.reasons, decision.status) == (("dpop.key_mismatch",), 401)

    run_as_agent(cp, body)


def test_open_before_attest_is_a_programming_error(cp: Served) -> None:
    async def main() -> None:
        async with AsyncAgent(cp.url, enforcement_point=cp.enforcement_point) as fresh:
            with pytest.raises(RuntimeError, match="attest first"):
                await fresh.open_task(playbook=QUARTERLY, intent=INTENT)

    asyncio.run(main())


def test_a_failed_attest_closes_the_client_it_made(
    cp: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[httpx.AsyncClient] = []

    class Tracked(httpx.AsyncClient):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", Tracked)  # the module the SDK calls it from

    async def main() -> None:
        with pytest.raises(ZerolaneApiError) as raised:
            await AsyncAgent.attest(
                cp.url, enforcement_point=cp.enforcement_point, join_token="zljt_unknown"
            )
        assert (raised.value.status, raised.value.reason) == (401, "join_token.unknown")

    asyncio.run(main())
    assert len(made) == 1
    assert made[0].is_closed


def test_attest_never_closes_a_client_it_was_given(cp: Served) -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as http:
            with pytest.raises(ZerolaneApiError):
                await AsyncAgent.attest(
                    cp.url,
                    enforcement_point=cp.enforcement_point,
                    join_token="zljt_unknown",
                    http=http,
                )
            assert not http.is_closed
            agent = await AsyncAgent.attest(
                cp.url,
                enforcement_point=cp.enforcement_point,
                join_token=cp.join_token(),
                http=http,
            )
            assert agent.http is http
            async with agent.task(playbook=QUARTERLY, intent=INTENT) as task:
                assert (await task.decide("GET", REPORT, **READ)).allowed

    asyncio.run(main())


def test_an_awaited_task_is_its_own_context_manager(cp: Served) -> None:
    async def body(agent: AsyncAgent) -> None:
        task = await agent.open_task(playbook=QUARTERLY, intent=INTENT)
        async with task as same:
            assert same is task
            assert (await task.decide("GET", REPORT, **READ)).allowed
        assert state_of(cp, task.task_id) is TaskState.COMPLETED

    run_as_agent(cp, body)


def test_spiffe_id_before_attest_is_a_programming_error(cp: Served) -> None:
    async def main() -> None:
        async with AsyncAgent(cp.url, enforcement_point=cp.enforcement_point) as fresh:
            with pytest.raises(RuntimeError, match="attest first"):
                _ = fresh.spiffe_id

    asyncio.run(main())
