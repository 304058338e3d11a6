"""What upstreams send an agent during its calls, through the MCP gateway, end to end:
log messages, progress, and the servers' requests (sampling, elicitation), relayed to an
agent that declared it can take them, answered at once for one that did not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.features import (
    Features,
    agent_session,
    running,
    set_level,
    text_of,
)
from zerolane.sdk import Task


@pytest.fixture(scope="module")
def features(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Features]:
    with running(stack, tmp_path_factory.mktemp("conformance")) as found:
        yield found


# --- logging and progress ---------------------------------------------------------------


def test_log_messages_of_a_call_reach_the_logging_callback(features: Features) -> None:
    async def main(task: Task) -> tuple[str, list[str]]:
        async with agent_session(features.url, task) as agent:
            await set_level(agent, "debug")
            result = await agent.session.call_tool("test_tool_with_logging", {})
            return text_of(result), agent.log_texts()

    with features.task() as task:
        text, logs = anyio.run(main, task)
    assert text == "Tool with logging executed successfully"
    during = [line for line in logs if line.startswith("Tool ")]
    assert during == ["Tool execution started", "Tool processing data", "Tool execution completed"]


def test_progress_notifications_come_in_order_before_the_result(features: Features) -> None:
    async def main(task: Task) -> list[tuple[object, ...]]:
        seen: list[tuple[object, ...]] = []

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with agent_session(features.url, task) as agent:
            result = await agent.session.call_tool(
                "test_tool_with_progress", {}, progress_callback=progress
            )
            seen.append(("result", text_of(result)))
        return seen

    with features.task() as task:
        seen = anyio.run(main, task)
    assert seen[:3] == [
        (0, 100, "Completed step 0 of 100"),
        (50, 100, "Completed step 50 of 100"),
        (100, 100, "Completed step 100 of 100"),
    ]
    assert len(seen) == 4
    assert seen[3][0] == "result"


# --- server requests --------------------------------------------------------------------


def test_sampling_on_the_upstreams_get_stream_reaches_the_agent_and_is_answered(
    features: Features,
) -> None:
    """The reference server asks on its GET stream, outside the call; the answer goes
    back to it (it then judges the answer by its own schema, which wants a ``method``
    in a sampling result: no client sends one, so it says so, with the path it missed)."""
    asked: list[tuple[object, str]] = []

    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        assert isinstance(content, types.TextContent)
        asked.append((context.request_id, content.text))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(text="four"), model="test-model"
        )

    async def main(task: Task) -> str:
        async with agent_session(features.url, task, sampling=sample) as agent:
            return text_of(await agent.session.call_tool("test_sampling", {"prompt": "2 + 2?"}))

    with features.task() as task:
        text = anyio.run(main, task)
    assert len(asked) == 1
    request_id, prompt = asked[0]
    assert prompt == "2 + 2?"
    assert isinstance(request_id, str)
    assert request_id.startswith("zl-")  # the gateway's id
    verdict = json.loads(text.removeprefix("Sampling not supported or error: "))
    assert verdict[0]["path"] == ["method"]  # the agent's answer reached the upstream


def test_sampling_and_elicitation_in_a_calls_stream_reach_the_agent(
    features: Features,
) -> None:
    asked: list[str] = []

    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        assert isinstance(content, types.TextContent)
        asked.append(content.text)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(text="four"), model="test-model"
        )

    async def elicit(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"send": True})

    async def main(task: Task) -> types.CallToolResult:
        async with agent_session(features.url, task, sampling=sample, elicitation=elicit) as agent:
            return await agent.session.call_tool("features_ask_model", {"question": "2 + 2?"})

    with features.task() as task:
        result = anyio.run(main, task)
    assert asked == ["2 + 2?", "Send it?"]
    assert not result.is_error
    assert text_of(result) == 'model: four; user: accept {"send": true}'


def test_elicitation_is_relayed_to_an_agent_that_can_answer(features: Features) -> None:
    asked: list[str] = []

    async def elicit(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"response": "yes"})

    async def main(task: Task) -> str:
        async with agent_session(features.url, task, elicitation=elicit) as agent:
            result = await agent.session.call_tool("test_elicitation", {"message": "Proceed?"})
            return text_of(result)

    with features.task() as task:
        text = anyio.run(main, task)
    assert asked == ["Proceed?"]
    assert text == 'User response: action=accept, content={"response":"yes"}'


@pytest.mark.parametrize(
    ("tool", "arguments", "method"),
    [
        ("test_sampling", {"prompt": "2 + 2?"}, "sampling/createMessage"),
        ("test_elicitation", {"message": "Proceed?"}, "elicitation/create"),
    ],
)
def test_a_server_request_the_agent_cannot_take_is_answered_at_once(
    features: Features, tool: str, arguments: dict[str, Any], method: str
) -> None:
    """The agent declared neither sampling nor elicitation: the gateway answers the
    upstream's request with an error itself, and the tool ends long before its timeout."""

    async def main(task: Task) -> tuple[str, float]:
        async with agent_session(features.url, task) as agent:
            started = time.monotonic()
            result = await agent.session.call_tool(tool, arguments, read_timeout_seconds=20)
            return text_of(result), time.monotonic() - started

    with features.task() as task:
        text, seconds = anyio.run(main, task)
    assert "not supported or error" in text
    assert f"the agent does not take {method}" in text
    assert seconds < 5


def test_a_request_in_a_calls_stream_the_agent_cannot_take_is_answered_at_once(
    features: Features,
) -> None:
    async def main(task: Task) -> tuple[types.CallToolResult, float]:
        async with agent_session(features.url, task) as agent:
            started = time.monotonic()
            result = await agent.session.call_tool(
                "features_ask_model", {"question": "2 + 2?"}, read_timeout_seconds=20
            )
            return result, time.monotonic() - started

    with features.task() as task:
        result, seconds = anyio.run(main, task)
    assert result.is_error
    assert text_of(result) == ("refused: zerolane: the agent does not take sampling/createMessage")
    assert seconds < 5
