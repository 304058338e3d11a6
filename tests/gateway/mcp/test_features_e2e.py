"""Resources, subscriptions, prompts and completion through the MCP gateway, end to end:
the official Python SDK client, the gateway, the conformance suite's reference server and
a Python upstream (:mod:`tests.gateway.mcp.features`).

The task may use part of each: one static resource and the template, two of the four
prompts, and of the Python upstream's resources only the watched one. Each refusal is
checked with its allowed twin, and a refused request is shown never to be relayed: its
decision is a deny, nothing is spent, and the Python upstream never received it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import MCPError

from tests.gateway.mcp.conftest import Stack
from tests.gateway.mcp.features import (
    CONFORMANCE_TOOLS,
    FEATURES_TOOLS,
    SECRET,
    WATCHED,
    Features,
    agent_session,
    attempt,
    eventually,
    refusal,
    running,
    subscribe,
    text_of,
)
from zerolane.sdk import Task

STATIC_TEXT = "This is the content of the static text resource."


@pytest.fixture(scope="module")
def features(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Features]:
    with running(stack, tmp_path_factory.mktemp("conformance")) as found:
        yield found


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


def test_with_no_listing_first_prompts_are_routed_and_uris_need_a_listing(
    features: Features,
) -> None:
    """An agent may get a prompt it knows without listing first (routed by the servers'
    prefixes, decided alike). A URI is routed only to a server that claims it: with two
    servers offering resources, one not listed yet is refused ``request.unmapped``, and
    read once listed (nothing is listed for the agent before its request is decided)."""

    async def main(task: Task) -> list[Any]:
        async with agent_session(features.url, task) as agent:
            found = [
                await attempt(agent.session.get_prompt("test_simple_prompt")),
                await attempt(agent.session.get_prompt("test_prompt_with_image")),
                await attempt(agent.session.read_resource("test://static-text")),
            ]
            await agent.session.list_resources()
            found.append(await attempt(agent.session.read_resource("test://static-text")))
            found.append(await attempt(agent.session.read_resource("test://static-binary")))
            return found

    with features.task() as task:
        simple, image, unlisted, text, binary = anyio.run(main, task)
    assert isinstance(simple, types.GetPromptResult), simple
    assert text_of(simple) == "This is a simple prompt for testing."
    refusal(image)
    refusal(unlisted, "request.unmapped")
    assert isinstance(text, types.ReadResourceResult), text
    content = text.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert content.text == STATIC_TEXT
    refusal(binary)


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
