"""MCP beyond tools/call, end to end: the official Python SDK client, the gateway, and the
conformance suite's reference server (plus a Python upstream for resource updates and a
tool that runs until cancelled; see :mod:`tests.gateway.mcp.features`).

The task may use part of each feature: one static resource and the template, two of
the four prompts, some tools, and of the Python upstream's resources only the watched
one. Each refusal is checked with its allowed twin, and a refused request is shown never
to be relayed: its decision is a deny, nothing is spent, and the Python upstream never
received it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import MCPError
from mcp.client.session import ClientRequestContext

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.features import (
    CONFORMANCE_TOOLS,
    FEATURES_TOOLS,
    SECRET,
    WATCHED,
    Agent,
    FeaturesServer,
    agent_session,
    apply_playbook,
    eventually,
    gateway_to_all,
    open_task,
)
from tests.gateway.mcp.harness import GatewayServer
from tests.gateway.mcp.test_resumable_e2e import CONFORMANCE, conformance_server
from zerolane.gateway.edge.jsonrpc import FORBIDDEN
from zerolane.sdk import Task

STATIC_TEXT = "This is the content of the static text resource."
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@dataclass
class Features:
    stack: Stack
    gateway: GatewayServer
    upstream: FeaturesServer

    @property
    def url(self) -> str:
        return self.gateway.url

    def task(self) -> AbstractContextManager[Task]:
        return open_task(self.stack, self.gateway)

    def decisions(self, task: Task) -> list[dict[str, Any]]:
        """The task's decisions, in order."""
        return [e for e in self.stack.events("decision") if e["subject"] == task.task_id]


@pytest.fixture(scope="module")
def features(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Features]:
    assert CONFORMANCE.exists(), f"the conformance server is missing: {CONFORMANCE}"
    apply_playbook(stack)
    with (
        conformance_server(tmp_path_factory.mktemp("conformance")) as conformance_url,
        FeaturesServer() as upstream,
        gateway_to_all(
            stack, {"conformance": (conformance_url, ""), "features": (upstream.url, "features_")}
        ) as gateway,
    ):
        yield Features(stack, gateway, upstream)


def refusal(outcome: object, reason: str = "scope.resource") -> MCPError:
    assert isinstance(outcome, MCPError), outcome
    assert outcome.code == FORBIDDEN, outcome
    assert outcome.data["reasons"] == [reason], outcome.data
    return outcome


async def attempt(request: Any) -> Any:
    """The awaited request's result, or the MCPError it was answered with."""
    try:
        return await request
    except MCPError as err:
        return err


def text_of(result: types.CallToolResult | types.GetPromptResult) -> str:
    if isinstance(result, types.GetPromptResult):
        content: Any = result.messages[0].content
    else:
        content = result.content[0]
    assert isinstance(content, types.TextContent), content
    return content.text


async def set_level(agent: Agent, level: types.LoggingLevel) -> None:
    request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=level))
    await agent.session.send_request(request, types.EmptyResult)


async def subscribe(agent: Agent, uri: str) -> Any:
    request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
    return await attempt(agent.session.send_request(request, types.EmptyResult))


# --- resources --------------------------------------------------------------------------


def test_resource_listings_show_only_what_the_task_may_read(features: Features) -> None:
    async def main(task: Task) -> tuple[list[str], list[str], list[str]]:
        async with agent_session(features.url, task) as agent:
            resources = await agent.session.list_resources()
            templates = await agent.session.list_resource_templates()
            tools = await agent.session.list_tools()
            return (
                sorted(str(r.uri) for r in resources.resources),
                [t.uri_template for t in templates.resource_templates],
                sorted(tool.name for tool in tools.tools),
            )

    with features.task() as task:
        resources, templates, tools = anyio.run(main, task)
    # and of the tools, those the task may call (not test_error_handling, ...)
    exposed = [*CONFORMANCE_TOOLS, *(f"features_{tool}" for tool in FEATURES_TOOLS)]
    assert tools == sorted(exposed)
    # not test://static-binary, test://watched-resource nor features://secret
    assert resources == [WATCHED, "test://static-text"]
    assert templates == ["test://template/{id}/data"]


