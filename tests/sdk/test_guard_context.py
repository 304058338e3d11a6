"""``task.guard_context()``: guarded tool functions run under the task they are called in.

A real control plane; the same answers as :func:`zerolane.sdk.guard.guard_context`, for
:class:`Task` and :class:`AsyncTask`, deciding remotely (the default) or in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.gateway.task_home import INTENT, PLAYBOOK, ControlPlane, control_plane
from zerolane.gateway.inproc import EmbeddedDecider, ToolDenied, current_task, guard
from zerolane.sdk import AsyncAgent

TOOLS = PLAYBOOK["name"]
ran: list[str] = []


@guard("read", "files/{path}", sensitivity="internal")
def read_file(path: str) -> str:
    ran.append(f"read {path}")
    return path


@guard("delete", "files/{path}")
async def delete_file(path: str) -> None:
    ran.append(f"delete {path}")


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("sdk-guard") / "home") as plane:
        yield plane


@pytest.fixture(autouse=True)
def _nothing_ran() -> None:
    ran.clear()


def test_a_task_guards_calls_made_in_its_context(cp: ControlPlane) -> None:
    with cp.agent() as agent, agent.task(playbook=TOOLS, intent=INTENT) as task:
        assert current_task() is None
        with task.guard_context() as credentials:
            assert current_task() is credentials
            assert credentials.token == task.token
            assert read_file("a.txt") == "a.txt"
            with pytest.raises(ToolDenied) as denied:
                asyncio.run(delete_file("a.txt"))
        assert current_task() is None
        with pytest.raises(ToolDenied) as outside:
            read_file("b.txt")
        calls_used = cp.deployment.lifecycle.get(task.task_id).calls_used
    assert denied.value.reason == "scope.action"
    assert outside.value.reason == "guard.no_task"
    assert ran == ["read a.txt"]
    assert calls_used == 1


def test_a_task_guards_with_the_decider_it_is_given(cp: ControlPlane) -> None:
    embedded = EmbeddedDecider(cp.deployment.decider)
    with (
        cp.agent() as agent,
        agent.task(playbook=TOOLS, intent=INTENT) as task,
        task.guard_context(decider=embedded) as credentials,
    ):
        assert credentials.decider is embedded
        assert read_file("c.txt") == "c.txt"
    assert ran == ["read c.txt"]


def test_an_async_task_guards_calls_made_in_its_context(cp: ControlPlane) -> None:
    async def main() -> str:
        agent = await AsyncAgent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token()
        )
        async with agent, agent.task(playbook=TOOLS, intent=INTENT) as task:
            with task.guard_context() as credentials:
                assert credentials.token == task.token
                with pytest.raises(ToolDenied, match=r"scope\.action"):
                    await delete_file("d.txt")
                return await asyncio.to_thread(read_file, "d.txt")

    assert asyncio.run(main()) == "d.txt"
    assert ran == ["read d.txt"]