def test_an_allowed_resource_is_read_and_another_is_refused_before_the_upstream(
    features: Features,
) -> None:
    async def main(task: Task) -> tuple[Any, Any, Any, Any, Any]:
        async with agent_session(features.url, task) as agent:
            await agent.session.list_resources()
            await agent.session.list_resource_templates()
            text = await attempt(agent.session.read_resource("test://static-text"))
            binary = await attempt(agent.session.read_resource("test://static-binary"))
            templated = await attempt(agent.session.read_resource("test://template/42/data"))
            watched = await attempt(agent.session.read_resource(WATCHED))
            secret = await attempt(agent.session.read_resource(SECRET))
            return text, binary, templated, watched, secret

    with features.task() as task:
        text, binary, templated, watched, secret = anyio.run(main, task)
        used = features.stack.calls_used(task)
    assert not isinstance(text, MCPError), text
    content = text.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert content.text == STATIC_TEXT
    assert not isinstance(templated, MCPError), templated
    data = templated.contents[0]
    assert isinstance(data, types.TextResourceContents)
    assert json.loads(data.text)["id"] == "42"
    assert not isinstance(watched, MCPError), watched
    refusal(binary)
    refusal(secret)
    assert features.upstream.noted.read.count(SECRET) == 0  # never reached the upstream
    assert WATCHED in features.upstream.noted.read
    reads = features.decisions(task)
    outcomes = [(e["details"]["uri"], e["outcome"]) for e in reads]
    assert outcomes == [
        ("test://static-text", "success"),
        ("test://static-binary", "denied"),
        ("test://template/42/data", "success"),
        (WATCHED, "success"),
        (SECRET, "denied"),
    ]
    assert reads[1]["details"]["action"] == "mcp:conformance/resources/read"
    assert reads[1]["details"]["resource"] == "mcp/conformance/resources/test/static-binary"
    assert reads[1]["details"]["decision_id"] == binary.data["decision_id"]
    assert used == 3  # the three reads allowed; the refused ones spent nothing


def test_with_no_listing_first_reads_and_prompts_are_routed_and_decided_alike(
    features: Features,
) -> None:
    """An agent may read a URI or get a prompt it knows without listing first."""

    async def main(task: Task) -> list[Any]:
        async with agent_session(features.url, task) as agent:
            return [
                await attempt(agent.session.read_resource("test://static-text")),
                await attempt(agent.session.read_resource("test://static-binary")),
                await attempt(agent.session.get_prompt("test_simple_prompt")),
                await attempt(agent.session.get_prompt("test_prompt_with_image")),
            ]

    with features.task() as task:
        text, binary, simple, image = anyio.run(main, task)
    assert isinstance(text, types.ReadResourceResult), text
    content = text.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert content.text == STATIC_TEXT
    refusal(binary)
    assert isinstance(simple, types.GetPromptResult), simple
    assert text_of(simple) == "This is a simple prompt for testing."
    refusal(image)


def test_a_subscription_brings_updates_of_what_the_task_may_read_only(
    features: Features,
) -> None:
    async def main(task: Task) -> tuple[Any, Any, list[str]]:
        async with agent_session(features.url, task) as agent:
            await agent.session.list_resources()
            secret = await subscribe(agent, SECRET)
            watched = await subscribe(agent, WATCHED)
            await eventually(lambda: WATCHED in agent.updated())
            return secret, watched, agent.updated()

    before = list(features.upstream.noted.subscribed)
    with features.task() as task:
        secret, watched, updated = anyio.run(main, task)
    refusal(secret)
    assert watched == types.EmptyResult()
    # the upstream sent the secret's update before the watched one's, on the same stream:
    # only the one the task may read was relayed
    assert updated == [WATCHED]
    assert features.upstream.noted.subscribed[len(before) :] == [WATCHED]
    subscriptions = features.decisions(task)
    assert [(e["details"]["uri"], e["outcome"]) for e in subscriptions] == [
        (SECRET, "denied"),
        (WATCHED, "success"),
    ]
    # decided as reads, yet the audit says they were subscriptions
    assert all(e["details"]["action"] == "mcp:features/resources/read" for e in subscriptions)
    assert all("resources/subscribe" in e["details"].values() for e in subscriptions)


# --- prompts and completion -------------------------------------------------------------


def test_prompts_are_listed_and_got_only_as_the_task_allows(features: Features) -> None:
    async def main(task: Task) -> tuple[list[str], Any, Any, Any, Any]:
        async with agent_session(features.url, task) as agent:
            names = sorted(p.name for p in (await agent.session.list_prompts()).prompts)
            simple = await attempt(agent.session.get_prompt("test_simple_prompt"))
            arguments = {"arg1": "a", "arg2": "b"}
            with_args = await attempt(
                agent.session.get_prompt("test_prompt_with_arguments", arguments)
            )
            image = await attempt(agent.session.get_prompt("test_prompt_with_image"))
            embedded = await attempt(
                agent.session.get_prompt(
                    "test_prompt_with_embedded_resource", {"resourceUri": "test://static-text"}
                )
            )
            return names, simple, with_args, image, embedded

    with features.task() as task:
        names, simple, with_args, image, embedded = anyio.run(main, task)
    assert names == ["test_prompt_with_arguments", "test_simple_prompt"]
    assert text_of(simple) == "This is a simple prompt for testing."
    assert text_of(with_args) == "Prompt with arguments: arg1='a', arg2='b'"
    refusal(image)
    refusal(embedded)
    gets = features.decisions(task)
    assert [(e["details"]["prompt"], e["outcome"]) for e in gets] == [
        ("test_simple_prompt", "success"),
        ("test_prompt_with_arguments", "success"),
        ("test_prompt_with_image", "denied"),
        ("test_prompt_with_embedded_resource", "denied"),
    ]
    assert gets[2]["details"]["resource"] == "mcp/conformance/prompts/test_prompt_with_image"


def test_completion_is_decided_as_the_read_of_what_it_completes(features: Features) -> None:
    async def main(task: Task) -> list[Any]:
        async with agent_session(features.url, task) as agent:
            await agent.session.list_prompts()
            await agent.session.list_resource_templates()
            allowed_prompt = types.PromptReference(name="test_prompt_with_arguments")
            refused_prompt = types.PromptReference(name="test_prompt_with_embedded_resource")
            template = types.ResourceTemplateReference(uri="test://template/{id}/data")
            return [
                await attempt(
                    agent.session.complete(allowed_prompt, {"name": "arg1", "value": "a"})
                ),
                await attempt(
                    agent.session.complete(refused_prompt, {"name": "resourceUri", "value": "t"})
                ),
                await attempt(agent.session.complete(template, {"name": "id", "value": "4"})),
            ]

    with features.task() as task:
        prompt, refused, template = anyio.run(main, task)
    # the reference server completes nothing: an empty completion is its answer
    assert isinstance(prompt, types.CompleteResult), prompt
    assert prompt.completion.values == []
    assert isinstance(template, types.CompleteResult), template
    refusal(refused)
    completions = features.decisions(task)
    assert [(e["details"]["action"], e["outcome"]) for e in completions] == [
        ("mcp:conformance/prompts/get", "success"),
        ("mcp:conformance/prompts/get", "denied"),
        ("mcp:conformance/resources/read", "success"),
    ]
    assert completions[1]["details"]["resource"] == (
        "mcp/conformance/prompts/test_prompt_with_embedded_resource"
    )


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


# --- sessions ---------------------------------------------------------------------------


def raw_post(
    features: Features, task: Task, session_id: str, message: dict[str, Any]
) -> httpx2.Response:
    """``message`` POSTed as ``task`` (fresh credentials) in session ``session_id``."""
    headers = {
        **MCP_HEADERS,
        **task.headers("POST", features.url),
        "mcp-protocol-version": "2025-11-25",
        "mcp-session-id": session_id,
    }
    return httpx2.post(features.url, json=message, headers=headers, timeout=30)


PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
READ_WATCHED = {"jsonrpc": "2.0", "id": 8, "method": "resources/read", "params": {"uri": WATCHED}}


def test_two_agents_each_see_only_their_own_session(features: Features) -> None:
    """Agent A sets a log level and subscribes; agent B, through the same gateway to the
    same upstreams, gets none of it (the reference server logs the level it was set to,
    the Python one sends updates to the subscriber's session only), and A's session is
    not B's to use."""

    async def main(task_a: Task, task_b: Task) -> None:
        async with (
            agent_session(features.url, task_a) as a,
            agent_session(features.url, task_b) as b,
        ):
            await a.session.list_resources()
            await b.session.list_resources()
            await set_level(a, "debug")
            assert (await subscribe(a, WATCHED)) == types.EmptyResult()
            await eventually(lambda: WATCHED in a.updated())
            await eventually(lambda: "Log level set to: debug" in a.log_texts())
            await b.session.send_ping()
            await anyio.sleep(0.5)
            assert b.updated() == []
            assert b.log_texts() == []
            # B subscribes in turn: its own update comes, A gets no second one
            assert (await subscribe(b, WATCHED)) == types.EmptyResult()
            await eventually(lambda: WATCHED in b.updated())
            await a.session.send_ping()
            assert a.updated() == [WATCHED]
            assert b.updated() == [WATCHED]
            assert b.log_texts() == []
            # a session id is its task's only: for a request relayed as it is and for a
            # decided one (never relayed into the other's session)
            assert raw_post(features, task_b, a.session_id, PING).status_code == 404
            assert raw_post(features, task_a, b.session_id, PING).status_code == 404
            reads = len(features.upstream.noted.read)
            assert raw_post(features, task_b, a.session_id, READ_WATCHED).status_code == 404
            assert len(features.upstream.noted.read) == reads
            # the twins: each in its own session
            assert raw_post(features, task_a, a.session_id, PING).status_code == 200
            assert raw_post(features, task_b, b.session_id, PING).status_code == 200
            read = raw_post(features, task_b, b.session_id, READ_WATCHED)
            assert read.status_code == 200
            assert read.json()["result"]["contents"][0]["text"] == f"{WATCHED}: v1"
            assert len(features.upstream.noted.read) == reads + 1

    with features.task() as task_a, features.task() as task_b:
        anyio.run(main, task_a, task_b)


def test_a_cancelled_call_is_cancelled_upstream_and_the_gateway_stays_usable(
    features: Features,
) -> None:
    upstream = features.upstream

    async def main(task: Task) -> str:
        async with agent_session(features.url, task) as agent:
            started = upstream.noted.slow_started
            with anyio.move_on_after(10) as scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(agent.session.call_tool, "features_slow_task", {})
                    await eventually(lambda: upstream.noted.slow_started > started)
                    group.cancel_scope.cancel()
            assert not scope.cancelled_caught
            await eventually(lambda: upstream.noted.slow_cancelled == upstream.noted.slow_started)
            # the same session goes on
            return text_of(await agent.session.call_tool("test_simple_text", {}))

    with features.task() as task:
        text = anyio.run(main, task)
    assert text == "This is a simple text response for testing."
    calls = upstream.recorder.methods("tools/call")
    cancelled = upstream.recorder.methods("notifications/cancelled")
    assert cancelled, "the upstream was not told"
    assert cancelled[-1]["params"]["requestId"] == calls[-1]["id"]
